"""The drain log: console output on disk before ``out_cons`` moves, exactly once.

``console.<domid>.log`` holds the drained bytes as they came (plain text for the
operator). ``console.<domid>.log.idx`` holds one JSON line per *segment*: the log offset
at which the segment starts and the ring index of its first byte. Within a segment, log
offset ``o`` holds ring byte ``index + (o - offset)``, so the log's length alone tells a
restarted backend which ring index it had persisted, whatever instant it was killed at:

* bytes are appended (and, by default, fdatasync'd) before ``out_cons`` moves past them;
* after a crash, ring bytes between ``out_cons`` and the persisted end are already in the
  log: the restarted backend moves ``out_cons`` past them instead of writing them again;
* if the ring moved on without us (another backend drained it, the domain was rebuilt),
  a new segment starts, so the gap is recorded, never papered over.
"""

from __future__ import annotations

import json
import os
import time

from xcinspect.core.ring import MASK32


class Journal:
    def __init__(self, path: str, *, sync: bool = True) -> None:
        self.path = path
        self.idx_path = path + ".idx"
        self.sync = sync
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.segment: tuple[int, int] | None = self._last_segment()

    def _last_segment(self) -> tuple[int, int] | None:
        try:
            with open(self.idx_path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return None
        for line in reversed(lines):
            try:
                rec = json.loads(line)
                off, index = int(rec["offset"]), int(rec["index"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line: the previous segment still holds
            if 0 <= off <= self.size:
                return off, index & MASK32
        return None

    @property
    def end_index(self) -> int | None:
        """Ring index one past the last persisted byte, or None without a segment."""
        if self.segment is None:
            return None
        off, index = self.segment
        return (index + (self.size - off)) & MASK32

    def start_segment(self, index: int, reason: str) -> None:
        rec = {"offset": self.size, "index": index & MASK32, "time": time.time(), "reason": reason}
        fd = os.open(self.idx_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, (json.dumps(rec) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.segment = (self.size, index & MASK32)

    def resume_point(self, out_cons: int, out_prod: int) -> int:
        """Where draining should continue given the ring's indices.

        Returns the out_cons value to continue from: past bytes already persisted when
        they are still in the ring; otherwise ``out_cons`` (and a new segment starts).
        """
        end = self.end_index
        fill = (out_prod - out_cons) & MASK32
        if end is not None:
            ahead = (end - out_cons) & MASK32
            if ahead <= fill:
                return end  # [out_cons, end) is already on disk
        self.start_segment(out_cons, "start" if end is None else "gap")
        return out_cons

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.size += n
        if self.sync:
            os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
