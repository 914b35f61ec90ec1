"""The dom0 platform without Xen: fake sysfs/procfs trees for what it reads, real
processes, real sockets, real locks, real library loading. Mapping and binding are not
faked here -- they run for real in the Xen lab (tests/xen)."""

from __future__ import annotations

import mmap
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from xcinspect.core import flags
from xcinspect.platform import fence, procfs, xenlibs
from xcinspect.platform.base import BindError, PlatformError
from xcinspect.platform.dom0 import Dom0Platform, read_sysfs_version


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def root():
    """A short, world-readable fake root (unix socket paths must stay < 108 bytes, and a
    child running as nobody must be able to read it)."""
    d = tempfile.mkdtemp(prefix="xci", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def put(root: str, path: str, text: str = "") -> str:
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)
    return full


def dom0_tree(root: str, version=("4", "17", ".7")) -> None:
    put(root, "/proc/xen/capabilities", "control_d\n")
    major, minor, extra = version
    put(root, "/sys/hypervisor/type", "xen\n")
    put(root, "/sys/hypervisor/version/major", major + "\n")
    put(root, "/sys/hypervisor/version/minor", minor + "\n")
    put(root, "/sys/hypervisor/version/extra", extra + "\n")


def listening_socket(path: str) -> socket.socket:
    """A unix socket that accepts (and drops) connections, like a live xenstored."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)

    def serve():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s


def quiet_libs(**kw) -> xenlibs.XenLibs:
    """Real XenLibs that will not probe this host's libxenctrl / lsevtchn."""
    kw.setdefault("libdirs", ())
    kw.setdefault("lsevtchn", "")
    return xenlibs.XenLibs(**kw)


def loadable(*present: str):
    """A loader for which only the sonames in ``present`` exist (they load the C library,
    which is enough for ``require``; nothing Xen is called through it)."""

    def dlopen(name):
        if name in present:
            return xenlibs.ffi.dlopen(None)
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    return dlopen


ALL_LIBS = ("libxengnttab.so.1", "libxenforeignmemory.so.1", "libxenevtchn.so.1")


def platform_for(root, *, euid=0, present=ALL_LIBS, env=None, proc=None):
    return Dom0Platform(root, euid=euid, env=env or {}, proc=proc,
                        libs=quiet_libs(dlopen=loadable(*present)))


def check_message(p: Dom0Platform, **kw) -> str | None:
    try:
        p.check(**kw)
    except PlatformError as exc:
        return exc.message
    return None


# -- version ------------------------------------------------------------------------------------
@pytest.mark.parametrize("major,minor,extra,expected", [
    ("4", "17", ".7", "4.17.7"),
    ("4", "17", "-pre", "4.17-pre"),
    ("4", "21", ".0-rc", "4.21.0-rc"),
    ("4", "19", "", "4.19"),
    ("4\n", "17\n", ".7\n", "4.17.7"),
])
def test_sysfs_version(root, major, minor, extra, expected):
    d = os.path.join(root, "v")
    os.makedirs(d)
    for name, val in (("major", major), ("minor", minor), ("extra", extra)):
        with open(os.path.join(d, name), "w") as f:
            f.write(val)
    assert read_sysfs_version(d) == expected


def test_sysfs_version_missing_or_garbage(root):
    assert read_sysfs_version(os.path.join(root, "none")) is None
    put(root, "/v/major", "four")
    put(root, "/v/minor", "17")
    assert read_sysfs_version(os.path.join(root, "v")) is None
    put(root, "/w/major", "4")  # no minor
    assert read_sysfs_version(os.path.join(root, "w")) is None
    put(root, "/x/major", "4")
    put(root, "/x/minor", "17")  # no extra file: fine
    assert read_sysfs_version(os.path.join(root, "x")) == "4.17"


@pytest.mark.parametrize("version,layout", [
    (("4", "17", ".7"), flags.NONE),
    (("4", "20", ".1"), flags.NONE),
    (("4", "21", ".0"), flags.XEN_421),
    (("4", "22", "-unstable"), flags.XEN_421),
    (("5", "0", ""), flags.XEN_421),
])
def test_version_sets_flag_layout(root, version, layout):
    dom0_tree(root, version)
    p = platform_for(root)
    assert p.xen_version().startswith(f"{version[0]}.{version[1]}")
    assert p.default_flag_layout() == layout
    assert p.describe() == f"dom0 (Xen {p.xen_version()})"


