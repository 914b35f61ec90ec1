"""procfs: pid liveness, pid files, lock holders -- against real processes and real locks,
plus /proc/locks parsing edge cases on a fake proc tree."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import pytest

from xcinspect.platform import procfs


# -- helpers -------------------------------------------------------------------------------
def _child(code: str, *args: str) -> subprocess.Popen:
    """A Python child that runs ``code`` and prints READY once set up."""
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "READY", line
    return p


def _stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait()
    if p.stdout is not None:
        p.stdout.close()


FLOCK_CHILD = """
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("READY", flush=True)
time.sleep(60)
"""

POSIX_CHILD = """
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("READY", flush=True)
time.sleep(60)
"""

OFD_CHILD = """
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
print("READY", flush=True)
time.sleep(60)
"""

WAITER_CHILD = """
import fcntl, sys
f = open(sys.argv[1], "a")
print("READY", flush=True)
fcntl.flock(f, fcntl.LOCK_EX)   # blocks: shows as a '->' line in /proc/locks
import time
time.sleep(60)
"""

# A flock taken by a parent that exits, leaving the lock to its child (inherited fd).
INHERIT_CHILD = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
if os.fork() == 0:
    print("READY", os.getpid(), flush=True)
    time.sleep(60)
    os._exit(0)
os._exit(0)
"""


@pytest.fixture
def lockfile(tmp_path):
    p = tmp_path / "xenconsole.7"
    p.write_text("")
    return str(p)


# -- pid_alive / cmdline ---------------------------------------------------------------------
def test_pid_alive_self_and_bad_values():
    assert procfs.pid_alive(os.getpid())
    for bad in (0, -1, None, "1", True, 1 << 23):
        assert not procfs.pid_alive(bad)


def test_pid_alive_reaped_and_zombie():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not waited yet: once it exits it is a zombie -- not alive.
    deadline = time.monotonic() + 10
    while procfs.process_state(p.pid) not in ("Z", None) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert procfs.process_state(p.pid) == "Z"
    assert not procfs.pid_alive(p.pid)
    p.wait()
    assert not procfs.pid_alive(p.pid)


def test_process_cmdline_real_and_kernel_thread():
    p = _child("print('READY', flush=True); import time; time.sleep(60)", "marker-arg")
    try:
        cmd = procfs.process_cmdline(p.pid)
        assert cmd is not None and cmd.endswith("marker-arg")
        assert cmd.startswith(sys.executable)
    finally:
        _stop(p)
    assert procfs.process_cmdline(p.pid) is None
    # pid 2 is kthreadd on Linux: empty cmdline -> [comm]
    if procfs.process_comm(2) == "kthreadd":
        assert procfs.process_cmdline(2) == "[kthreadd]"


# -- pid files -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "\n", "garbage\n", "12abc\n", "-5\n", "0\n", "99999999999\n", "\x00\xff"])
def test_parse_pid_garbage(text):
    assert procfs.parse_pid(text.encode("latin-1")) is None


def test_parse_pid_forms():
    assert procfs.parse_pid(b"1234\n") == 1234
    assert procfs.parse_pid(b"  1234  \nextra\n") == 1234


