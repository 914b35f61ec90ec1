"""cffi ABI-mode bindings for the dom0 Xen libraries: dom0 needs no compiler.

Stable libraries, opened by soname (Debian bookworm package in brackets):

* ``libxengnttab.so.1``         (libxengnttab1)        map grant ref 0 of a guest
* ``libxenforeignmemory.so.1``  (libxenforeignmemory1) foreign-map ``console/ring-ref``
* ``libxenevtchn.so.1``         (libxenevtchn1)        bind / notify / unmask a port
* ``libxentoollog.so.1``        (libxentoollog1)       a silent logger for the above

and, optionally, ``libxenctrl.so.<xen version>`` (libxenmisc4.17) for ``xc_evtchn_status``
(is a guest's console port unbound or bound?) and ``xc_version``. Its soname follows the
Xen release, so it is found by globbing the library directories. Without it,
``lsevtchn <domid>`` output is parsed; failing that the answer is "unknown" (None).

Every library is handed a logger that drops all messages: with a NULL logger the Xen
libraries print their errors on stderr, which would scribble over the TUI. Failures are
reported through errno instead.

Seam for tests: ``XenLibs(dlopen=...)`` decides how libraries are loaded (names that do not
exist give the real "missing library" path), and the dom0 platform takes any object with
``XenLibs``' methods. Nothing here pretends to be Xen. The objects it hands back (a
mapped page, a bound port, the error of a failed call) are in ``xen_handles``.
"""

from __future__ import annotations

import errno as _errno
import mmap as _mmap
import subprocess
import threading
import time
import weakref

from xcinspect.platform.base import BindError, PlatformError
from xcinspect.platform.xen_abi import (  # noqa: F401  (re-exported: the platform and tests use them from here)
    CDEF,
    DOMID_FIRST_RESERVED,
    GNTTAB_RESERVED_CONSOLE,
    LIB_HINT,
    LIBDIRS,
    LSEVTCHN_GLOBS,
    MAP_FIXED_NOREPLACE,
    PAGE_SIZE,
    SPECS,
    STATUS_NAMES,
    XTL_NUM_LEVELS,
    EVTCHNSTAT_closed,
    EVTCHNSTAT_interdomain,
    EVTCHNSTAT_ipi,
    EVTCHNSTAT_pirq,
    EVTCHNSTAT_unbound,
    EVTCHNSTAT_virq,
    LibSpec,
    XENVER_extraversion,
    XENVER_version,
    ffi,
    find_libxenctrl,
    find_lsevtchn,
    libc,
    parse_lsevtchn,
)
from xcinspect.platform.xen_handles import (
    EvtchnPort,
    MappedPage,
    XenCallError,
    strerror,
)