def test_unknown_version_defaults_to_no_flag(root):
    put(root, "/proc/xen/capabilities", "control_d\n")
    p = platform_for(root)
    assert p.xen_version() == "unknown"
    assert p.default_flag_layout() == flags.NONE


# -- check order ----------------------------------------------------------------------------------
def test_not_dom0_without_proc_xen(root):
    p = platform_for(root)
    msg = check_message(p)
    assert msg == "this is not a Xen dom0 (no control_d in /proc/xen/capabilities)"


def test_not_dom0_in_domu(root):
    put(root, "/proc/xen/capabilities", "")  # a domU has the file, without control_d
    p = platform_for(root)
    assert "no control_d" in check_message(p)


def test_xenfs_not_mounted_hint(root):
    os.makedirs(os.path.join(root, "proc/xen"))
    put(root, "/sys/hypervisor/type", "xen\n")
    p = platform_for(root)
    with pytest.raises(PlatformError) as ei:
        p.check()
    assert "xenfs" in ei.value.message and "mount -t xenfs" in ei.value.hint


def test_not_dom0_beats_not_root(root):
    p = platform_for(root, euid=1000)
    assert "not a Xen dom0" in check_message(p)


def test_not_root_injected_uid(root):
    dom0_tree(root)
    p = platform_for(root, euid=1000)
    with pytest.raises(PlatformError) as ei:
        p.check()
    assert ei.value.message == "xcinspect needs root on dom0 (running as uid 1000)"
    assert "--sim" in ei.value.hint


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_not_root_really_running_as_nobody(root):
    """Fork, drop to uid 65534 for real, run check() with no injected uid."""
    dom0_tree(root)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            p = Dom0Platform(root, env={}, libs=quiet_libs(dlopen=loadable(*ALL_LIBS)))
            try:
                p.check()
                out = "no error"
            except PlatformError as exc:
                out = f"{exc.message}|{exc.hint}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    msg, hint = out.decode().split("|", 1)
    assert msg == "xcinspect needs root on dom0 (running as uid 65534)"
    assert "--sim" in hint


def test_missing_library_named(root):
    dom0_tree(root)
    p = Dom0Platform(root, euid=0, env={},
                     libs=quiet_libs(names={"gnttab": "libxengnttab-nonexistent.so.1"}))
    with pytest.raises(PlatformError) as ei:
        p.check()
    assert ei.value.message.startswith("libxengnttab-nonexistent.so.1 is missing")
    assert "xen-utils" in ei.value.hint and "--sim" in ei.value.hint


def test_default_loader_on_a_host_without_xen(root):
    """The real loader with the real sonames (skipped where Xen libraries exist)."""
    try:
        xenlibs.ffi.dlopen("libxengnttab.so.1")
        pytest.skip("Xen libraries installed here")
    except OSError:
        pass
    dom0_tree(root)
    p = Dom0Platform(root, euid=0, env={}, libs=quiet_libs())
    assert check_message(p).startswith("libxengnttab.so.1 is missing (libxengnttab1")


def test_evtchn_library_only_needed_for_writes(root):
    dom0_tree(root)
    sock = listening_socket(os.path.join(root, "var/run/xenstored/socket"))
    put(root, "/dev/xen/gntdev")
    put(root, "/dev/xen/evtchn")
    try:
        p = platform_for(root, present=ALL_LIBS[:2])
        assert check_message(p) is None
        assert check_message(p, need_write=True).startswith("libxenevtchn.so.1 is missing")
    finally:
        sock.close()


def test_xenstored_socket_missing(root):
    dom0_tree(root)
    msg = check_message(platform_for(root))
    assert msg == ("xenstored is unreachable: " + os.path.join(root, "var/run/xenstored/socket")
                   + " does not exist (is xenstored running?)")


def test_xenstored_not_a_socket(root):
    dom0_tree(root)
    put(root, "/var/run/xenstored/socket", "")
    assert "is not a socket" in check_message(platform_for(root))


def test_xenstored_stale_socket_refused(root):
    dom0_tree(root)
    path = os.path.join(root, "var/run/xenstored/socket")
    os.makedirs(os.path.dirname(path))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)  # bound, never listening: like a socket left by a dead xenstored
    try:
        msg = check_message(platform_for(root))
        assert msg.startswith(f"xenstored is unreachable at {path}: ")
        assert "refused" in msg.lower()
    finally:
        s.close()


