"""Test doubles that stand in for an AttachSession and for Actions."""

from __future__ import annotations

import socket


class FakeSession:
    """An AttachSession over a socketpair: ``guest`` is the other end."""

    def __init__(self, via: str = "test console") -> None:
        self.s, self.guest = socket.socketpair()
        self.s.setblocking(False)
        self.via = via
        self.closed = False

    def fileno(self) -> int:
        return self.s.fileno()

    def read(self) -> bytes:
        try:
            data = self.s.recv(65536)
        except BlockingIOError:
            return b""
        if not data:
            raise EOFError("guest went away")
        return data

    def write(self, data: bytes) -> None:
        self.s.sendall(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.s.close()

    def guest_read(self, timeout: float = 2.0) -> bytes:
        self.guest.settimeout(timeout)
        try:
            return self.guest.recv(65536)
        except TimeoutError:
            return b""
