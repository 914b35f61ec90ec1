"""Attach sessions (the pty of xenconsoled or xcinspect's own backend socket), opening
that pty safely, and the console lock every attach takes, exactly as the xenconsole
client takes it."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import time
from abc import ABC, abstractmethod
from typing import Self

from xcinspect.engine.plans import ActionError

_PTY_PATH = re.compile(r"/dev/pts/[0-9]+")


class ConsoleLock:
    """``/var/lock/xenconsole.<domid>`` exactly as the xenconsole client takes it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise BlockingIOError(exc.errno, "locked") from None
                raise
            # Unlink race: make sure the file we locked is still the one at the path.
            try:
                st_path = os.stat(self.path)
            except FileNotFoundError:
                os.close(fd)
                continue
            st_fd = os.fstat(fd)
            if (st_path.st_dev, st_path.st_ino) == (st_fd.st_dev, st_fd.st_ino):
                self.fd = fd
                return
            os.close(fd)
        raise BlockingIOError(errno.EAGAIN, "lock file keeps changing")

    def release(self) -> None:
        if self.fd >= 0:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1


class AttachSession(ABC):
    """A bidirectional byte stream to a guest console."""

    via: str

    @abstractmethod
    def fileno(self) -> int: ...

    @abstractmethod
    def read(self) -> bytes:
        """Available output (b"" on nothing); raises EOFError when the console went away."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_console_tty(path: str) -> int:
    """Open ``console/tty`` (from xenstore) for an attach: non-blocking, no controlling tty.
    Nothing but a pty slave is opened as root (a regular file or a device would take the
    operator's keystrokes, and merely opening some devices acts, e.g. a watchdog)."""
    if not _PTY_PATH.fullmatch(os.path.realpath(path)):
        raise ActionError(f"console/tty is {path!r}, not a pty under /dev/pts: not opening it")
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    if not os.isatty(fd):
        os.close(fd)
        raise ActionError(f"console/tty {path!r} is not a terminal: not using it")
    return fd


class TtySession(AttachSession):
    def __init__(self, fd: int, lock: ConsoleLock, path: str) -> None:
        self.fd = fd
        self.lock = lock
        self.via = path

    def fileno(self) -> int:
        return self.fd

    def read(self) -> bytes:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise EOFError("console pty closed") from None
            raise
        if not data:
            raise EOFError("console pty closed")
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EOFError("console input is not being consumed") from None
                time.sleep(0.01)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.lock.release()


class SocketSession(AttachSession):
    def __init__(self, s: socket.socket, via: str) -> None:
        self.s = s
        self.s.setblocking(False)
        self.via = via

    def fileno(self) -> int:
        return self.s.fileno()

    def read(self) -> bytes:
        try:
            data = self.s.recv(65536)
        except BlockingIOError:
            return b""
        if not data:
            raise EOFError("xcinspect backend closed the console")
        return data

    def write(self, data: bytes) -> None:
        self.s.setblocking(True)
        try:
            self.s.sendall(data)
        finally:
            self.s.setblocking(False)

    def close(self) -> None:
        self.s.close()
