"""The small interface every platform (a simulated world, a real dom0) implements.

Everything above this seam -- discovery over xenstore, the monitor, verdicts, actions
(connect, attach, disconnect), the backend service loop, the CLI and the TUI -- is shared
and never asks which platform it runs on.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable

from xcinspect.core.buffer import WritableBuffer
from xcinspect.core.errors import OperatorError


class PlatformError(OperatorError):
    """An environment problem (xenstored, privileges, libraries, a console page)."""


class BindError(PlatformError):
    """The guest's console event channel is already bound by another process."""


class PageMapping(ABC):
    """A mapped console page. ``buf`` is its 4096 bytes (an mmap or a memoryview; read-only
    unless ``writable``: a write through a read-only mapping raises TypeError)."""

    buf: WritableBuffer
    writable: bool

    @abstractmethod
    def close(self) -> None: ...

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes of the page at ``offset``, read now (live memory: from ``buf``).
        OSError when the page can no longer be read."""
        return bytes(self.buf[offset: offset + size])

    def __enter__(self) -> PageMapping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventChannel(ABC):
    """Our end of a console's interdomain event channel (only one process may bind it)."""

    @abstractmethod
    def fileno(self) -> int:
        """Readable when a notification is pending."""

    @abstractmethod
    def pending(self) -> bool:
        """Consume pending notifications without blocking; True if there were any.
        As on Xen, a delivered port stays masked until ``unmask``."""

    @abstractmethod
    def unmask(self) -> None: ...

    @abstractmethod
    def notify(self) -> None:
        """Kick the guest."""

    @abstractmethod
    def close(self) -> None:
        """Unbind: the guest's port becomes unbound and another backend may bind it."""


class Platform(ABC):
    """Platform primitives. Implementations: ``sim.SimPlatform``, ``dom0.Dom0Platform``."""

    kind: str  # "sim" | "dom0"
    # ``--read-only``: no writable page mapping and no event channel binding, whoever asks.
    read_only: bool = False

    def refuse_in_read_only(self, what: str) -> None:
        """Raise PlatformError when in read-only mode (every write path calls this)."""
        if self.read_only:
            raise PlatformError(f"read-only mode: refusing to {what}")

    @abstractmethod
    def check(self, *, need_write: bool = False) -> None:
        """Raise PlatformError if this environment cannot work (privileges, libraries,
        xenstore socket). ``need_write``: an action will write to a page."""

    @abstractmethod
    def xenstore_path(self) -> str:
        """Unix socket path of xenstored (``xs.XsClient`` connects to it)."""

    @abstractmethod
    def xen_version(self) -> str:
        """"4.17.7"-style version, or "sim"."""

    @abstractmethod
    def default_flag_layout(self) -> str:
        """Flag layout ``auto`` resolves to on this host."""

    def domain_flag_hint(self, domid: int) -> str | None:
        """A per-domain layout recorded by the platform (sim page files do); else None."""
        return None

    @abstractmethod
    def map_page(self, domid: int, ring_ref: int | None, *, writable: bool = False) -> PageMapping:
        """Map the console page. Raise PlatformError when it cannot be mapped."""

    # Read-only mappings are live shared memory (refresh_pages has nothing to do). The sim
    # sets this False when it keeps private copies of its pages.
    live_pages = True

    def refresh_pages(self) -> list[tuple[PageMapping, str]]:
        """Once per sampling round, before pages are read: bring read-only mappings up to
        date and report (mapping, reason) for each that can no longer be read. Real
        mappings are live memory that cannot go away: nothing to do (the sim's copies)."""
        return []

    @abstractmethod
    def bind_evtchn(self, domid: int, remote_port: int) -> EventChannel:
        """Bind the guest's console port. Raise BindError when another process holds it."""

    @abstractmethod
    def port_bound(self, domid: int, port: int | None) -> bool | None:
        """True when the guest's console port is bound by some backend, False when
        unbound, None when it cannot be told."""

    def bound_ports(self) -> Callable[[int, int | None], bool | None]:
        """``port_bound`` for one pass over many consoles. A platform that can list every
        bound port at once (the sim: one read of /proc/net/unix instead of a socket per
        console) answers from that list, taken now; the rest ask ``port_bound`` each time."""
        return self.port_bound

    @abstractmethod
    def consoled_pid(self) -> int | None:
        """Pid of a live xenconsoled (pid file checked against /proc), else None."""

    @abstractmethod
    def lock_dir(self) -> str:
        """Where ``xenconsole.<domid>`` lock files live (/var/lock on dom0)."""

    @abstractmethod
    def state_dir(self) -> str:
        """Where xcinspect keeps backend-daemon pid files and sockets."""

    @abstractmethod
    def log_dir(self) -> str:
        """Where xcinspect's backend writes drained console output."""

    @abstractmethod
    def audit_log_path(self) -> str: ...

    def lock_path(self, domid: int) -> str:
        return os.path.join(self.lock_dir(), f"xenconsole.{domid}")

    def describe(self) -> str:
        return self.kind

    def close(self) -> None:
        return None
