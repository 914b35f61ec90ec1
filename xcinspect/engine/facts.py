"""Backend facts per console: who services it, who is attached (any platform)."""

from __future__ import annotations

import os
import time

from xcinspect.core.model import BackendFacts, DomainInfo
from xcinspect.platform import procfs
from xcinspect.platform.base import Platform


def backend_pidfile(platform: Platform, domid: int) -> str:
    return os.path.join(platform.state_dir(), f"backend.{domid}.pid")


def backend_socket(platform: Platform, domid: int) -> str:
    return os.path.join(platform.state_dir(), f"backend.{domid}.sock")


def declined_marker(platform: Platform, domid: int) -> str:
    """Written by connect when xenconsoled ran but did not bind the console after its watch
    was re-fired (so xcinspect's backend took over): stopping that backend leaves the
    console to nobody."""
    return os.path.join(platform.state_dir(), f"backend.{domid}.consoled-declined")


def consoled_declined(platform: Platform, domid: int) -> bool:
    return os.path.exists(declined_marker(platform, domid))


def mark_declined(platform: Platform, domid: int, declined: bool) -> None:
    """Remember (for the disconnect plan) whether xenconsoled did not take this console."""
    path = declined_marker(platform, domid)
    try:
        if declined:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="ascii") as fh:
                fh.write(f"{time.time():.0f}\n")
        elif os.path.exists(path):
            os.unlink(path)
    except OSError:
        pass


def nobody_else(platform: Platform, domid: int, f: BackendFacts) -> str | None:
    """Why no other backend will take the console once xcinspect's backend stops (None:
    xenconsoled runs and is expected to bind it again when its watch is re-fired)."""
    if f.consoled_alive is None:
        return "xenconsoled's state is unknown"
    if not f.consoled_alive:
        return "xenconsoled is not running"
    if consoled_declined(platform, domid):
        return "xenconsoled runs but did not bind this console when xcinspect connected it"
    return None


def backend_pid(platform: Platform, domid: int) -> int | None:
    """Pid of xcinspect's own backend daemon for ``domid`` (it holds a lock on its pid file)."""
    path = backend_pidfile(platform, domid)
    if not os.path.exists(path):
        return None
    holder = procfs.lock_holder(path)
    return holder[0] if holder else None


class FactsTable:
    """Facts for many consoles, reading shared state (lock files) once."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._port_bound = platform.bound_ports()
        try:
            self._locks = {n for n in os.listdir(platform.lock_dir()) if n.startswith("xenconsole.")}
        except OSError:
            self._locks = set()
        try:
            self._backends = {n for n in os.listdir(platform.state_dir()) if n.endswith(".pid")}
        except OSError:
            self._backends = set()

    def facts_for(self, info: DomainInfo, consoled_pid: int | None) -> BackendFacts:
        d = info.domid
        port = info.console.port if info.console else None
        try:
            bound = self._port_bound(d, port) if port is not None else None
        except Exception:
            bound = None
        xpid = backend_pid(self.platform, d) if f"backend.{d}.pid" in self._backends else None
        holder = None
        if f"xenconsole.{d}" in self._locks:
            holder = procfs.lock_holder(self.platform.lock_path(d))
        return BackendFacts(
            consoled_alive=consoled_pid is not None,
            port_bound=bound,
            xcinspect_backend_pid=xpid,
            lock_holder_pid=holder[0] if holder else None,
            lock_holder_cmd=holder[1] if holder else None,
        )


def facts_for(platform: Platform, info: DomainInfo) -> BackendFacts:
    return FactsTable(platform).facts_for(info, platform.consoled_pid())