def test_read_pidfile_first_alive_wins(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = _child("print('READY', flush=True); import time; time.sleep(60)")
    try:
        garbage = tmp_path / "garbage.pid"
        garbage.write_bytes(b"not a pid\n")
        stale = tmp_path / "stale.pid"
        stale.write_text(f"{dead.pid}\n")
        good = tmp_path / "good.pid"
        good.write_text(f"{live.pid}\n")
        missing = tmp_path / "missing.pid"
        other = tmp_path / "other.pid"
        other.write_text(f"{os.getpid()}\n")
        paths = [str(missing), str(garbage), str(stale), str(good), str(other)]
        assert procfs.read_pidfile(paths) == live.pid
        assert procfs.read_pidfile([str(stale), str(garbage)]) is None
        assert procfs.read_pidfile(str(good)) == live.pid
    finally:
        _stop(live)
    assert procfs.read_pidfile([str(good)]) is None


def test_read_pidfile_comm_guards_pid_reuse(tmp_path):
    # A process whose task name is "xenconsoled": exec sleep through a symlink of that name.
    link = tmp_path / "xenconsoled"
    os.symlink("/bin/sleep", link)
    p = subprocess.Popen([str(link), "60"])
    try:
        deadline = time.monotonic() + 5
        while procfs.process_comm(p.pid) != "xenconsoled" and time.monotonic() < deadline:
            time.sleep(0.01)
        pidfile = tmp_path / "xenconsoled.pid"
        pidfile.write_text(f"{p.pid}\n")
        assert procfs.read_pidfile([str(pidfile)], comm="xenconsoled") == p.pid
        # a live pid that is not xenconsoled (pid reused by something else) is rejected
        reused = tmp_path / "reused.pid"
        reused.write_text(f"{os.getpid()}\n")
        assert procfs.read_pidfile([str(reused)], comm="xenconsoled") is None
        assert procfs.read_pidfile([str(reused), str(pidfile)], comm="xenconsoled") == p.pid
    finally:
        _stop(p)


# -- lock holders with real locks --------------------------------------------------------------
def test_lock_holder_none_when_unlocked_or_missing(lockfile, tmp_path):
    assert procfs.lock_holder(lockfile) is None
    assert procfs.lock_holder(str(tmp_path / "nope")) is None


@pytest.mark.parametrize("code", [FLOCK_CHILD, POSIX_CHILD], ids=["flock", "posix"])
def test_lock_holder_real_child(lockfile, code):
    p = _child(code, lockfile)
    try:
        holder = procfs.lock_holder(lockfile)
        assert holder is not None
        pid, cmd = holder
        assert pid == p.pid
        assert lockfile in cmd and cmd.startswith(sys.executable)
        # really locked: our own non-blocking flock attempt fails (for the flock case)
        if code is FLOCK_CHILD:
            with open(lockfile) as f, pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        _stop(p)
    assert procfs.lock_holder(lockfile) is None


def test_lock_holder_other_file_not_confused(lockfile, tmp_path):
    other = tmp_path / "xenconsole.8"
    other.write_text("")
    p = _child(FLOCK_CHILD, str(other))
    try:
        assert procfs.lock_holder(lockfile) is None
        assert procfs.lock_holder(str(other))[0] == p.pid
    finally:
        _stop(p)


def test_lock_holder_ignores_blocked_waiter(lockfile):
    holder = _child(FLOCK_CHILD, lockfile)
    waiter = _child(WAITER_CHILD, lockfile)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open("/proc/locks") as f:
                text = f.read()
            if "-> FLOCK" in text and f" {waiter.pid} " in text:
                break
            time.sleep(0.02)
        else:
            pytest.fail("waiter never showed up as blocked in /proc/locks")
        assert procfs.lock_holder(lockfile)[0] == holder.pid
    finally:
        _stop(holder)
    # the waiter now gets the lock and becomes the holder
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (procfs.lock_holder(lockfile) or (0,))[0] != waiter.pid:
            time.sleep(0.02)
        assert procfs.lock_holder(lockfile)[0] == waiter.pid
    finally:
        _stop(waiter)


@pytest.mark.skipif(not hasattr(fcntl, "F_OFD_SETLK"), reason="no OFD locks")
def test_lock_holder_ofd_lock_resolved_via_fdinfo(lockfile):
    p = _child(OFD_CHILD, lockfile)
    try:
        st = os.stat(lockfile)
        with open("/proc/locks") as f:
            entries = [e for e in procfs.parse_locks(f.read()) if e.inode == st.st_ino]
        assert entries and entries[0].kind == "OFDLCK" and entries[0].pid == -1
        assert procfs.lock_holder(lockfile)[0] == p.pid
    finally:
        _stop(p)


def test_lock_holder_inherited_flock_names_live_holder(lockfile):
    p = subprocess.Popen([sys.executable, "-c", INHERIT_CHILD, lockfile], stdout=subprocess.PIPE, text=True)
    _ready, pid_s = p.stdout.readline().split()
    grandchild = int(pid_s)
    p.wait()
    p.stdout.close()
    try:
        # /proc/locks still names the dead parent; the live holder is the grandchild
        assert not procfs.pid_alive(p.pid)
        assert procfs.lock_holder(lockfile)[0] == grandchild
    finally:
        os.kill(grandchild, 9)
        deadline = time.monotonic() + 5
        while procfs.pid_alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.02)