# -- the libraries ------------------------------------------------------------------------------
class XenLibs:
    """Lazily loaded Xen libraries and their long-lived handles.

    ``dlopen``: how to load a library by name (default ``ffi.dlopen``). ``names``: override
    sonames per key (``{"gnttab": "libxengnttab.so.1"}``). ``libdirs``: where to look for
    libxenctrl. ``lsevtchn``: path of the lsevtchn tool ("" disables the fallback).
    ``ctrl_prefer``: libxenctrl version to prefer, e.g. "4.17".
    """

    def __init__(self, *, dlopen=None, names: dict | None = None, libdirs=LIBDIRS,
                 lsevtchn: str | None = None, ctrl_prefer: str | None = None) -> None:
        self._dlopen = dlopen or ffi.dlopen
        self.names = {k: s.soname for k, s in SPECS.items()}
        self.names.update(names or {})
        self.libdirs = tuple(libdirs)
        self.ctrl_prefer = ctrl_prefer
        self._lsevtchn = lsevtchn
        self._lock = threading.RLock()
        self._libs: dict[str, object] = {}
        self._errors: dict[str, str] = {}
        self._logger = None
        self._gnttab = None
        self._fmem = None
        self._xc = None
        self._xc_lib = None
        self._xc_tried = False
        self.ctrl_path: str | None = None
        self._ls_cache: dict[int, tuple[float, dict[int, int] | None, int]] = {}
        self._live: weakref.WeakSet = weakref.WeakSet()

    # -- loading -----------------------------------------------------------------------------
    def lib(self, key: str):
        """The loaded library ``key``; PlatformError naming it when it cannot be loaded."""
        with self._lock:
            if key in self._libs:
                return self._libs[key]
            name = self.names[key]
            spec = SPECS[key]
            if key not in self._errors:
                try:
                    self._libs[key] = self._dlopen(name)
                    return self._libs[key]
                except OSError as exc:
                    self._errors[key] = str(exc)
            raise PlatformError(f"{name} is missing ({spec.package}, needed {spec.purpose})", hint=LIB_HINT)

    def missing(self, keys=("gnttab", "foreignmemory", "evtchn")) -> list[str]:
        """Sonames of the libraries among ``keys`` that cannot be loaded."""
        out = []
        for k in keys:
            try:
                self.lib(k)
            except PlatformError:
                out.append(self.names[k])
        return out

    def require(self, *keys: str) -> None:
        """PlatformError for the first library among ``keys`` that cannot be loaded."""
        for k in keys:
            self.lib(k)

    def logger(self):
        """A logger that prints nothing (NULL if libxentoollog is unavailable)."""
        with self._lock:
            if self._logger is None:
                self._logger = ffi.NULL
                try:
                    tl = self.lib("toollog")
                    f = libc().fopen(b"/dev/null", b"w")
                    if f != ffi.NULL:
                        lg = tl.xtl_createlogger_stdiostream(f, XTL_NUM_LEVELS, 0)
                        if lg != ffi.NULL:
                            self._logger = ffi.cast("xentoollog_logger *", lg)
                except (PlatformError, AttributeError, OSError):
                    pass
            return self._logger

    # -- grant and foreign maps ------------------------------------------------------------------
    def _gnttab_handle(self):
        lib = self.lib("gnttab")
        with self._lock:
            if self._gnttab is None:
                h = lib.xengnttab_open(self.logger(), 0)
                if h == ffi.NULL:
                    err = ffi.errno
                    raise XenCallError(f"cannot open the grant device /dev/xen/gntdev: {strerror(err)}", err,
                                       hint="load the module: modprobe xen-gntdev")
                self._gnttab = h
            return lib, self._gnttab

    def _fmem_handle(self):
        lib = self.lib("foreignmemory")
        with self._lock:
            if self._fmem is None:
                h = lib.xenforeignmemory_open(self.logger(), 0)
                if h == ffi.NULL:
                    err = ffi.errno
                    raise XenCallError(f"cannot open /dev/xen/privcmd: {strerror(err)}", err,
                                       hint="load the module: modprobe xen-privcmd")
                self._fmem = h
            return lib, self._fmem

    @staticmethod
    def _prot(writable: bool) -> int:
        return _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)

    def gnttab_map(self, domid: int, ref: int = GNTTAB_RESERVED_CONSOLE, *, writable: bool = False) -> MappedPage:
        lib, h = self._gnttab_handle()
        ptr = lib.xengnttab_map_grant_ref(h, domid, ref, self._prot(writable))
        if ptr == ffi.NULL:
            err = ffi.errno
            raise XenCallError(f"grant ref {ref}: {strerror(err)}", err)
        m = MappedPage(ptr, writable=writable, how="grant", domid=domid,
                       unmap=lambda p, _l=lib, _h=h: _l.xengnttab_unmap(_h, p, 1))
        self._live.add(m)
        return m

    def foreign_map(self, domid: int, pfn: int, *, writable: bool = False) -> MappedPage:
        lib, h = self._fmem_handle()
        arr = ffi.new("xen_pfn_t[1]", [pfn])
        errs = ffi.new("int[1]")
        ptr = lib.xenforeignmemory_map(h, domid, self._prot(writable), 1, arr, errs)
        if ptr == ffi.NULL:
            err = ffi.errno
            raise XenCallError(f"foreign map of frame {pfn:#x}: {strerror(err)}", err)
        if errs[0] != 0:
            err = abs(errs[0])
            lib.xenforeignmemory_unmap(h, ptr, 1)
            raise XenCallError(f"foreign map of frame {pfn:#x}: {strerror(err)}", err)
        m = MappedPage(ptr, writable=writable, how="foreign", domid=domid,
                       unmap=lambda p, _l=lib, _h=h: _l.xenforeignmemory_unmap(_h, p, 1))
        self._live.add(m)
        return m

    # -- event channels --------------------------------------------------------------------------
    def bind_interdomain(self, domid: int, remote_port: int) -> EvtchnPort:
        lib = self.lib("evtchn")
        h = lib.xenevtchn_open(self.logger(), 0)
        if h == ffi.NULL:
            err = ffi.errno
            raise XenCallError(f"cannot open the event channel device /dev/xen/evtchn: {strerror(err)}", err,
                               hint="load the module: modprobe xen-evtchn")
        local = lib.xenevtchn_bind_interdomain(h, domid, remote_port)
        if local < 0:
            err = ffi.errno
            lib.xenevtchn_close(h)
            if err in (_errno.EINVAL, _errno.EBUSY):
                raise BindError(f"console port {remote_port} of domain {domid} is already bound "
                                "(xenconsoled or another backend services it)")
            raise XenCallError(f"cannot bind console port {remote_port} of domain {domid}: {strerror(err)}", err)
        ch = EvtchnPort(lib, h, local, domid, remote_port)
        self._live.add(ch)
        return ch

    # -- libxenctrl (optional) ------------------------------------------------------------------
    def _ctrl(self):
        """(lib, xc handle) or None. Tried once."""
        with self._lock:
            if self._xc_tried:
                return (self._xc_lib, self._xc) if self._xc is not None else None
            self._xc_tried = True
            for path in find_libxenctrl(self.libdirs, self.ctrl_prefer):
                try:
                    lib = self._dlopen(path)
                    opener = lib.xc_interface_open
                except (OSError, AttributeError):
                    continue
                lg = self.logger()
                xc = opener(lg, lg, 0)
                if xc == ffi.NULL:
                    return None  # no privcmd or not privileged: the same for any copy
                self._xc_lib, self._xc, self.ctrl_path = lib, xc, path
                return lib, xc
            return None

    def evtchn_status(self, domid: int, port: int) -> int | None:
        """EVTCHNSTAT_* of ``port`` in ``domid`` (libxenctrl, else lsevtchn), None if unknown."""
        ctrl = self._ctrl()
        if ctrl is not None:
            lib, xc = ctrl
            st = ffi.new("struct evtchn_status *")
            st.dom = domid
            st.port = port
            if lib.xc_evtchn_status(xc, st) < 0:
                return None
            return int(st.status)
        return self._lsevtchn_status(domid, port)

    def _lsevtchn_status(self, domid: int, port: int, ttl: float = 1.0) -> int | None:
        now = time.monotonic()
        cached = self._ls_cache.get(domid)
        if cached is None or now - cached[0] > ttl:
            table, top = None, -1
            tool = self._lsevtchn if self._lsevtchn is not None else find_lsevtchn()
            if tool:
                try:
                    out = subprocess.run([tool, str(domid)], capture_output=True, text=True, timeout=3, check=False)
                    if out.returncode == 0:
                        table = parse_lsevtchn(out.stdout)
                        top = max(table, default=-1)
                except (OSError, subprocess.TimeoutExpired):
                    table = None
            cached = (now, table, top)
            self._ls_cache[domid] = cached
        _, table, top = cached
        if table is None:
            return None
        if port in table:
            return table[port]
        # lsevtchn skips closed ports and stops at the first port it cannot query.
        return EVTCHNSTAT_closed if port < top else None

    def hypervisor_version(self) -> str | None:
        """"4.17.7"-style version through xc_version, or None."""
        ctrl = self._ctrl()
        if ctrl is None:
            return None
        lib, xc = ctrl
        v = lib.xc_version(xc, XENVER_version, ffi.NULL)
        if v < 0:
            return None
        extra = ffi.new("char[16]")
        if lib.xc_version(xc, XENVER_extraversion, extra) < 0:
            extra = None
        tail = ffi.string(extra, 16).decode("ascii", "replace") if extra is not None else ""
        return f"{v >> 16}.{v & 0xFFFF}{tail}"

    # -- teardown ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap every live page, unbind every channel, close the handles."""
        for obj in list(self._live):
            try:
                obj.close()
            except PlatformError:
                pass
        with self._lock:
            if self._gnttab is not None:
                self._libs["gnttab"].xengnttab_close(self._gnttab)
                self._gnttab = None
            if self._fmem is not None:
                self._libs["foreignmemory"].xenforeignmemory_close(self._fmem)
                self._fmem = None
            if self._xc is not None:
                self._xc_lib.xc_interface_close(self._xc)
                self._xc = None
                self._xc_tried = False
