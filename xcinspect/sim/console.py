"""One console of the sim xenconsoled: its mapped page, event channel, pty and guest log,
and its service -- an event drains ``out`` into a buffer for the pty (the ``console/limit``
cap discards the middle), the pty feeds ``in``, every event counts against the rate limit.
The daemon (``consoled``) finds the consoles, sets them up and runs the loop."""

from __future__ import annotations

import errno
import mmap
import os
import select
import tty
from collections.abc import Callable

from xcinspect.core.ring import IN_CONS, IN_PROD, IN_SIZE, PAGE_SIZE, U32, PageError, RingIO, RingState
from xcinspect.sim.evtchn import SimEventChannel

RATE_LIMIT_ALLOWANCE = 30
DEFAULT_LIMIT = 1048576
LOG_CAP = 8 << 20  # a guest log is truncated when it grows beyond this (sim housekeeping)


class Epoll:
    """The daemon's epoll set, and whose event channel or pty each fd is."""

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.fds: dict[int, tuple[str, Console]] = {}


class Console:
    """One domain's console as the daemon serves it (``mm``/``ring``: the page, ``ev``: the
    event channel, ``master``/``slave``: the pty, ``buf``: what waits for the pty)."""

    def __init__(self, domid: int, layout: str, epoll: Epoll, on_new_tty: Callable[[Console], None]) -> None:
        self.domid = domid
        self.layout = layout
        self.epoll = epoll
        self.on_new_tty = on_new_tty  # the pty was recreated: publish console/tty
        self.name = f"dom{domid}"
        self.mm: mmap.mmap | None = None
        self.ring: RingIO | None = None
        self.ring_ref: int | None = None
        self.port: int | None = None
        self.ev: SimEventChannel | None = None
        self.master: int | None = None
        self.slave: int | None = None
        self.tty: str | None = None
        self.buf = bytearray()
        self.limit = DEFAULT_LIMIT
        self.log = None
        self.log_size = 0
        self.event_count = 0
        self.rate_limited = False
        self.ev_registered = False
        self.pty_mask = 0
        self.drained = 0
        self.discarded = 0

    def in_free(self) -> int:
        if self.mm is None:
            return 0
        # 0 for corrupt indices, as xenconsoled's "ring is screwed: ignore it"
        return RingState(U32.unpack_from(self.mm, IN_CONS)[0], U32.unpack_from(self.mm, IN_PROD)[0], IN_SIZE).free

    # -- set-up --------------------------------------------------------------------------------
    def map(self, path: str, ring_ref: int) -> bool:
        """Map the page file read-write (if not mapped yet); False if it cannot be."""
        if self.mm is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                try:
                    if os.fstat(fd).st_size != PAGE_SIZE:
                        raise OSError(errno.EINVAL, "page file has the wrong size")
                    self.mm = mmap.mmap(fd, PAGE_SIZE, access=mmap.ACCESS_WRITE)
                finally:
                    os.close(fd)
            except OSError:
                return False
            self.ring = RingIO(self.mm)
            self.ring_ref = ring_ref
        return True

    def open_log(self, path: str) -> None:
        if self.log is not None:
            return
        try:
            self.log = open(path, "ab", buffering=0)
            self.log_size = self.log.tell()
        except OSError:
            self.log = None

    def close(self) -> None:
        """Event channel closed, page unmapped, pty and log closed."""
        self.close_evtchn()
        self.unmap()
        self.close_pty()
        if self.log is not None:
            self.log.close()
            self.log = None

    def create_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        os.set_inheritable(master, False)
        os.set_inheritable(slave, False)
        self.master, self.slave = master, slave
        self.tty = os.ttyname(slave)
        self.pty_mask = 0
        self.epoll.fds[master] = ("pty", self)
        self.update_pty()

    # -- epoll bookkeeping ---------------------------------------------------------------------------
    def register_evtchn(self) -> None:
        if self.ev is None or self.ev_registered:
            return
        fd = self.ev.fileno()
        self.epoll.ep.register(fd, select.EPOLLIN)
        self.epoll.fds[fd] = ("ev", self)
        self.ev_registered = True

    def unregister_evtchn(self) -> None:
        if self.ev is None or not self.ev_registered or self.ev.closed:
            self.ev_registered = False
            return
        fd = self.ev.fileno()
        try:
            self.epoll.ep.unregister(fd)
        except OSError:
            pass
        self.epoll.fds.pop(fd, None)
        self.ev_registered = False

    def update_pty(self) -> None:
        if self.master is None:
            return
        mask = 0
        if self.buf:
            mask |= select.EPOLLOUT
        if self.ring is not None and self.in_free() > 0:
            mask |= select.EPOLLIN
        if mask == self.pty_mask:
            return
        try:
            if self.pty_mask == 0:
                self.epoll.ep.register(self.master, mask)
            elif mask == 0:
                self.epoll.ep.unregister(self.master)
            else:
                self.epoll.ep.modify(self.master, mask)
        except OSError:
            pass
        self.pty_mask = mask

    # -- teardown -------------------------------------------------------------------------------
    def close_evtchn(self) -> None:
        self.unregister_evtchn()
        if self.ev is not None:
            self.ev.close()
        self.ev = None

    def unmap(self) -> None:
        self.ring = None
        if self.mm is not None:
            try:
                self.mm.close()
            except (BufferError, ValueError):
                pass
        self.mm = None
        self.ring_ref = None

    def close_pty(self) -> None:
        if self.master is not None:
            if self.pty_mask:
                try:
                    self.epoll.ep.unregister(self.master)
                except OSError:
                    pass
            self.epoll.fds.pop(self.master, None)
            os.close(self.master)
        if self.slave is not None:
            os.close(self.slave)
        self.master = self.slave = None
        self.pty_mask = 0

    # -- service ----------------------------------------------------------------------------------
    def handle_ring_read(self) -> None:
        if self.ev is None or not self.ev.pending():
            return
        self.event_count += 1
        self.buffer_append()
        if self.event_count < RATE_LIMIT_ALLOWANCE:
            self.ev.unmask()
        else:
            self.rate_limited = True  # stays masked until the next period
            self.unregister_evtchn()

    def buffer_append(self) -> None:
        if self.ring is None:
            return
        try:
            data, new_cons = self.ring.peek_out()
        except PageError:
            return  # ring is screwed: ignore it
        if data:
            self.buf += data
            self.ring.commit_out(new_cons)
            self.drained += len(data)
            if self.ev is not None:
                self.ev.notify()
            if self.log is not None:
                try:
                    if self.log_size > LOG_CAP:
                        self.log.truncate(0)
                        self.log.seek(0)
                        self.log_size = 0
                    self.log.write(data)
                    self.log_size += len(data)
                except OSError:
                    pass
            self.discard_overflow()
        self.handle_tty_write()
        self.update_pty()

    def discard_overflow(self) -> None:
        cap = self.limit
        if cap and len(self.buf) > 5 * cap // 4:
            over = len(self.buf) - cap
            # keep the oldest (cap - over) and the newest `over` bytes: the middle goes
            del self.buf[cap - over: cap]
            self.discarded += over

    def handle_tty_write(self) -> None:
        if self.master is None or not self.buf:
            return
        try:
            n = os.write(self.master, self.buf)
            del self.buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.close_pty()
            self.create_pty()  # console_handle_broken_tty(recreate)
            self.on_new_tty(self)

    def handle_tty_read(self) -> None:
        if self.ring is None or self.master is None:
            return
        free = self.in_free()
        if free <= 0:
            return
        try:
            data = os.read(self.master, min(free, 80))
        except BlockingIOError:
            return
        except OSError:
            return
        if not data:
            return
        try:
            self.ring.write_in(data)
        except PageError:
            return
        if self.ev is not None:
            self.ev.notify()