def test_xenstored_hung_not_accepting(root):
    dom0_tree(root)
    path = os.path.join(root, "var/run/xenstored/socket")
    os.makedirs(os.path.dirname(path))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(0)  # listening, never accepting: the queue fills
    held = []
    try:
        for _ in range(8):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(path)
            except BlockingIOError:
                c.close()
                break
            held.append(c)
        p = Dom0Platform(root, euid=0, env={}, libs=quiet_libs(dlopen=loadable(*ALL_LIBS)), socket_timeout=0.3)
        t0 = time.monotonic()
        msg = check_message(p)
        assert time.monotonic() - t0 < 3
        assert msg == f"xenstored is unreachable at {path}: it does not accept connections (hung?)"
    finally:
        for c in held:
            c.close()
        s.close()


def test_devices_then_fence_after_xenstored(root, monkeypatch):
    dom0_tree(root)
    sock = listening_socket(os.path.join(root, "run/xenstored/socket"))
    try:
        p = platform_for(root)
        assert p.xenstore_path() == os.path.join(root, "run/xenstored/socket")
        assert "neither /dev/xen/gntdev nor /dev/xen/privcmd" in check_message(p)
        put(root, "/dev/xen/privcmd")
        assert check_message(p) is None
        assert "/dev/xen/evtchn" in check_message(p, need_write=True)
        put(root, "/dev/xen/evtchn")
        assert check_message(p, need_write=True) is None
        # a host where no barrier can be built refuses writes, not observation
        monkeypatch.setattr(fence, "_fence", fence.make_fence("riscv64"))
        assert check_message(p) is None
        assert "no memory barrier" in check_message(p, need_write=True)
    finally:
        sock.close()


# -- xenstore path ---------------------------------------------------------------------------------
def test_xenstore_path_env_and_default(root):
    p = platform_for(root, env={"XENSTORED_PATH": "/somewhere/else"})
    assert p.xenstore_path() == "/somewhere/else"
    p = platform_for(root, env={"XENSTORED_RUNDIR": os.path.join(root, "rd")})
    assert p.xenstore_path() == os.path.join(root, "rd/socket")  # first candidate when none exist
    put(root, "/rd/socket")
    assert p.xenstore_path() == os.path.join(root, "rd/socket")
    p = platform_for(root)
    assert p.xenstore_path() == os.path.join(root, "var/run/xenstored/socket")
    assert Dom0Platform(env={}).xenstore_path() in ("/var/run/xenstored/socket", "/run/xenstored/socket")


def test_xenbus_only_is_an_error_not_a_silent_fallback(root):
    dom0_tree(root)
    put(root, "/dev/xen/xenbus")
    p = platform_for(root)
    with pytest.raises(PlatformError) as ei:
        p.xenstore_path()
    assert "/dev/xen/xenbus" in ei.value.message and "socket" in ei.value.message
    assert "xenbus" in check_message(p)


# -- backend facts: xenconsoled pid, console locks -----------------------------------------------
@pytest.fixture
def fake_consoled(tmp_path):
    link = tmp_path / "xenconsoled"
    os.symlink("/bin/sleep", link)
    p = subprocess.Popen([str(link), "60"])
    deadline = time.monotonic() + 5
    while procfs.process_comm(p.pid) != "xenconsoled" and time.monotonic() < deadline:
        time.sleep(0.01)
    yield p
    p.kill()
    p.wait()


def test_consoled_pid_debian_then_upstream(root, fake_consoled):
    p = platform_for(root, proc="/proc")
    assert p.consoled_pid() is None
    put(root, "/var/run/xen/xenconsoled.pid", f"{fake_consoled.pid}\n")
    assert p.consoled_pid() == fake_consoled.pid
    put(root, "/run/xenconsoled.pid", "garbage\n")
    assert p.consoled_pid() == fake_consoled.pid
    put(root, "/run/xenconsoled.pid", f"{fake_consoled.pid}\n")
    os.unlink(os.path.join(root, "var/run/xen/xenconsoled.pid"))
    assert p.consoled_pid() == fake_consoled.pid
    # a live pid that is not xenconsoled (pid reused after a crash) is not xenconsoled
    put(root, "/run/xenconsoled.pid", f"{os.getpid()}\n")
    assert p.consoled_pid() is None


