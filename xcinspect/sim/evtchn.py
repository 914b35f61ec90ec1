"""Simulated interdomain event channels: Linux abstract unix datagram sockets.

Each end of a console's event channel is a datagram socket bound to an abstract name::

    \\0xcinspect-sim/<world_id>/<domid>/<port>/guest
    \\0xcinspect-sim/<world_id>/<domid>/<port>/backend

Abstract names vanish when the owning process dies, exactly like Xen closing an evtchn
handle at process exit, and only one process can bind a name (EADDRINUSE), like only
one backend can bind the guest's port (``evtchn_bind_interdomain`` -> EINVAL).

* ``notify()`` sends one datagram to the peer; an unbound peer (ECONNREFUSED/ENOENT) or a
  full queue (EAGAIN: an event is already pending) is ignored, as on Xen.
* ``pending()`` drains queued datagrams without blocking; True if there were any.
* Backend side: a delivered event masks the port until ``unmask()``. Notifications that
  arrive while masked stay queued (the fd stays readable), so they are delivered on the
  next ``pending()`` after the unmask -- like a pending bit seen at unmask time. A
  service loop must not wait on the fd while the port is masked.
* A fresh backend binder finds one event pending (Xen sets it on bind).
"""

from __future__ import annotations

import errno
import re
import socket

from xcinspect.platform.base import BindError, EventChannel, PlatformError

_PREFIX = b"\0xcinspect-sim/"
_IGNORED = (errno.ECONNREFUSED, errno.ENOENT, errno.EAGAIN, errno.EWOULDBLOCK)


def channel_name(world_id: str, domid: int, port: int, side: str) -> bytes:
    if side not in ("guest", "backend"):
        raise ValueError(side)
    return _PREFIX + f"{world_id}/{int(domid)}/{int(port)}/{side}".encode()


def _probe(name: bytes) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(name)
        return True
    except OSError:
        return False
    finally:
        s.close()


def port_bound(world_id: str, domid: int, port: int) -> bool:
    """Is the guest's console port bound by some backend process?"""
    return _probe(channel_name(world_id, domid, port, "backend"))


def bound_backends(world_id: str) -> set[tuple[int, int]] | None:
    """(domid, port) of every console port bound by a backend now, from one read of
    /proc/net/unix (abstract names show there as ``@name``); None when it cannot be read.
    One regular expression over the whole file (10,000 lines at 5,000 domains), not a
    Python loop per line."""
    head = re.escape(b"@" + _PREFIX[1:] + world_id.encode() + b"/")
    try:
        with open("/proc/net/unix", "rb") as f:
            text = f.read()
    except OSError:
        return None
    return {(int(d), int(p)) for d, p in re.findall(head + rb"(\d+)/(\d+)/backend$", text, re.MULTILINE)}


def guest_bound(world_id: str, domid: int, port: int) -> bool:
    """Has the guest (still) bound its end (is the guest alive)?"""
    return _probe(channel_name(world_id, domid, port, "guest"))


class _Endpoint:
    side = ""
    peer_side = ""
    masks = False

    def __init__(self, world_id: str, domid: int, port: int) -> None:
        self.world_id = world_id
        self.domid = int(domid)
        self.port = int(port)
        self.name = channel_name(world_id, domid, port, self.side)
        self.peer = channel_name(world_id, domid, port, self.peer_side)
        self.masked = False
        self.sock: socket.socket | None = socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )
        try:
            self.sock.bind(self.name)
        except OSError as exc:
            self.sock.close()
            self.sock = None
            if exc.errno == errno.EADDRINUSE:
                raise BindError(
                    f"event channel port {port} of domain {domid} is already bound by another process",
                    "only one backend can bind a console's event channel",
                ) from None
            raise PlatformError(f"cannot bind event channel port {port} of domain {domid}: {exc}") from None

    def fileno(self) -> int:
        if self.sock is None:
            raise ValueError("event channel is closed")
        return self.sock.fileno()

    def notify(self) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto(b"!", self.peer)
        except OSError as exc:
            if exc.errno not in _IGNORED:
                raise

    def pending(self) -> bool:
        if self.sock is None or self.masked:
            return False
        got = False
        while True:
            try:
                self.sock.recv(16)
                got = True
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        if got and self.masks:
            self.masked = True
        return got

    def unmask(self) -> None:
        self.masked = False

    def peer_bound(self) -> bool:
        return _probe(self.peer)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    @property
    def closed(self) -> bool:
        return self.sock is None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SimEventChannel(_Endpoint, EventChannel):
    """The backend's end (xenconsoled, or xcinspect acting as backend)."""

    side = "backend"
    peer_side = "guest"
    masks = True

    def __init__(self, world_id: str, domid: int, port: int) -> None:
        super().__init__(world_id, domid, port)
        # Xen marks the binder's local port pending on bind.
        try:
            assert self.sock is not None
            self.sock.sendto(b"b", self.name)
        except OSError:
            pass


class GuestEventChannel(_Endpoint):
    """The guest's end (bound at boot; no masking, the guest kernel handles upcalls)."""

    side = "guest"
    peer_side = "backend"
    masks = False
