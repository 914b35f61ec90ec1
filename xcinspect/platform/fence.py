"""A real full memory barrier for the ring write paths, without a compiler on dom0.

``RingIO`` calls ``fence()`` where xenconsoled calls ``xen_mb()``/``xen_wmb()`` (spec
§3.4). CPython cannot emit a fence, and dom0 has no compiler (cffi runs in ABI mode), so
this module assembles the barrier itself:

1. mmap one anonymous page read+write, copy the machine code in, mprotect it to
   read+exec (the page is never writable and executable at once), and call it through a
   cffi function pointer ``void (*)(void)``. Where policy forbids making a page
   executable after it was writable (SELinux execmem, MemoryDenyWriteExecute), the code
   goes into a memfd that is mapped read+exec directly instead:

   * x86-64 (and i386): ``mfence; ret``      = ``0f ae f0 c3``. mfence orders every
     earlier load and store before every later one; it is at least as strong as Xen's
     ``xen_mb()`` (``lock addl $0,-32(%rsp)``).
   * aarch64:           ``dmb ish; ret``     = ``bf 3b 03 d5 c0 03 5f d6``. A full
     (load+store) barrier over the inner-shareable domain, which holds every CPU that
     runs dom0 and the guest; it is Linux's ``virt_mb()``/``smp_mb()``, i.e. what the
     guest's hvc_xen uses on its side of the ring. (Xen's tools use ``dmb sy``, which
     also covers devices; the ring is plain cacheable RAM, so ``ish`` suffices.)
     The page is written before it ever becomes executable: arm64 Linux cleans the
     D-cache / invalidates the I-cache for a user page when it is mapped executable
     (``__sync_icache_dcache`` on the new PTE), so no ``__clear_cache`` is needed.

2. If that is impossible (an exec mapping refused by SELinux ``execmem``, seccomp or
   PaX; no cffi), on **x86-64** the fallback ``tso`` is still correct:

   * x86 is TSO (Intel SDM vol. 3A, "Memory Ordering in P6 and More Recent Processor
     Families", §8.2.2 in older editions, §9.2.2 in newer ones): loads are not reordered with loads, stores
     not with stores, and stores not with earlier loads. Every barrier in the console
     protocol orders one of exactly these pairs: index loads → data loads
     (``peek_out``), data loads → ``out_cons`` store (``commit_out``), index loads →
     data stores and data stores → ``in_prod``/``out_prod`` store (``write_in``,
     ``write_out``). That is why Xen's own ``xen_rmb()``/``xen_wmb()`` on x86 are
     compiler barriers only. Python executes each ring access as a separate C call
     in program order, so no compiler can reorder them either.
   * The one pair TSO may reorder is a store followed by a later load (of the peer's
     index). The stale value this can return is conservative (less data to read, less
     free space to write), and every index store is followed by an event-channel
     notify whose hypercall path runs locked instructions before the guest is woken.
   * Belt and braces: the fallback still executes a full barrier. It acquires and
     releases a ``threading.Lock``; CPython implements it with a POSIX semaphore whose
     glibc fast paths are locked read-modify-write instructions (``lock cmpxchg`` /
     ``lock xadd``), which on x86 order all earlier loads and stores before all later
     ones (same SDM section: "locked instructions have a total order"; loads and stores
     are not reordered with them).

   On any **other** architecture (or aarch64 without an exec mapping) there is no
   fallback: ``write_paths_safe()`` is False, ``full_fence()`` raises ``FenceUnavailable``
   (``RingIO`` fences before its first store, so nothing is written), and the dom0
   platform refuses write actions up front. Read-only observation needs no fence.

``fence_kind()`` says which of these is in use.
"""

from __future__ import annotations

import mmap as _mmap
import os
import platform as _platform
import threading

from xcinspect.platform.base import PlatformError

PAGE = 4096

_X86_CODE = bytes.fromhex("0faef0c3")  # mfence; ret
_A64_CODE = bytes.fromhex("bf3b03d5c0035fd6")  # dmb ish; ret

KIND_X86_MFENCE = "x86-64 mfence (machine code)"
KIND_X86_32_MFENCE = "x86 mfence (machine code)"
KIND_A64_DMB = "aarch64 dmb ish (machine code)"
KIND_X86_TSO = "x86-64 TSO order + locked RMW (no exec page)"
KIND_NONE = "none"

_MACHINES = {
    "x86_64": ("x86_64", _X86_CODE, KIND_X86_MFENCE),
    "amd64": ("x86_64", _X86_CODE, KIND_X86_MFENCE),
    "i386": ("x86", _X86_CODE, KIND_X86_32_MFENCE),
    "i686": ("x86", _X86_CODE, KIND_X86_32_MFENCE),
    "aarch64": ("aarch64", _A64_CODE, KIND_A64_DMB),
    "arm64": ("aarch64", _A64_CODE, KIND_A64_DMB),
}


class FenceUnavailable(PlatformError):
    """No memory barrier can be executed on this host: write paths are disabled."""


