"""``xcinspect --page FILE``: one console page dump, offline (a file or a pipe)."""

from __future__ import annotations

import json
import os
import select
import stat
import sys
import time

from xcinspect.cli.common import EXIT_OK, die, one_line
from xcinspect.core import flags, health, ring
from xcinspect.core.errors import UsageError
from xcinspect.core.sanitize import Sanitizer

PAGE_READ_TIMEOUT = 10.0  # seconds a pipe may take to deliver a page dump


def _read_page_source(path: str) -> bytes:
    """A page dump from a regular file or a pipe (``-``, ``/dev/stdin``, ``<(...)``, a FIFO);
    raises UsageError with one line otherwise. O_NONBLOCK: opening a FIFO must not wait for a
    writer (it hung forever), and a pipe read gives up after PAGE_READ_TIMEOUT."""
    if path == "-":
        fd = os.dup(sys.stdin.fileno())
    else:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise UsageError(f"cannot read page file {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            data = os.pread(fd, ring.PAGE_SIZE + 1, 0)
            size = max(st.st_size, len(data))
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            os.set_blocking(fd, False)
            chunks: list[bytes] = []
            got = 0
            deadline = time.monotonic() + PAGE_READ_TIMEOUT
            while got <= ring.PAGE_SIZE:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UsageError(f"{path}: no page dump arrived within {PAGE_READ_TIMEOUT:g} s "
                                     f"({got} of {ring.PAGE_SIZE} bytes)")
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    continue
                try:
                    chunk = os.read(fd, ring.PAGE_SIZE + 1 - got)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            data = b"".join(chunks)
            size = len(data) if len(data) <= ring.PAGE_SIZE else f"more than {ring.PAGE_SIZE}"
        else:
            what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file or a pipe"
            raise UsageError(f"{path} is not a console page: {what}")
    except OSError as exc:
        raise UsageError(f"cannot read page file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) != ring.PAGE_SIZE:
        raise UsageError(f"{path} is not a console page: {size} bytes, expected {ring.PAGE_SIZE}")
    return data


def cmd_page(args) -> int:
    try:
        data = _read_page_source(args.page)
    except UsageError as exc:
        return die(str(exc))
    layout = flags.NONE if args.flag_layout == flags.AUTO else args.flag_layout
    snap = ring.parse_page(data, layout)
    verdict = health.page_verdict(snap)
    unread = ""
    if snap.out.valid and snap.out.fill:
        san = Sanitizer()
        unread = san.feed(ring.unread_out(data, snap)) + san.flush()
    if args.json:
        print(json.dumps({"ring": snap.as_dict(), "verdict": verdict.as_dict(), "unread_out": unread}))
        return EXIT_OK
    out = sys.stdout
    print(f"page {one_line(args.page)}  flag layout {layout}", file=out)
    for label, r in (("out", snap.out), ("in", snap.in_)):
        state = "ok" if r.valid else "CORRUPT (fill > size)"
        print(f"  {label:<3} cons {r.cons:>10}  prod {r.prod:>10}  fill {r.fill:>10}/{r.size}  {state}", file=out)
    raw = snap.flag.raw if snap.flag.raw is not None else "-"
    print(f"  flag raw {raw}  state {snap.flag.state}  byte 3088 = {snap.flag.byte}", file=out)
    print(f"  verdict {verdict.state}: {verdict.reason}", file=out)
    if unread:
        print(f"  unread out (all {snap.out.fill} bytes, sanitized):", file=out)
        for line in unread.splitlines():
            print("    " + line, file=out)
    return EXIT_OK
