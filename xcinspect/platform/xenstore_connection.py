"""One connection to xenstored: the socket, the reader thread that parses every packet
(replies matched to their request by ``req_id``, watch events queued), and the errors.
``XsClient`` (``platform.xenstore``) is built on it."""

from __future__ import annotations

import collections
import socket
import threading
from typing import Any

from xcinspect.core.xs_wire import HEADER, NUL, REPLY_MAX, Op
from xcinspect.platform.base import PlatformError


class XenstoreError(PlatformError):
    """xenstored is unreachable, hung, or closed the connection."""


class XenstoreTimeout(XenstoreError):
    pass


class XenstoreReplyError(XenstoreError):
    """xenstored answered a request with an error (``code`` is e.g. ``"EACCES"``)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"xenstored error {code}")
        self.code = code


class NoEntry(KeyError):
    """ENOENT from xenstored."""


class Batch:
    """Requests sent together; the reader thread fills ``replies`` and sets ``done``."""
    __slots__ = ("replies", "left", "done")

    def __init__(self, n: int) -> None:
        self.replies: list[Any] = [None] * n
        self.left = n
        self.done = threading.Event()


class Connection:
    """One socket to xenstored and the thread that reads it."""

    def __init__(self, path: str, timeout: float) -> None:
        self.alive = True
        self.pending: dict[int, tuple[Batch, int]] = {}
        self.events: collections.deque[tuple[str, str]] = collections.deque()
        self.have_events = threading.Event()
        self.error: str | None = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except TimeoutError:
            sock.close()
            raise XenstoreTimeout(f"connecting to xenstored at {path} timed out") from None
        except OSError as exc:
            sock.close()
            raise XenstoreError(f"cannot connect to xenstored at {path}: {exc.strerror or exc}") from None
        # One socket for both threads, with the client's timeout: it bounds the sender's
        # sendall; the reader just goes round again when its recv times out. (Not a dup with
        # another timeout: O_NONBLOCK, which Python's timeouts use, is shared by dups.)
        self.sock = sock
        self.thread = threading.Thread(target=self._read_loop, daemon=True, name="xs-reader")
        self.thread.start()

    def _read_loop(self) -> None:
        sock = self.sock
        buf = bytearray()
        hsize = HEADER.size
        unpack = HEADER.unpack_from
        try:
            while True:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    if not self.alive:
                        return
                    continue
                if not chunk:
                    self.error = "xenstored closed the connection"
                    return
                buf += chunk
                pos = 0
                n_buf = len(buf)
                while n_buf - pos >= hsize:
                    op, rid, _tid, n = unpack(buf, pos)
                    if n > REPLY_MAX:
                        self.error = f"xenstore reply of {n} bytes (corrupt stream)"
                        return
                    end = pos + hsize + n
                    if end > n_buf:
                        break
                    payload = bytes(buf[pos + hsize: end])
                    pos = end
                    if op == Op.WATCH_EVENT:
                        parts = payload.split(NUL)
                        self.events.append((parts[0].decode("ascii", "replace"),
                                            parts[1].decode("ascii", "replace") if len(parts) > 1 else ""))
                        self.have_events.set()
                        continue
                    slot = self.pending.pop(rid, None)
                    if slot is None:
                        self.error = f"xenstore reply to unknown request {rid}"
                        return
                    batch, i = slot
                    batch.replies[i] = (op, payload)
                    batch.left -= 1
                    if batch.left == 0:
                        batch.done.set()
                if pos:
                    del buf[:pos]
        except OSError as exc:
            self.error = f"xenstore connection: {exc.strerror or exc}"
        finally:
            self.alive = False
            for batch, _i in list(self.pending.values()):
                batch.done.set()
            self.have_events.set()
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        # Shut down only: that wakes the reader (it closes the socket on its way out).
        self.alive = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def shut_box(box: list[Any]) -> None:
    conn = box[0]
    if conn is not None:
        conn.close()
