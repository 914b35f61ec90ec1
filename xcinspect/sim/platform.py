"""The platform for a simulated world directory (``xcinspect sim DIR`` / ``--sim DIR``).

Pages are files, xenstore is the sim xenstored's unix socket, event channels are abstract
unix datagram sockets (``xcinspect.sim.evtchn``). See ``xcinspect.sim.common`` for the
directory layout.

Writable mappings (a backend, set-flag) are shared mmaps: the guest must see the stores.
Read-only "mappings" (every observer) are private copies refreshed with ``pread`` once per
sampling round (``refresh_pages``), not mmaps: a page file truncated under an mmap kills
the reader with SIGBUS, which no Python code can catch, while ``pread`` just reads short.
A truncated or deleted page file is then reported, and mapped again once it is back. (On
Xen a mapped page cannot shrink or vanish; this is the sim's failure mode only.) The copy
costs one ``preadv`` per console per round; ``mmap_reads=True`` restores shared read-only
mmaps (what a dom0 mapping costs, for benchmarks), SIGBUS included.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import time
from collections.abc import Callable

from xcinspect.core import flags
from xcinspect.core.ring import PAGE_SIZE
from xcinspect.platform.base import EventChannel, PageMapping, Platform, PlatformError


class SimPageMapping(PageMapping):
    def __init__(self, buf: mmap.mmap, writable: bool, path: str) -> None:
        self.buf = buf
        self.writable = writable
        self.path = path

    def close(self) -> None:
        buf, self.buf = self.buf, None
        if buf is not None:
            try:
                buf.close()
            except BufferError:
                # Someone still holds a view (memoryview) of the page; leave it to the GC.
                pass


class SimPageCopy(PageMapping):
    """A read-only sim page: a private copy of the page file, refreshed by ``refresh``.
    ``buf`` is a read-only view of it (a write through it raises TypeError)."""

    writable = False

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self._data = bytearray(PAGE_SIZE)
        self.buf = memoryview(self._data).toreadonly()
        self.refresh()

    def refresh(self) -> None:
        """Read the page file again; OSError when it is no longer a whole page."""
        n = os.preadv(self.fd, [self._data], 0)
        if n != PAGE_SIZE:
            raise OSError(errno.EIO, f"console page file truncated to {n} bytes")

    def read_at(self, offset: int, size: int) -> bytes:
        """From the page file itself, not the copy (which the poller may be refreshing)."""
        if self.fd < 0:
            raise OSError(errno.EBADF, "console page closed")
        data = os.pread(self.fd, size, offset)
        if len(data) != size:
            raise OSError(errno.EIO, f"console page file truncated (read {len(data)} of {size} bytes at {offset})")
        return data

    def deleted(self) -> bool:
        return os.fstat(self.fd).st_nlink == 0

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class SimPlatform(Platform):
    kind = "sim"
    LINK_CHECK = 1.0  # seconds between checks that page files still exist

    def __init__(self, directory: str, *, mmap_reads: bool = False) -> None:
        from xcinspect.sim.common import Paths, world_id_for

        self.paths = Paths(directory)
        self.dir = self.paths.dir
        self._world: dict | None = None
        self._world_id = world_id_for(self.dir)
        self.mmap_reads = mmap_reads
        self.live_pages = mmap_reads  # otherwise refresh_pages re-reads the private copies
        self._copies: list[SimPageCopy] = []
        self._next_link_check = 0.0

    # -- world.json ----------------------------------------------------------------------------
    def _read_world(self) -> dict:
        try:
            with open(self.paths.world_json, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise self._no_world() from None
        except (OSError, ValueError) as exc:
            raise PlatformError(f"cannot read {self.paths.world_json}: {exc}") from None
        if not isinstance(data, dict):
            raise PlatformError(f"{self.paths.world_json} is not a sim world description")
        self._world = data
        if isinstance(data.get("world_id"), str):
            self._world_id = data["world_id"]
        return data

    def _world_data(self) -> dict:
        if self._world is None:
            return self._read_world()
        return self._world

    def _no_world(self) -> PlatformError:
        return PlatformError(
            f"no sim world at {self.dir} (start one with `xcinspect sim {self.dir}`)",
        )

    @property
    def world_id(self) -> str:
        try:
            self._world_data()
        except PlatformError:
            pass
        return self._world_id

    # -- Platform ------------------------------------------------------------------------------
    def check(self, *, need_write: bool = False) -> None:
        if not os.path.isfile(self.paths.world_json):
            raise self._no_world()
        self._read_world()
        if not os.path.exists(self.paths.socket):
            raise PlatformError(
                f"no sim world at {self.dir} (start one with `xcinspect sim {self.dir}`)",
                "world.json exists but the sim xenstored is not running",
            )
        if need_write and not os.access(self.paths.pages, os.W_OK):
            raise PlatformError(f"cannot write console pages in {self.paths.pages}")

    def xenstore_path(self) -> str:
        return self.paths.socket

    def xen_version(self) -> str:
        try:
            return str(self._world_data().get("xen_version", "sim"))
        except PlatformError:
            return "sim"

    def default_flag_layout(self) -> str:
        try:
            layout = self._world_data().get("default_layout", flags.NONE)
        except PlatformError:
            return flags.NONE
        return layout if layout in flags.LAYOUTS else flags.NONE

    def domain_flag_hint(self, domid: int) -> str | None:
        try:
            with open(self.paths.layout(domid), encoding="ascii") as f:
                layout = f.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return layout if layout in flags.LAYOUTS else None

    def map_page(self, domid: int, ring_ref: int | None, *, writable: bool = False) -> PageMapping:
        if writable:
            self.refuse_in_read_only(f"map the console page of domain {domid} writable")
        path = self.paths.page(domid)
        try:
            fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PlatformError(f"console page of domain {domid} is gone", f"{path} does not exist") from None
        except OSError as exc:
            raise PlatformError(f"cannot open the console page of domain {domid}: {exc.strerror}") from None
        if not writable and not self.mmap_reads:
            try:
                copy = SimPageCopy(fd, path)
            except OSError as exc:
                os.close(fd)
                raise PlatformError(f"console page of domain {domid} is unreadable: {exc.strerror or exc}",
                                    f"{path} was truncated or replaced") from None
            self._copies.append(copy)
            return copy
        try:
            size = os.fstat(fd).st_size
            if size != PAGE_SIZE:
                raise PlatformError(
                    f"console page of domain {domid} is {size} bytes, not {PAGE_SIZE}",
                    f"{path} was truncated or replaced",
                )
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            try:
                buf = mmap.mmap(fd, PAGE_SIZE, access=access)
            except (OSError, ValueError) as exc:
                raise PlatformError(f"cannot map the console page of domain {domid}: {exc}") from None
        finally:
            os.close(fd)
        return SimPageMapping(buf, writable, path)

    def refresh_pages(self) -> list[tuple[PageMapping, str]]:
        """Re-read every open read-only page; (mapping, reason) for each that is gone."""
        if not self._copies:
            return []
        now = time.monotonic()
        links = now >= self._next_link_check
        if links:
            self._next_link_check = now + self.LINK_CHECK
        lost: list[tuple[PageMapping, str]] = []
        keep: list[SimPageCopy] = []
        for c in self._copies:
            if c.fd < 0:
                continue  # closed by its owner
            try:
                c.refresh()
                if links and c.deleted():
                    raise OSError(errno.ENOENT, "console page file was deleted")
            except OSError as exc:
                lost.append((c, f"{exc.strerror or exc} ({c.path})"))
                continue
            keep.append(c)
        self._copies = keep
        return lost

    def bind_evtchn(self, domid: int, remote_port: int) -> EventChannel:
        from xcinspect.sim.evtchn import SimEventChannel

        self.refuse_in_read_only(f"bind the console event channel of domain {domid}")
        if remote_port is None:
            raise PlatformError(f"domain {domid} has no console event channel port")
        return SimEventChannel(self.world_id, domid, remote_port)

    def port_bound(self, domid: int, port: int | None) -> bool | None:
        if port is None:
            return None
        from xcinspect.sim.evtchn import port_bound

        return port_bound(self.world_id, domid, port)

    def bound_ports(self) -> Callable[[int, int | None], bool | None]:
        from xcinspect.sim.evtchn import bound_backends

        bound = bound_backends(self.world_id)
        if bound is None:
            return self.port_bound
        return lambda domid, port: None if port is None else (int(domid), int(port)) in bound

    def consoled_pid(self) -> int | None:
        from xcinspect.sim.common import pid_alive

        try:
            with open(self.paths.consoled_pid, encoding="ascii") as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def lock_dir(self) -> str:
        return self.paths.lock

    def state_dir(self) -> str:
        return self.paths.state

    def log_dir(self) -> str:
        return self.paths.logs

    def audit_log_path(self) -> str:
        return self.paths.audit

    def describe(self) -> str:
        return f"sim:{self.dir}"
