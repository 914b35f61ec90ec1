"""The platform for a simulated world directory (``xcinspect sim DIR`` / ``--sim DIR``).

Pages are mmap-shared files, xenstore is the sim xenstored's unix socket, event channels
are abstract unix datagram sockets (``xcinspect.sim.evtchn``). See ``xcinspect.sim.common``
for the directory layout.
"""

from __future__ import annotations

import json
import mmap
import os

from xcinspect.core import flags as F
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


class SimPlatform(Platform):
    kind = "sim"

    def __init__(self, directory: str) -> None:
        from xcinspect.sim.common import Paths, world_id_for

        self.paths = Paths(directory)
        self.dir = self.paths.dir
        self._world: dict | None = None
        self._world_id = world_id_for(self.dir)

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
            layout = self._world_data().get("default_layout", F.NONE)
        except PlatformError:
            return F.NONE
        return layout if layout in F.LAYOUTS else F.NONE

    def domain_flag_hint(self, domid: int) -> str | None:
        try:
            with open(self.paths.layout(domid), encoding="ascii") as f:
                layout = f.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return layout if layout in F.LAYOUTS else None

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
