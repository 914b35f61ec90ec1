"""The real platform: a Xen dom0 (tested on Debian bookworm, Xen 4.17, oxenstored).

Everything it reads from the file system goes through ``root`` ("/" by default) so tests
can fake /proc/xen, /sys/hypervisor, pid files and sockets; ``proc`` (default
``<root>/proc``) is separate so a fake tree can still see real processes. The Xen
libraries come from ``xenlibs.XenLibs`` (cffi ABI mode); pass ``libs=`` to replace them.

Xenstore route: the xenstored unix socket only. If it is missing but ``/dev/xen/xenbus``
exists (xenstored in a stub domain), that is reported as an error instead of falling back:

* ``XsClient`` rebuilds a hung connection by closing it: ``shutdown(SHUT_RDWR)`` on the
  socket wakes its reader thread out of ``recv``. On the xenbus device only ``close``
  exists, which does not wake a thread blocked in ``read()`` on it: every rebuild
  against a hung xenstored would leak a thread stuck forever, and the UI's "never
  freeze, rebuild" guarantee would be a leak instead.
* ``Platform.xenstore_path`` returns a socket path and ``XsClient`` connects to it; a
  xenbus route would need a connection factory there.
"""

from __future__ import annotations

import os
import socket
import stat
import time

from xcinspect.core import flags
from xcinspect.platform import procfs
from xcinspect.platform.base import EventChannel, PageMapping, Platform, PlatformError

SIM_HINT = "try --sim for a demo"

CONSOLED_PIDFILES = ("/run/xenconsoled.pid", "/var/run/xen/xenconsoled.pid")
XENSTORED_SOCKETS = ("/var/run/xenstored/socket", "/run/xenstored/socket")


