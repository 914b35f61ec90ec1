"""The memory barrier: it really runs, and on x86-64 it is the machine-code page (R+X,
never W+X) rather than a fallback."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading

import pytest

from xcinspect.core.ring import PAGE_SIZE, RingIO, blank_page
from xcinspect.platform import fence

X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _maps_entry(addr: int) -> str | None:
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line
    return None


def test_full_fence_runs():
    for _ in range(1000):
        fence.full_fence()
    assert fence.write_paths_safe()
    assert fence.fence_kind()


@pytest.mark.skipif(not X86_64, reason="x86-64 host only")
def test_x86_64_uses_the_machine_code_page():
    f = fence.get_fence()
    assert fence.fence_kind() == fence.KIND_X86_MFENCE
    assert f.address is not None
    line = _maps_entry(f.address)
    assert line is not None
    perms = line.split()[1]
    assert perms.startswith("r-x"), line  # readable + executable, not writable
    # the page holds exactly mfence; ret
    import cffi

    ffi = cffi.FFI()
    code = bytes(ffi.buffer(ffi.cast("char *", f.address), 4))
    assert code == bytes.fromhex("0faef0c3")


def test_building_the_fence_creates_no_writable_executable_mapping():
    # In a fresh interpreter, so mappings made by other tests cannot interfere.
    code = (
        "from xcinspect.platform import fence; fence.full_fence()\n"
        "wx = [l for l in open('/proc/self/maps') if 'w' in l.split()[1] and 'x' in l.split()[1]]\n"
        "print(len(wx))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


@pytest.mark.skipif(not X86_64, reason="x86-64 host only")
def test_fresh_interpreter_picks_machine_code():
    out = subprocess.run([sys.executable, "-c",
                          "from xcinspect.platform import fence; fence.full_fence(); print(fence.fence_kind())"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == fence.KIND_X86_MFENCE


@pytest.mark.skipif(not X86_64, reason="x86-64 host only")
def test_x86_fallback_without_exec_page_is_still_a_barrier():
    f = fence.make_fence("x86_64", allow_exec=False)
    assert f.kind == fence.KIND_X86_TSO and f.safe and f.address is None
    f.fn()
    # usable from several threads at once (it takes a lock)
    ts = [threading.Thread(target=lambda: [f.fn() for _ in range(2000)]) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_unknown_arch_disables_writes_with_a_clear_message():
    f = fence.make_fence("riscv64")
    assert not f.safe and f.kind == fence.KIND_NONE
    with pytest.raises(fence.FenceUnavailable) as ei:
        f.fn()
    assert "riscv64" in ei.value.message and "will not write" in ei.value.message


def test_unavailable_fence_stops_ring_writes_before_any_store():
    page = blank_page()
    before = bytes(page)
    ring = RingIO(page, fence.make_fence("riscv64").fn)
    with pytest.raises(fence.FenceUnavailable):
        ring.write_in(b"hello")
    with pytest.raises(fence.FenceUnavailable):
        ring.commit_out(5)
    with pytest.raises(fence.FenceUnavailable):
        ring.set_flag("xen-4.21", "disconnected")
    assert bytes(page) == before and len(page) == PAGE_SIZE


def test_ring_io_with_real_fence():
    page = blank_page()
    ring = RingIO(page, fence.full_fence)
    assert ring.write_out(b"boot ok\n") == 8
    data, cons = ring.peek_out()
    assert data == b"boot ok\n"
    ring.commit_out(cons)
    assert ring.peek_out() == (b"", cons)


MDWE_CHILD = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:   # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    print("NOMDWE")
    sys.exit(0)
from xcinspect.platform import fence
f = fence.get_fence()
f.fn()
perms = [l.split()[1] for l in open("/proc/self/maps") if f.address is not None
         and int(l.split("-")[0], 16) <= f.address < int(l.split()[0].split("-")[1], 16)]
print(f.kind, "|", f.how, "|", perms)
"""


def test_exec_gain_refused_uses_memfd_code_page():
    """Under memory-deny-write-execute (prctl PR_SET_MDWE), mprotect to R+X is refused;
    the fence must still be the machine-code barrier, from a memfd mapped R+X."""
    out = subprocess.run([sys.executable, "-c", MDWE_CHILD], capture_output=True, text=True, check=True)
    if out.stdout.strip() == "NOMDWE":
        pytest.skip("kernel without PR_SET_MDWE")
    kind, how, perms = (x.strip() for x in out.stdout.split("|"))
    if X86_64:
        assert kind == fence.KIND_X86_MFENCE
    assert how == "memfd"
    assert perms == "['r-xp']"
