"""The Xen side as data: the C declarations xcinspect calls through cffi (ABI mode, no
compiler on the dom0), the ABI constants, and where the libraries and lsevtchn live."""

from __future__ import annotations

import glob
import os
import platform as _platform
import re
import shutil
from dataclasses import dataclass

import cffi

PAGE_SIZE = 4096
GNTTAB_RESERVED_CONSOLE = 0  # xen/include/public/grant_table.h
DOMID_FIRST_RESERVED = 0x7FF0

# xen/include/public/event_channel.h
EVTCHNSTAT_closed = 0
EVTCHNSTAT_unbound = 1
EVTCHNSTAT_interdomain = 2
EVTCHNSTAT_pirq = 3
EVTCHNSTAT_virq = 4
EVTCHNSTAT_ipi = 5
STATUS_NAMES = {0: "closed", 1: "unbound", 2: "interdomain", 3: "pirq", 4: "virq", 5: "ipi"}

XENVER_version = 0
XENVER_extraversion = 1
XTL_NUM_LEVELS = 10  # a stdiostream logger with this min_level prints nothing

MAP_FIXED_NOREPLACE = 0x100000  # Linux >= 4.17; older kernels treat it as a hint

# xen_pfn_t: unsigned long on x86 (xen/arch-x86/xen.h), uint64_t on Arm (arch-arm.h).
_PFN_T = "uint64_t" if _platform.machine().lower() in ("aarch64", "arm64") else "unsigned long"

CDEF = """
typedef uint16_t domid_t;
typedef uint32_t evtchn_port_t;
typedef XEN_PFN_T xen_pfn_t;

typedef struct xentoollog_logger xentoollog_logger;
void *xtl_createlogger_stdiostream(void *f, int min_level, unsigned flags);

typedef struct xengnttab_handle xengnttab_handle;
xengnttab_handle *xengnttab_open(xentoollog_logger *logger, unsigned open_flags);
int xengnttab_close(xengnttab_handle *xgt);
void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot);
int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count);

typedef struct xenforeignmemory_handle xenforeignmemory_handle;
xenforeignmemory_handle *xenforeignmemory_open(xentoollog_logger *logger, unsigned open_flags);
int xenforeignmemory_close(xenforeignmemory_handle *fmem);
void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot, size_t pages,
                           const xen_pfn_t arr[], int err[]);
int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages);

typedef int xenevtchn_port_or_error_t;
typedef struct xenevtchn_handle xenevtchn_handle;
xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger, unsigned int flags);
int xenevtchn_close(xenevtchn_handle *xce);
int xenevtchn_fd(xenevtchn_handle *xce);
int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port);
xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                     evtchn_port_t remote_port);
int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port);
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce);
int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port);

struct evtchn_status {
    domid_t dom;
    evtchn_port_t port;
    uint32_t status;
    uint32_t vcpu;
    union {
        struct { domid_t dom; } unbound;
        struct { domid_t dom; evtchn_port_t port; } interdomain;
        uint32_t pirq;
        uint32_t virq;
    } u;
};
typedef struct xc_interface_core xc_interface;
xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                unsigned open_flags);
int xc_interface_close(xc_interface *xch);
int xc_evtchn_status(xc_interface *xch, struct evtchn_status *status);
int xc_version(xc_interface *xch, int cmd, void *arg);

void *fopen(const char *path, const char *mode);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
""".replace("XEN_PFN_T", _PFN_T)

ffi = cffi.FFI()
ffi.cdef(CDEF)

_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ffi.dlopen(None)
    return _libc


@dataclass(frozen=True, slots=True)
class LibSpec:
    key: str
    soname: str
    package: str
    purpose: str


SPECS = {
    "gnttab": LibSpec("gnttab", "libxengnttab.so.1", "libxengnttab1", "to map console pages"),
    "foreignmemory": LibSpec("foreignmemory", "libxenforeignmemory.so.1", "libxenforeignmemory1",
                             "to map console pages"),
    "evtchn": LibSpec("evtchn", "libxenevtchn.so.1", "libxenevtchn1", "to service consoles"),
    "toollog": LibSpec("toollog", "libxentoollog.so.1", "libxentoollog1", "for quiet logging"),
}

LIB_HINT = "install the Xen tools (apt install xen-utils-4.17, or the libxen* packages), or try --sim for a demo"

LIBDIRS = (
    "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu",
    "/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib",
)

LSEVTCHN_GLOBS = (
    "/usr/lib/xen-*/bin/lsevtchn", "/usr/lib/xen/bin/lsevtchn",
    "/usr/libexec/xen/bin/lsevtchn", "/usr/local/lib/xen/bin/lsevtchn",
)


def _version_key(path: str) -> tuple:
    tail = os.path.basename(path).split(".so", 1)[-1]
    return tuple(int(x) for x in re.findall(r"\d+", tail))


def find_libxenctrl(libdirs=LIBDIRS, prefer: str | None = None) -> list[str]:
    """Candidate libxenctrl files, best first: ``libxenctrl.so.<prefer>`` (e.g. "4.17"),
    then the highest versioned soname, then the unversioned development link."""
    found: dict[str, None] = {}
    for d in libdirs:
        for p in sorted(glob.glob(os.path.join(d, "libxenctrl.so.*"))):
            found.setdefault(p)
    versioned = sorted(found, key=_version_key, reverse=True)
    if prefer:
        exact = [p for p in versioned if os.path.basename(p) == f"libxenctrl.so.{prefer}"]
        versioned = exact + [p for p in versioned if p not in exact]
    plain = [os.path.join(d, "libxenctrl.so") for d in libdirs if os.path.exists(os.path.join(d, "libxenctrl.so"))]
    return versioned + plain


def _xen_dir_version(path: str) -> tuple:
    m = re.search(r"/xen-(\d+(?:\.\d+)*)/", path)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def find_lsevtchn(globs=LSEVTCHN_GLOBS) -> str | None:
    for pattern in globs:
        hits = sorted(glob.glob(pattern), key=_xen_dir_version, reverse=True)
        for h in hits:
            if os.access(h, os.X_OK):
                return h
    return shutil.which("lsevtchn")


_LSEVTCHN_LINE = re.compile(r"^\s*(\d+): VCPU \d+: (.*?)\s*$")


def parse_lsevtchn(text: str) -> dict[int, int]:
    """``lsevtchn <domid>`` output -> {port: EVTCHNSTAT_*} (closed ports are not listed)."""
    out: dict[int, int] = {}
    for line in text.splitlines():
        m = _LSEVTCHN_LINE.match(line)
        if not m:
            continue
        port, desc = int(m.group(1)), m.group(2)
        if desc.startswith("Interdomain (Connected)"):
            st = EVTCHNSTAT_interdomain
        elif desc.startswith("Interdomain (Waiting"):
            st = EVTCHNSTAT_unbound
        elif desc.startswith("Physical IRQ"):
            st = EVTCHNSTAT_pirq
        elif desc.startswith("Virtual IRQ"):
            st = EVTCHNSTAT_virq
        elif desc.startswith("IPI"):
            st = EVTCHNSTAT_ipi
        else:
            continue
        out[port] = st
    return out


# -- mappings ---------------------------------------------------------------------------------