class Fence:
    """One fence implementation: ``fn()`` executes it; ``kind`` and ``reason`` describe it."""

    def __init__(self, fn, kind: str, safe: bool, reason: str = "", address: int | None = None,
                 how: str = "") -> None:
        self.fn = fn
        self.how = how  # "anonymous page" | "memfd" for machine-code kinds
        self.kind = kind
        self.safe = safe
        self.reason = reason
        self.address = address  # of the code page (machine-code kinds)

    def describe(self) -> str:
        return f"{self.kind} ({self.reason})" if self.reason else self.kind


def _machine_code_fence(code: bytes):
    """Return (cffi function pointer, address, how, keepalive) for ``code``.

    First an anonymous page: mmap RW, copy, mprotect RX. If the kernel refuses to make
    it executable (SELinux execmem, systemd MemoryDenyWriteExecute), a memfd holding the
    code mapped RX directly -- no writable mapping of the code ever exists in the
    process then, which those policies allow.
    """
    import cffi  # only here: the pure core never needs cffi

    ffi = cffi.FFI()
    ffi.cdef(
        """
        void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
        int mprotect(void *addr, size_t len, int prot);
        int munmap(void *addr, size_t length);
        """
    )
    libc = ffi.dlopen(None)
    failed = (0, (1 << (8 * ffi.sizeof("void *"))) - 1)  # NULL / MAP_FAILED

    def done(page, how):
        # The page is never unmapped: ``fn`` may be called until the process exits.
        return ffi.cast("void(*)(void)", page), int(ffi.cast("uintptr_t", page)), how, (ffi, libc, page)

    page = libc.mmap(ffi.NULL, PAGE, _mmap.PROT_READ | _mmap.PROT_WRITE,
                     _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS, -1, 0)
    if int(ffi.cast("uintptr_t", page)) in failed:
        raise OSError(ffi.errno, f"mmap of the code page failed (errno {ffi.errno})")
    ffi.memmove(page, code, len(code))
    if libc.mprotect(page, PAGE, _mmap.PROT_READ | _mmap.PROT_EXEC) == 0:
        return done(page, "anonymous page")
    err = ffi.errno
    libc.munmap(page, PAGE)
    try:
        fd = os.memfd_create("xcinspect-fence", getattr(os, "MFD_CLOEXEC", 1))
    except (AttributeError, OSError) as exc:
        raise OSError(err, f"mprotect(PROT_READ|PROT_EXEC) refused (errno {err}); no memfd: {exc}") from None
    try:
        os.write(fd, code.ljust(PAGE, b"\0"))
        page = libc.mmap(ffi.NULL, PAGE, _mmap.PROT_READ | _mmap.PROT_EXEC, _mmap.MAP_PRIVATE, fd, 0)
    finally:
        os.close(fd)
    if int(ffi.cast("uintptr_t", page)) in failed:
        raise OSError(err, f"no executable mapping allowed (mprotect errno {err}, memfd mmap errno {ffi.errno})")
    return done(page, "memfd")


_keep: list = []


def make_fence(machine: str | None = None, *, allow_exec: bool = True) -> Fence:
    """Build the best fence for ``machine`` (default: this host's).

    ``allow_exec=False`` takes the path used when the kernel refuses an exec mapping
    (for tests and for diagnosing such hosts).
    """
    machine = (machine or _platform.machine()).lower()
    host = _platform.machine().lower()
    info = _MACHINES.get(machine)
    reason = ""
    if info is None:
        reason = f"no barrier code for architecture {machine!r}"
    elif not allow_exec:
        reason = "exec mapping disabled"
    elif _MACHINES.get(host, (None,))[0] != info[0]:  # only reachable from tests
        reason = f"cannot run {machine} code on {host}"
    else:
        try:
            fn, addr, how, keep = _machine_code_fence(info[1])
        except (OSError, ImportError, AttributeError) as exc:
            reason = f"cannot build an executable code page: {exc}"
        else:
            _keep.append(keep)
            fn()  # run it once now, so a broken page fails at start-up, not mid-write
            return Fence(fn, info[2], True, address=addr, how=how)
    host_arch = _MACHINES.get(host, (None,))[0]
    if info is not None and info[0] in ("x86_64", "x86") and host_arch == info[0]:
        lock = threading.Lock()

        def tso_fence(_acq=lock.acquire, _rel=lock.release) -> None:
            _acq()
            _rel()

        return Fence(tso_fence, KIND_X86_TSO, True, reason)

    arch = machine

    def unavailable() -> None:
        raise FenceUnavailable(
            f"no memory barrier available on {arch} ({reason}): xcinspect will not write to console pages",
            hint="observing works; leave servicing consoles to xenconsoled",
        )

    return Fence(unavailable, KIND_NONE, False, reason)


_fence: Fence | None = None
_init_lock = threading.Lock()


def get_fence() -> Fence:
    """The process-wide fence, built on first use."""
    global _fence
    if _fence is None:
        with _init_lock:
            if _fence is None:
                _fence = make_fence()
    return _fence


def full_fence() -> None:
    """Execute a full memory barrier (raises FenceUnavailable where there is none)."""
    get_fence().fn()


def fence_kind() -> str:
    """Which barrier ``full_fence`` executes, e.g. "x86-64 mfence (machine code)"."""
    return get_fence().describe()


def write_paths_safe() -> bool:
    """True when ``full_fence`` executes a barrier adequate for writing ring indices."""
    return get_fence().safe
