"""What the Xen libraries hand back, as Python objects: a mapped console page
(``MappedPage``), our end of a bound event channel (``EvtchnPort``), and the error of a
failed call (``XenCallError``, with ``errno``). ``platform/xenlibs.py`` opens the libraries
and makes these; closing one unmaps or unbinds with the API that made it."""

from __future__ import annotations

import mmap as _mmap
import os
import select
import threading

from xcinspect.platform.base import EventChannel, PageMapping, PlatformError
from xcinspect.platform.xen_abi import MAP_FIXED_NOREPLACE, PAGE_SIZE, ffi, libc


class XenCallError(PlatformError):
    """A Xen library call failed; ``errno`` says why."""

    def __init__(self, message: str, err: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.errno = err


def strerror(err: int) -> str:
    return os.strerror(err) if err else "unknown error"


def plug_hole(addr: int, writable: bool) -> None:
    """Put an anonymous page where a console page was unmapped, so that a stale view of
    the old buffer reads zeros instead of crashing the process. Never replaces anything
    (MAP_FIXED_NOREPLACE)."""
    try:
        c = libc()
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        p = c.mmap(ffi.cast("void *", addr), PAGE_SIZE, prot,
                   _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
        got = int(ffi.cast("uintptr_t", p))
        if got not in (addr, (1 << (8 * ffi.sizeof("void *"))) - 1):
            c.munmap(p, PAGE_SIZE)  # old kernel: the flag was a hint and it landed elsewhere
    except (OSError, AttributeError, TypeError, OverflowError):
        pass  # best effort: a stale view then faults, as it would without this


class MappedPage(PageMapping):
    """A mapped console page. ``buf`` is a memoryview of the 4096 bytes -- read-only
    (``toreadonly``) unless mapped writable, so no code path can write through a
    read-only mapping. ``close`` unmaps with the API that mapped it; it is idempotent."""

    def __init__(self, ptr, *, writable: bool, how: str, domid: int, unmap) -> None:
        self._ptr = ptr
        self.address = int(ffi.cast("uintptr_t", ptr))
        self.writable = writable
        self.how = how  # "grant" | "foreign"
        self.domid = domid
        self._unmap = unmap
        self._raw = memoryview(ffi.buffer(ptr, PAGE_SIZE))
        self.buf = self._raw if writable else self._raw.toreadonly()
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        with self._lock:
            if self._ptr is None:
                return
            ptr, self._ptr = self._ptr, None
        for view in (self.buf, self._raw):
            try:
                view.release()
            except (BufferError, ValueError):
                pass
        try:
            self._unmap(ptr)
        finally:
            plug_hole(self.address, self.writable)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("rw" if self.writable else "ro")
        return f"<MappedPage dom{self.domid} {self.how} {state} @{self.address:#x}>"


class EvtchnPort(EventChannel):
    """Our end of an interdomain channel, on its own xenevtchn handle (as xenconsoled)."""

    def __init__(self, lib, handle, local_port: int, domid: int, remote_port: int) -> None:
        self._lib = lib
        self._h = handle
        self.local_port = local_port
        self.domid = domid
        self.remote_port = remote_port
        self._fd = lib.xenevtchn_fd(handle)
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._h is None

    def fileno(self) -> int:
        return self._fd

    def pending(self) -> bool:
        """Poll the fd first: the header warns xenevtchn_pending can block otherwise."""
        if self._h is None:
            return False
        got = False
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        for _ in range(64):
            if not poller.poll(0):
                break
            port = self._lib.xenevtchn_pending(self._h)
            if port < 0:
                break
            got = True  # only our port is bound on this handle
        return got

    def _call(self, what: str, rc: int) -> None:
        if rc < 0:
            err = ffi.errno
            raise XenCallError(f"{what} on port {self.local_port} (domain {self.domid}) failed: {strerror(err)}", err)

    def unmask(self) -> None:
        if self._h is not None:
            self._call("unmask", self._lib.xenevtchn_unmask(self._h, self.local_port))

    def notify(self) -> None:
        if self._h is not None:
            self._call("notify", self._lib.xenevtchn_notify(self._h, self.local_port))

    def close(self) -> None:
        with self._lock:
            h, self._h = self._h, None
        if h is None:
            return
        try:
            self._lib.xenevtchn_unbind(h, self.local_port)
        finally:
            self._lib.xenevtchn_close(h)

    def __repr__(self) -> str:
        return f"<EvtchnPort dom{self.domid}:{self.remote_port} local {self.local_port}{' closed' if self.closed else ''}>"