class Dom0Platform(Platform):
    kind = "dom0"

    def __init__(self, root: str = "/", *, proc: str | None = None, libs=None, env=None,
                 euid: int | None = None, socket_timeout: float = 1.0) -> None:
        self.root = root
        self.proc = proc if proc is not None else self._p("/proc")
        self.env = os.environ if env is None else env
        self._euid = euid
        self.socket_timeout = socket_timeout
        self._libs = libs
        self._version: str | None = None

    # -- paths ------------------------------------------------------------------------------
    def _p(self, path: str) -> str:
        """``path`` (absolute) under ``root``."""
        if self.root in ("", "/"):
            return path
        return os.path.join(self.root, path.lstrip("/"))

    @property
    def libs(self):
        if self._libs is None:
            from xcinspect.platform.xenlibs import XenLibs

            parsed = flags.parse_version(read_sysfs_version(self._p("/sys/hypervisor/version")) or "")
            self._libs = XenLibs(ctrl_prefer=f"{parsed[0]}.{parsed[1]}" if parsed else None)
        return self._libs

    def euid(self) -> int:
        return os.geteuid() if self._euid is None else self._euid

    # -- checks ------------------------------------------------------------------------------
    def check(self, *, need_write: bool = False) -> None:
        """Raise PlatformError (one line + hint) for the first thing that stops us.

        Order: not dom0 (nothing else helps then) -> not root -> Xen libraries ->
        xenstored -> Xen devices -> (writes) a memory barrier.
        """
        self._check_dom0()
        self._check_root()
        self._check_libs(need_write)
        self._check_xenstored()
        self._check_devices(need_write)
        if need_write:
            self._check_fence()

    def _check_dom0(self) -> None:
        path = self._p("/proc/xen/capabilities")
        try:
            with open(path, "rb") as f:
                caps = f.read(4096).decode("ascii", "replace")
        except PermissionError:
            return  # cannot tell without root: the root check speaks next
        except OSError:
            xen_dir = os.path.isdir(self._p("/proc/xen"))
            hv = _read_text(self._p("/sys/hypervisor/type"))
            if xen_dir and hv == "xen":
                raise PlatformError("this is not a Xen dom0 (no control_d in /proc/xen/capabilities: "
                                    "xenfs is not mounted)",
                                    hint=f"mount -t xenfs xenfs /proc/xen, or {SIM_HINT}") from None
            raise PlatformError("this is not a Xen dom0 (no control_d in /proc/xen/capabilities)",
                                hint=f"run xcinspect in dom0, or {SIM_HINT}") from None
        if "control_d" not in caps:
            raise PlatformError("this is not a Xen dom0 (no control_d in /proc/xen/capabilities)",
                                hint=f"run xcinspect in dom0, or {SIM_HINT}")

    def _check_root(self) -> None:
        uid = self.euid()
        if uid != 0:
            raise PlatformError(f"xcinspect needs root on dom0 (running as uid {uid})",
                                hint=f"run it with sudo, or {SIM_HINT}")

    def _check_libs(self, need_write: bool) -> None:
        keys = ("gnttab", "foreignmemory") + (("evtchn",) if need_write else ())
        self.libs.require(*keys)

    def _check_xenstored(self) -> None:
        path = self.xenstore_path()
        try:
            st = os.stat(path)
        except OSError:
            raise PlatformError(f"xenstored is unreachable: {path} does not exist (is xenstored running?)",
                                hint=f"start the Xen services (/etc/init.d/xen start), or {SIM_HINT}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise PlatformError(f"xenstored is unreachable: {path} is not a socket",
                                hint=f"set XENSTORED_PATH to xenstored's socket, or {SIM_HINT}")
        deadline = time.monotonic() + self.socket_timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.socket_timeout)
            try:
                s.connect(path)
                return
            except BlockingIOError:  # accept queue full: xenstored busy or hung
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                why = "it does not accept connections (hung?)"
            except OSError as exc:
                why = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
            finally:
                s.close()
            raise PlatformError(f"xenstored is unreachable at {path}: {why}",
                                hint=f"is xenstored running? (/etc/init.d/xen start), or {SIM_HINT}")

    def _check_devices(self, need_write: bool) -> None:
        maps = [self._p(p) for p in ("/dev/xen/gntdev", "/dev/xen/privcmd", "/proc/xen/privcmd")]
        if not any(os.path.exists(p) for p in maps):
            raise PlatformError("cannot map console pages: neither /dev/xen/gntdev nor /dev/xen/privcmd exists",
                                hint="modprobe xen-gntdev xen-privcmd")
        if need_write and not os.path.exists(self._p("/dev/xen/evtchn")):
            raise PlatformError("cannot service consoles: /dev/xen/evtchn does not exist",
                                hint="modprobe xen-evtchn")

    def _check_fence(self) -> None:
        from xcinspect.platform import fence

        f = fence.get_fence()
        if not f.safe:
            raise PlatformError(f"no memory barrier on this host ({f.reason}): xcinspect will not write to "
                                "console pages", hint="observing works; leave servicing to xenconsoled")

    # -- xenstore ------------------------------------------------------------------------------
    def xenstore_path(self) -> str:
        """``$XENSTORED_PATH``, else ``$XENSTORED_RUNDIR/socket``, else the Debian/upstream
        default ``/var/run/xenstored/socket`` (the same file as /run/xenstored/socket)."""
        explicit = self.env.get("XENSTORED_PATH")
        if explicit:
            return explicit
        candidates = []
        rundir = self.env.get("XENSTORED_RUNDIR")
        if rundir:
            candidates.append(os.path.join(rundir, "socket"))
        candidates += [self._p(p) for p in XENSTORED_SOCKETS]
        for c in candidates:
            if os.path.exists(c):
                return c
        for dev in ("/dev/xen/xenbus", "/proc/xen/xenbus"):
            if os.path.exists(self._p(dev)):
                raise PlatformError(
                    f"xenstored's socket {candidates[0]} is missing and only {dev} exists (xenstored in a "
                    "stub domain?): xcinspect needs the socket (its client, watches and timeouts do not work "
                    "over xenbus)",
                    hint=f"run xenstored in dom0 or set XENSTORED_PATH, or {SIM_HINT}")
        return candidates[0]

    # -- version -------------------------------------------------------------------------------
    def xen_version(self) -> str:
        """"4.17.7" from /sys/hypervisor/version/{major,minor,extra}; libxenctrl's
        xc_version when sysfs lacks it; else "unknown"."""
        if self._version is None:
            v = read_sysfs_version(self._p("/sys/hypervisor/version"))
            if v is None:
                try:
                    v = self.libs.hypervisor_version()
                except (PlatformError, OSError, AttributeError):
                    v = None
            self._version = v or "unknown"
        return self._version

    def default_flag_layout(self) -> str:
        parsed = flags.parse_version(self.xen_version())
        return flags.layout_for_version(*(parsed or (None, None)))

    # -- pages and channels ----------------------------------------------------------------------
    def map_page(self, domid: int, ring_ref: int | None, *, writable: bool = False) -> PageMapping:
        """Grant ref 0 (GNTTAB_RESERVED_CONSOLE) first, then a foreign map of ``ring_ref``
        (a frame number). Read-only unless ``writable``."""
        _check_domid(domid)
        if writable:
            self.refuse_in_read_only(f"map the console page of domain {domid} writable")
        errors = []
        try:
            return self.libs.gnttab_map(domid, 0, writable=writable)
        except PlatformError as exc:
            errors.append(exc.message)
            lib_missing = "is missing" in exc.message
        if ring_ref is None or not isinstance(ring_ref, int) or not 0 < ring_ref < (1 << 64):
            errors.append(f"no usable ring-ref to foreign-map ({ring_ref!r})")
        else:
            try:
                return self.libs.foreign_map(domid, ring_ref, writable=writable)
            except PlatformError as exc:
                errors.append(exc.message)
                lib_missing = lib_missing and "is missing" in exc.message
        hint = None
        if lib_missing:
            from xcinspect.platform.xenlibs import LIB_HINT

            hint = LIB_HINT
        mode = "read-write" if writable else "read-only"
        raise PlatformError(f"cannot map the console page of domain {domid} {mode}: " + "; ".join(errors), hint=hint)

    def bind_evtchn(self, domid: int, remote_port: int) -> EventChannel:
        _check_domid(domid)
        self.refuse_in_read_only(f"bind the console event channel of domain {domid}")
        if not isinstance(remote_port, int) or remote_port <= 0:
            raise PlatformError(f"domain {domid} has no valid console port ({remote_port!r})")
        return self.libs.bind_interdomain(domid, remote_port)

    def port_bound(self, domid: int, port: int | None) -> bool | None:
        """xc_evtchn_status (or lsevtchn) on the guest's port: interdomain -> True,
        unbound -> False, anything else or unknown -> None."""
        if port is None or not isinstance(port, int) or port <= 0:
            return None
        try:
            status = self.libs.evtchn_status(domid, port)
        except PlatformError:
            return None
        from xcinspect.platform import xenlibs

        if status == xenlibs.EVTCHNSTAT_interdomain:
            return True
        if status == xenlibs.EVTCHNSTAT_unbound:
            return False
        return None

    # -- backend facts ---------------------------------------------------------------------------
    def consoled_pid(self) -> int | None:
        return procfs.read_pidfile([self._p(p) for p in CONSOLED_PIDFILES], proc=self.proc, comm="xenconsoled")

    def lock_dir(self) -> str:
        return self._p("/var/lock")

    def state_dir(self) -> str:
        return self._p("/run/xcinspect")

    def log_dir(self) -> str:
        return self._p("/var/log/xcinspect")

    def audit_log_path(self) -> str:
        return self._p("/var/log/xcinspect/audit.log")

    def describe(self) -> str:
        return f"dom0 (Xen {self.xen_version()})"

    def close(self) -> None:
        if self._libs is not None:
            self._libs.close()


# -- helpers -----------------------------------------------------------------------------------
def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(256).decode("ascii", "replace").strip()
    except OSError:
        return None


def read_sysfs_version(directory: str) -> str | None:
    """"4.17.7" from ``<dir>/major`` "4", ``minor`` "17", ``extra`` ".7" (or "-pre",
    "-rc", ""); None when major or minor is missing or not a number."""
    major = _read_text(os.path.join(directory, "major"))
    minor = _read_text(os.path.join(directory, "minor"))
    if not major or not minor or not major.isdigit() or not minor.isdigit():
        return None
    extra = _read_text(os.path.join(directory, "extra")) or ""
    extra = "".join(ch for ch in extra if ch.isprintable() and not ch.isspace())[:32]
    return f"{int(major)}.{int(minor)}{extra}"


def _check_domid(domid) -> None:
    if not isinstance(domid, int) or isinstance(domid, bool) or not 0 <= domid < 0x7FF0:
        raise PlatformError(f"invalid domain id {domid!r}")


__all__ = ["CONSOLED_PIDFILES", "XENSTORED_SOCKETS", "Dom0Platform", "read_sysfs_version"]