def test_consoled_pid_dead_process(root, fake_consoled):
    p = platform_for(root, proc="/proc")
    put(root, "/run/xenconsoled.pid", f"{fake_consoled.pid}\n")
    assert p.consoled_pid() == fake_consoled.pid
    fake_consoled.kill()
    fake_consoled.wait()
    assert p.consoled_pid() is None


def test_dirs_under_root(root):
    p = platform_for(root)
    assert p.lock_dir() == os.path.join(root, "var/lock")
    assert p.lock_path(7) == os.path.join(root, "var/lock/xenconsole.7")
    assert p.state_dir() == os.path.join(root, "run/xcinspect")
    assert p.log_dir() == os.path.join(root, "var/log/xcinspect")
    assert p.audit_log_path() == os.path.join(root, "var/log/xcinspect/audit.log")
    real = Dom0Platform(env={})
    assert (real.lock_dir(), real.state_dir(), real.log_dir(), real.audit_log_path()) == (
        "/var/lock", "/run/xcinspect", "/var/log/xcinspect", "/var/log/xcinspect/audit.log")


def test_console_lock_holder_at_platform_lock_path(root):
    p = platform_for(root)
    path = put(root, "/var/lock/xenconsole.3")
    code = ("import fcntl,sys,time; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX|fcntl.LOCK_NB);"
            "print('READY', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, p.lock_path(3)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        assert procfs.lock_holder(p.lock_path(3))[0] == child.pid
        assert procfs.lock_holder(p.lock_path(4)) is None
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert procfs.lock_holder(path) is None


# -- mapping / binding errors without Xen (no fake Xen: just the failure paths) ----------------------
def test_map_page_without_libraries_names_both_routes(root):
    p = Dom0Platform(root, euid=0, env={}, libs=quiet_libs(dlopen=loadable()))
    with pytest.raises(PlatformError) as ei:
        p.map_page(5, 0x12345)
    msg = ei.value.message
    assert msg.startswith("cannot map the console page of domain 5 read-only: ")
    assert "libxengnttab.so.1 is missing" in msg and "libxenforeignmemory.so.1 is missing" in msg
    assert "--sim" in ei.value.hint


@pytest.mark.parametrize("domid", [-1, 0x7FF0, "3", None, True])
def test_map_page_rejects_bad_domids(root, domid):
    p = platform_for(root)
    with pytest.raises(PlatformError):
        p.map_page(domid, 1)


def test_map_page_without_ring_ref_says_so(root):
    p = Dom0Platform(root, euid=0, env={}, libs=quiet_libs(dlopen=loadable()))
    with pytest.raises(PlatformError) as ei:
        p.map_page(5, None, writable=True)
    assert "read-write" in ei.value.message and "no usable ring-ref" in ei.value.message


def test_bind_without_library(root):
    p = Dom0Platform(root, euid=0, env={}, libs=quiet_libs(dlopen=loadable()))
    with pytest.raises(PlatformError) as ei:
        p.bind_evtchn(5, 3)
    assert "libxenevtchn.so.1 is missing" in ei.value.message
    with pytest.raises(PlatformError):
        p.bind_evtchn(5, 0)


# -- port status: libxenctrl discovery and the lsevtchn fallback --------------------------------------
LSEVTCHN_OUT = """\
   1: VCPU 0: Interdomain (Connected) - Remote Domain 0, Port 41
   2: VCPU 0: Interdomain (Waiting connection) - Remote Domain 0
   3: VCPU 0: Virtual IRQ 0
   4: VCPU 1: IPI
   5: VCPU 0: Physical IRQ 9
   7: VCPU 0: Interdomain (Connected) - Remote Domain 0, Port 12
"""


def test_parse_lsevtchn():
    assert xenlibs.parse_lsevtchn(LSEVTCHN_OUT + "garbage\n   9: VCPU 0: Unknown\n") == {
        1: xenlibs.EVTCHNSTAT_interdomain, 2: xenlibs.EVTCHNSTAT_unbound, 3: xenlibs.EVTCHNSTAT_virq,
        4: xenlibs.EVTCHNSTAT_ipi, 5: xenlibs.EVTCHNSTAT_pirq, 7: xenlibs.EVTCHNSTAT_interdomain}


def test_port_bound_via_lsevtchn_tool(tmp_path, root):
    tool = tmp_path / "lsevtchn"
    log = tmp_path / "calls"
    tool.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\ncat <<'EOF'\n{LSEVTCHN_OUT}EOF\n")
    tool.chmod(0o755)
    p = Dom0Platform(root, euid=0, env={}, libs=quiet_libs(dlopen=loadable(), lsevtchn=str(tool)))
    assert p.port_bound(9, 1) is True
    assert p.port_bound(9, 2) is False
    assert p.port_bound(9, 3) is None  # a VIRQ is no console port
    assert p.port_bound(9, 6) is None  # closed: not listed
    assert p.port_bound(9, 99) is None  # beyond the listing: unknown
    assert p.port_bound(9, None) is None
    assert log.read_text().split() == ["9"]  # one run, cached for the burst


def test_port_bound_unknown_without_tools(root):
    p = Dom0Platform(root, euid=0, env={}, libs=quiet_libs(dlopen=loadable()))
    assert p.port_bound(3, 2) is None


def test_find_libxenctrl_by_glob(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for name in ("libxenctrl.so.4.16", "libxenctrl.so.4.17.0", "libxenctrl.so"):
        (a / name).write_text("")
    (b / "libxenctrl.so.4.17").write_text("")
    got = xenlibs.find_libxenctrl([str(a), str(b)], prefer="4.17")
    assert got[0] == str(b / "libxenctrl.so.4.17")
    assert got[1:] == [str(a / "libxenctrl.so.4.17.0"), str(a / "libxenctrl.so.4.16"), str(a / "libxenctrl.so")]
    assert xenlibs.find_libxenctrl([str(a)])[0] == str(a / "libxenctrl.so.4.17.0")


def test_unloadable_libxenctrl_falls_back_to_lsevtchn(tmp_path):
    (tmp_path / "libxenctrl.so.4.17").write_text("not an ELF file")
    libs = xenlibs.XenLibs(libdirs=[str(tmp_path)], lsevtchn="")
    assert libs.evtchn_status(1, 2) is None
    assert libs.hypervisor_version() is None


def test_evtchn_status_struct_layout():
    ffi = xenlibs.ffi
    assert ffi.sizeof("struct evtchn_status") == 24
    assert ffi.offsetof("struct evtchn_status", "port") == 4
    assert ffi.offsetof("struct evtchn_status", "status") == 8
    assert ffi.offsetof("struct evtchn_status", "vcpu") == 12
    assert ffi.offsetof("struct evtchn_status", "u") == 16
    st = ffi.new("struct evtchn_status *")
    st.u.interdomain.port = 0xDEADBEEF
    raw = bytes(ffi.buffer(st))
    assert struct.unpack_from("<I", raw, 20)[0] == 0xDEADBEEF
    assert ffi.sizeof("xen_pfn_t") == 8


# -- MappedPage: read-only views, idempotent close, no crash on stale views --------------------------------
@pytest.fixture
def anon_page():
    c = xenlibs.libc()
    ffi = xenlibs.ffi
    p = c.mmap(ffi.NULL, 4096, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    ffi.memmove(p, b"\x07" * 4096, 4096)
    calls = []

    def unmap(ptr):
        calls.append(int(ffi.cast("uintptr_t", ptr)))
        return c.munmap(ptr, 4096)

    return p, unmap, calls


def test_read_only_mapping_cannot_be_written(anon_page):
    ptr, unmap, _calls = anon_page
    m = xenlibs.MappedPage(ptr, writable=False, how="grant", domid=1, unmap=unmap)
    assert m.buf.readonly and len(m.buf) == 4096 and m.buf[0] == 7
    with pytest.raises(TypeError):
        struct.pack_into("<I", m.buf, 3080, 1)
    with pytest.raises(TypeError):
        m.buf[3088] = 1
    from xcinspect.core.ring import RingIO

    with pytest.raises(TypeError):
        RingIO(m.buf, fence.full_fence).commit_out(0)
    m.close()


def test_close_unmaps_once(anon_page):
    ptr, unmap, calls = anon_page
    m = xenlibs.MappedPage(ptr, writable=True, how="foreign", domid=1, unmap=unmap)
    struct.pack_into("<I", m.buf, 3080, 42)
    m.close()
    m.close()
    assert calls == [m.address]
    with pytest.raises(ValueError):
        m.buf[0]
    xenlibs.libc().munmap(xenlibs.ffi.cast("void *", m.address), 4096)


STALE_VIEW_CHILD = """
import mmap
from xcinspect.platform import xenlibs
c, ffi = xenlibs.libc(), xenlibs.ffi
p = c.mmap(ffi.NULL, 4096, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
ffi.memmove(p, b"\\x07" * 4096, 4096)
m = xenlibs.MappedPage(p, writable=False, how="grant", domid=1, unmap=lambda q: c.munmap(q, 4096))
stale = m.buf[3072:3088]   # a derived view that outlives close()
m.close()
print(bytes(stale).hex())
"""


def test_stale_view_after_close_reads_zeros_instead_of_crashing():
    # In a child: without the plugged hole this is a SIGSEGV.
    out = subprocess.run([sys.executable, "-c", STALE_VIEW_CHILD], capture_output=True, text=True, check=False)
    assert out.returncode == 0, (out.returncode, out.stderr[-500:])
    assert out.stdout.strip() == "00" * 16


def test_platform_close_without_libraries_is_harmless(root):
    p = Dom0Platform(root, euid=0, env={})
    p.close()
    p = platform_for(root)
    p.close()
    p.close()


# -- on a real dom0 only (the Xen lab): nothing faked ---------------------------------------------------
def _on_dom0() -> bool:
    try:
        with open("/proc/xen/capabilities") as f:
            return "control_d" in f.read() and os.geteuid() == 0
    except OSError:
        return False


@pytest.fixture(scope="module")
def live():
    """(platform, [(domid, ring_ref, port)]) for running PV guests with a console."""
    if not _on_dom0():
        pytest.skip("needs root in a Xen dom0")
    from xcinspect.platform.xenstore import XsClient

    p = Dom0Platform()
    p.check()
    xs = XsClient(p.xenstore_path())
    guests = []
    for d in xs.list("/local/domain"):
        if not d.isdigit() or d == "0":
            continue
        base = f"/local/domain/{d}/console"
        ref, port, ctype = xs.read(f"{base}/ring-ref"), xs.read(f"{base}/port"), xs.read(f"{base}/type")
        if ref and port and ref.isdigit() and port.isdigit() and ctype in (None, "xenconsoled"):
            guests.append((int(d), int(ref), int(port)))
    xs.close()
    if not guests:
        pytest.skip("no guest with a xenconsoled console is running")
    yield p, guests
    p.close()


@pytest.mark.xen
def test_live_version_and_layout(live):
    p, _ = live
    assert flags.parse_version(p.xen_version()) is not None
    if p.xen_version().startswith("4.17"):
        assert p.default_flag_layout() == flags.NONE


@pytest.mark.xen
def test_live_grant_and_foreign_maps_agree_and_are_read_only(live):
    from xcinspect.core import ring

    p, guests = live
    domid, ref, _ = guests[0]
    g = p.libs.gnttab_map(domid, 0)
    fm = p.libs.foreign_map(domid, ref)
    try:
        for m in (g, fm):
            assert m.buf.readonly and len(m.buf) == 4096
            with pytest.raises(TypeError):
                struct.pack_into("<I", m.buf, ring.OUT_CONS, 0)
            assert ring.parse_page(m.buf).valid
        assert bytes(g.buf[ring.IN_OFFSET:ring.IN_OFFSET + ring.IN_SIZE]) == \
            bytes(fm.buf[ring.IN_OFFSET:ring.IN_OFFSET + ring.IN_SIZE])
        m = p.map_page(domid, ref)
        assert m.how == "grant" and not m.writable
        m.close()
        m.close()
        with pytest.raises(ValueError):
            m.buf[0]
    finally:
        g.close()
        fm.close()


@pytest.mark.xen
def test_live_port_status_and_bind(live):
    p, guests = live
    domid, _, port = guests[0]
    bound = p.port_bound(domid, port)
    if p.consoled_pid() is not None:
        assert bound is True
    if bound:
        with pytest.raises(BindError) as ei:
            p.bind_evtchn(domid, port)
        assert f"console port {port} of domain {domid} is already bound" in ei.value.message
    elif bound is False:
        ch = p.bind_evtchn(domid, port)
        try:
            assert p.port_bound(domid, port) is True
            deadline = time.monotonic() + 2
            got = False
            while not got and time.monotonic() < deadline:  # Xen marks a fresh bind pending
                got = ch.pending()
            assert got
            ch.unmask()
            ch.notify()
        finally:
            ch.close()
            ch.close()
        assert p.port_bound(domid, port) is False
