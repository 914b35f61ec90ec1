"""A tiny blocking xenstore wire client with pipelining (the world controller's bulk writer,
and a raw client for tests that need to see the bytes). Not a replacement for
``xcinspect.platform.xenstore.XsClient``: no threads, no watches beyond collecting events."""

from __future__ import annotations

import socket
import time

from xcinspect.core.xs_wire import HEADER, Op


class WireError(Exception):
    """xenstored answered with an error (or something unexpected)."""


class WireClosed(WireError):
    """The connection is gone (xenstored dropped us, died, or timed out)."""


class WireClient:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = bytearray()
        self.next_id = 1
        self.events: list[tuple[bytes, bytes]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_packet(self, deadline: float | None = None) -> tuple[int, int, int, bytes]:
        while True:
            if len(self.buf) >= HEADER.size:
                op, rid, tid, n = HEADER.unpack_from(self.buf, 0)
                if len(self.buf) >= HEADER.size + n:
                    payload = bytes(self.buf[HEADER.size: HEADER.size + n])
                    del self.buf[: HEADER.size + n]
                    return op, rid, tid, payload
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WireClosed("xenstore reply timed out")
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise WireClosed(f"xenstore connection: {exc}") from None
            if not chunk:
                raise WireClosed("xenstored closed the connection")
            self.buf += chunk

    def pipeline(self, requests: list[tuple[int, bytes]], tx: int = 0) -> list[tuple[int, bytes]]:
        """Send every request at once, then collect the replies (matched by req_id)."""
        ids = []
        out = bytearray()
        for op, payload in requests:
            rid = self.next_id
            self.next_id = (self.next_id + 1) & 0xFFFFFFFF or 1
            ids.append(rid)
            out += HEADER.pack(op, rid, tx, len(payload)) + payload
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(out)
        except OSError as exc:
            raise WireClosed(f"xenstore connection: {exc}") from None
        want = {rid: i for i, rid in enumerate(ids)}
        replies: list = [None] * len(ids)
        deadline = time.monotonic() + self.timeout + 0.0005 * len(ids)
        while want:
            op, rid, tid, payload = self.recv_packet(deadline)
            if op == Op.WATCH_EVENT:
                parts = payload.split(b"\0")
                self.events.append((parts[0], parts[1] if len(parts) > 1 else b""))
                continue
            i = want.pop(rid, None)
            if i is None:
                raise WireError(f"unexpected reply id {rid}")
            replies[i] = (op, payload)
        return replies

    def request(self, op: int, payload: bytes, tx: int = 0) -> bytes:
        rop, rpayload = self.pipeline([(op, payload)], tx)[0]
        if rop == Op.ERROR:
            raise WireError(rpayload.rstrip(b"\0").decode())
        return rpayload

    # conveniences
    def write_many(self, items: list[tuple[str, str]]) -> None:
        reps = self.pipeline([(Op.WRITE, k.encode() + b"\0" + v.encode()) for k, v in items])
        bad = [(items[i][0], p) for i, (op, p) in enumerate(reps) if op == Op.ERROR]
        if bad:
            raise WireError(f"write failed: {bad[:3]}")

    def read(self, path: str) -> str | None:
        op, p = self.pipeline([(Op.READ, path.encode() + b"\0")])[0]
        return None if op == Op.ERROR else p.decode()

    def directory(self, path: str) -> list[str]:
        op, p = self.pipeline([(Op.DIRECTORY, path.encode() + b"\0")])[0]
        return [] if op == Op.ERROR else [x.decode() for x in p.split(b"\0") if x]

    def mkdir(self, path: str) -> None:
        self.request(Op.MKDIR, path.encode() + b"\0")

    def rm(self, path: str) -> None:
        op, p = self.pipeline([(Op.RM, path.encode() + b"\0")])[0]

    def introduce(self, domid: int, mfn: int, port: int) -> None:
        self.request(Op.INTRODUCE, b"%d\0%d\0%d\0" % (domid, mfn, port))

    def release(self, domid: int) -> None:
        op, p = self.pipeline([(Op.RELEASE, b"%d\0" % domid)])[0]

    def control(self, *words: str) -> bytes:
        return self.request(Op.CONTROL, b"".join(w.encode() + b"\0" for w in words))