# -- parsing edge cases on a fake /proc ------------------------------------------------------
def test_parse_lock_line_forms():
    e = procfs.parse_lock_line("1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF")
    assert (e.kind, e.access, e.pid, e.major, e.minor, e.inode, e.blocked) == ("FLOCK", "WRITE", 1234, 0xFD, 1, 5678, False)
    e = procfs.parse_lock_line("1: -> FLOCK  ADVISORY  WRITE 1235 fd:01:5678 0 EOF")
    assert e.blocked and e.pid == 1235
    e = procfs.parse_lock_line("12:  -> POSIX  ADVISORY  WRITE 99 00:1a:42 0 EOF")
    assert e.blocked and (e.major, e.minor) == (0, 0x1A)
    e = procfs.parse_lock_line("3: OFDLCK ADVISORY  READ  -1 00:05:1234 0 EOF")
    assert e.kind == "OFDLCK" and e.pid == -1
    e = procfs.parse_lock_line("4: POSIX  ADVISORY  WRITE 77 <none>:0 0 EOF")
    assert e.pid == 77 and e.inode is None
    e = procfs.parse_lock_line("5: FLOCK  ADVISORY  WRITE 10 103:1ff:99 0 EOF")  # wide hex minor
    assert (e.major, e.minor) == (0x103, 0x1FF)
    for junk in ("", "garbage", "x: FLOCK ADVISORY WRITE 1 00:01:2 0 EOF", "1: FLOCK ADVISORY WRITE nope 00:01:2 0 EOF",
                 "1: ->"):
        assert procfs.parse_lock_line(junk) is None


def _fake_proc(root, locks: str, procs: dict[int, bytes]):
    proc = root / "proc"
    proc.mkdir()
    (proc / "locks").write_text(locks)
    for pid, cmdline in procs.items():
        d = proc / str(pid)
        d.mkdir()
        (d / "cmdline").write_bytes(cmdline)
        (d / "comm").write_text("xenconsole\n")
        (d / "stat").write_text(f"{pid} (xenconsole) S 1 1 1 0 -1\n")
    return str(proc)


def test_holder_of_major_minor_are_hex(tmp_path):
    # fd:10 in /proc/locks is major 253, minor 16 -- not minor 10
    proc = _fake_proc(tmp_path, "1: FLOCK  ADVISORY  WRITE 4242 fd:10:5678 0 EOF\n",
                      {4242: b"/usr/lib/xen-4.17/bin/xenconsole\x007\x00--num\x000\x00"})
    assert procfs.holder_of(253, 16, 5678, proc) == (4242, "/usr/lib/xen-4.17/bin/xenconsole 7 --num 0")
    assert procfs.holder_of(253, 10, 5678, proc) is None
    assert procfs.holder_of(253, 16, 5679, proc) is None


def test_holder_of_skips_waiters_unknown_pids_and_leases(tmp_path):
    locks = (
        "1: FLOCK  ADVISORY  WRITE 0 fd:01:77 0 EOF\n"  # holder in another pid namespace
        "1: -> FLOCK  ADVISORY  WRITE 500 fd:01:77 0 EOF\n"  # waiter
        "2: LEASE  ACTIVE    READ 501 fd:01:77 0 EOF\n"
        "3: OFDLCK ADVISORY  WRITE -1 fd:01:88 0 EOF\n"  # OFD, no fdinfo in the fake tree
        "garbage line\n"
        "4: POSIX  ADVISORY  WRITE 502 fd:01:99 0 EOF\n"
    )
    proc = _fake_proc(tmp_path, locks, {500: b"waiter\x00", 501: b"lessee\x00", 502: b"holder\x00"})
    assert procfs.holder_of(0xFD, 1, 77, proc) is None  # never 0 or a waiter's pid
    assert procfs.holder_of(0xFD, 1, 88, proc) is None  # never -1
    assert procfs.holder_of(0xFD, 1, 99, proc) == (502, "holder")


def test_holder_of_missing_proc(tmp_path):
    assert procfs.holder_of(1, 2, 3, str(tmp_path / "noproc")) is None
