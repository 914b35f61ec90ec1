"""Plain data shared by discovery, the monitor and the front ends (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ConsoleInfo:
    """The primary PV console as xenstore describes it (``/local/domain/N/console``)."""

    ring_ref: int | None
    port: int | None
    tty: str | None
    type: str | None
    limit: int | None = None
    output: str | None = None
    backend_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ring_ref": self.ring_ref, "port": self.port, "tty": self.tty, "type": self.type}

    @property
    def served_by_qemu(self) -> bool:
        """``ioemu`` consoles belong to QEMU: show them, never act on them."""
        return self.type not in (None, "", "xenconsoled")


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """One domain from xenstore. ``error`` is set when its keys are malformed."""

    domid: int
    name: str
    console: ConsoleInfo | None
    keys: dict[str, str] = field(default_factory=dict)  # console/* key -> value, as read
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HostInfo:
    kind: str  # "sim" or "dom0"
    xen_version: str  # "4.17.7", or "sim"
    default_layout: str  # flag layout chosen by version (or the sim's default)

    def as_dict(self, flag_layout: str) -> dict[str, Any]:
        return {"kind": self.kind, "xen_version": self.xen_version, "flag_layout": flag_layout}


@dataclass(frozen=True, slots=True)
class BackendFacts:
    """Who (if anyone) services a console, and who is attached to it."""

    consoled_alive: bool | None  # xenconsoled's pid file points at a live process
    port_bound: bool | None  # the guest's console port is bound (None: unknown)
    xcinspect_backend_pid: int | None = None  # our own backend daemon services it
    lock_holder_pid: int | None = None  # holder of /var/lock/xenconsole.<domid>
    lock_holder_cmd: str | None = None

    @property
    def serviced_by(self) -> str | None:
        if self.xcinspect_backend_pid:
            return "xcinspect"
        if self.port_bound:
            return "xenconsoled" if self.consoled_alive else "unknown"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "consoled_alive": self.consoled_alive,
            "port_bound": self.port_bound,
            "serviced_by": self.serviced_by,
            "xcinspect_backend_pid": self.xcinspect_backend_pid,
            "lock_holder_pid": self.lock_holder_pid,
            "lock_holder_cmd": self.lock_holder_cmd,
        }
