"""XsClient's timeout bounds xenstored's silence, not the length of a pipelined batch:
a live but slow xenstored answering a thousand reads is waited for, a silent one is not.
The server here speaks the real wire protocol (header + payload, replies by req_id)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from xcinspect.core import xs_wire
from xcinspect.platform.xenstore import XenstoreTimeout, XsClient


class SlowXenstored:
    """Answers every READ with its path, ``delay`` seconds after the previous reply;
    stops answering (but keeps the connection) after ``answer_at_most`` replies."""

    def __init__(self, path: str, delay: float, answer_at_most: int = 1 << 30) -> None:
        self.delay = delay
        self.answer_at_most = answer_at_most
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        answered = 0
        size = xs_wire.HEADER.size
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= size:
                op, rid, tid, n = xs_wire.HEADER.unpack_from(buf, 0)
                if len(buf) < size + n:
                    break
                payload, buf = buf[size:size + n], buf[size + n:]
                if answered >= self.answer_at_most:
                    continue
                time.sleep(self.delay)
                reply = payload.rstrip(b"\0")
                try:
                    conn.sendall(xs_wire.HEADER.pack(op, rid, tid, len(reply)) + reply)
                except OSError:
                    return
                answered += 1

    def close(self) -> None:
        self.server.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "xs.sock")


def test_a_slow_but_live_xenstored_is_waited_for(sock_path):
    # 400 reads at 4 ms each: ~1.6 s in all, far past the 0.4 s timeout, but never silent.
    server = SlowXenstored(sock_path, delay=0.004)
    try:
        xs = XsClient(sock_path, timeout=0.4, read_only=True)
        paths = [f"/local/domain/{i}/name" for i in range(400)]
        t0 = time.monotonic()
        assert xs.read_many(paths) == paths
        assert time.monotonic() - t0 > 0.8  # the batch really outlasted the timeout
        xs.close()
    finally:
        server.close()


def test_a_xenstored_that_goes_silent_mid_batch_times_out(sock_path):
    server = SlowXenstored(sock_path, delay=0.001, answer_at_most=50)
    try:
        xs = XsClient(sock_path, timeout=0.4, read_only=True)
        t0 = time.monotonic()
        with pytest.raises(XenstoreTimeout):
            xs.read_many([f"/k{i}" for i in range(200)])
        took = time.monotonic() - t0
        assert 0.4 <= took < 1.5, took
        xs.close()
    finally:
        server.close()
