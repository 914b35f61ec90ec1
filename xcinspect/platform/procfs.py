"""Process facts from /proc: liveness, pid files, lock holders, command lines.

Generic Linux code (used by the dom0 platform and the simulator alike). Every function
takes ``proc`` -- the procfs root, "/proc" by default -- so tests can point it at a fake
tree.

/proc/locks lines look like (``fs/locks.c: lock_get_status``)::

    1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF
    1: -> FLOCK  ADVISORY  WRITE 1240 fd:01:5678 0 EOF     (a blocked waiter)
    2: POSIX  ADVISORY  WRITE 1300 00:1a:42 0 EOF
    3: OFDLCK ADVISORY  READ  -1 00:05:1234 0 EOF          (OFD locks have no pid)

The device is ``MAJOR:MINOR`` in **hex** (``%02x:%02x``) of the file's superblock, the
inode is decimal. A pid of 0 means the holder lives in a pid namespace we cannot see.
Only positive pids are ever returned: a caller that signals the holder must never be
handed 0 or -1 (``kill(-1, ...)`` signals every process).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

PROC = "/proc"
PID_MAX = 1 << 22  # PID_MAX_LIMIT on 64-bit Linux


def _read(path: str, limit: int = 65536) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def _valid_pid(pid: object) -> bool:
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < PID_MAX


def process_state(pid: int, proc: str = PROC) -> str | None:
    """The one-letter state from /proc/PID/stat (R, S, D, Z, ...), None if gone/unknown."""
    if not _valid_pid(pid):
        return None
    raw = _read(f"{proc}/{pid}/stat", 4096)
    if not raw:
        return None
    tail = raw[raw.rfind(b")") + 1:].split()  # comm may contain spaces and ')'
    return tail[0].decode("ascii", "replace") if tail else None


def pid_alive(pid: int, proc: str = PROC) -> bool:
    """True when ``pid`` is a running (not zombie, not dead) process visible in ``proc``."""
    if not _valid_pid(pid):
        return False
    if not os.path.isdir(f"{proc}/{pid}"):
        return False
    state = process_state(pid, proc)
    return state not in ("Z", "X", "x")


def process_comm(pid: int, proc: str = PROC) -> str | None:
    """/proc/PID/comm (the kernel's 15-character task name), None if unreadable."""
    if not _valid_pid(pid):
        return None
    raw = _read(f"{proc}/{pid}/comm", 256)
    if raw is None:
        return None
    return raw.rstrip(b"\n").decode("utf-8", "replace")


def process_cmdline(pid: int, proc: str = PROC) -> str | None:
    """The command line, arguments joined by spaces; ``[comm]`` for kernel threads and
    zombies (empty cmdline); None when the process is gone."""
    if not _valid_pid(pid):
        return None
    raw = _read(f"{proc}/{pid}/cmdline")
    if raw is None:
        return None
    args = raw.split(b"\0")
    while args and args[-1] == b"":
        args.pop()
    if args:
        return " ".join(a.decode("utf-8", "replace") for a in args)
    comm = process_comm(pid, proc)
    return f"[{comm}]" if comm is not None else None


def parse_pid(text: bytes | str) -> int | None:
    """The pid in a pid file (first line, surrounding blanks allowed), else None."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    lines = text.strip().splitlines()
    if not lines:
        return None
    word = lines[0].strip()
    if not word.isdigit() or len(word) > 8:
        return None
    pid = int(word)
    return pid if _valid_pid(pid) else None


def _comm_matches(pid: int, comm: str, proc: str) -> bool:
    actual = process_comm(pid, proc)
    if actual is None:
        return True  # cannot tell: trust the pid file
    return actual == comm[:15]


def read_pidfile(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], proc: str = PROC, comm: str | None = None) -> int | None:
    """The pid from the first pid file in ``paths`` whose process is alive in ``proc``
    (and, with ``comm``, whose task name is ``comm``, guarding against pid reuse).

    Missing, unreadable, empty or garbage files and dead pids are skipped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for path in paths:
        raw = _read(os.fspath(path), 256)
        if raw is None:
            continue
        pid = parse_pid(raw)
        if pid is None or not pid_alive(pid, proc):
            continue
        if comm is not None and not _comm_matches(pid, comm, proc):
            continue
        return pid
    return None


# -- /proc/locks -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LockEntry:
    id: int
    kind: str  # FLOCK, POSIX, OFDLCK, LEASE, DELEG, ...
    mode: str  # ADVISORY, MANDATORY, ACTIVE, BREAKING, ...
    access: str  # READ, WRITE, UNLCK
    pid: int  # -1 for OFD locks, 0 when not visible in our pid namespace
    major: int | None
    minor: int | None
    inode: int | None
    blocked: bool  # a waiter ("->"), not a holder


def parse_lock_line(line: str) -> LockEntry | None:
    """One /proc/locks (or fdinfo ``lock:``) line, or None if it is not one."""
    words = line.split()
    if len(words) < 6 or not words[0].endswith(":"):
        return None
    try:
        ident = int(words[0][:-1])
    except ValueError:
        return None
    blocked = False
    rest = words[1:]
    if rest and rest[0] == "->":
        blocked = True
        rest = rest[1:]
    if len(rest) < 5:
        return None
    kind, mode, access, pid_s, dev = rest[:5]
    try:
        pid = int(pid_s)
    except ValueError:
        return None
    major = minor = inode = None
    parts = dev.split(":")
    if len(parts) == 3:
        try:
            major, minor, inode = int(parts[0], 16), int(parts[1], 16), int(parts[2])
        except ValueError:
            major = minor = inode = None
    return LockEntry(ident, kind, mode, access, pid, major, minor, inode, blocked)


def parse_locks(text: str) -> list[LockEntry]:
    """All parseable lines of /proc/locks."""
    out = []
    for line in text.splitlines():
        e = parse_lock_line(line)
        if e is not None:
            out.append(e)
    return out


_LOCK_KINDS = ("FLOCK", "POSIX", "OFDLCK")


def _held(e: LockEntry) -> bool:
    return not e.blocked and e.kind in _LOCK_KINDS and e.access in ("READ", "WRITE")


def _has_open(pid: int, st: os.stat_result, proc: str) -> bool:
    """Whether ``pid`` has an fd open on the file ``st`` describes."""
    fddir = f"{proc}/{pid}/fd"
    try:
        fds = os.listdir(fddir)
    except OSError:
        return False
    for fd in fds:
        try:
            s = os.stat(f"{fddir}/{fd}")
        except OSError:
            continue
        if s.st_ino == st.st_ino and s.st_dev == st.st_dev:
            return True
    return False


def _ofd_owner(major: int, minor: int, inode: int, proc: str) -> int | None:
    """Find the process holding an OFD lock (pid -1 in /proc/locks) via fdinfo ``lock:``
    lines (Linux >= 4.1). Slow (scans every process) -- only used when such a lock exists."""
    try:
        pids = [int(n) for n in os.listdir(proc) if n.isdigit()]
    except OSError:
        return None
    for pid in sorted(pids):
        base = f"{proc}/{pid}/fdinfo"
        try:
            fds = os.listdir(base)
        except OSError:
            continue
        for fd in fds:
            raw = _read(f"{base}/{fd}", 8192)
            if not raw or b"lock:" not in raw:
                continue
            for line in raw.decode("ascii", "replace").splitlines():
                if not line.startswith("lock:"):
                    continue
                e = parse_lock_line(line[5:].strip())
                if e is not None and _held(e) and (e.major, e.minor, e.inode) == (major, minor, inode):
                    return pid
    return None


def holder_of(major: int, minor: int, inode: int, proc: str = PROC,
              st: os.stat_result | None = None) -> tuple[int, str] | None:
    """(pid, cmdline) of a process holding a lock on device ``major:minor`` inode
    ``inode``, from ``proc``/locks; None when unlocked or the holder cannot be named.

    With ``st`` (the file's stat), a lock whose inode matches but whose device does not
    (btrfs subvolumes and overlayfs report a different st_dev than the superblock's)
    is accepted when its pid has that very file open; and when the pid that took a
    flock is dead (the lock lives on in an inherited fd), a live process with the file
    open is named instead. OFD locks (pid -1) are resolved through /proc/PID/fdinfo.
    Holders in another pid namespace (pid 0) cannot be named: None.
    """
    raw = _read(f"{proc}/locks", 1 << 22)
    if raw is None:
        return None
    entries = [e for e in parse_locks(raw.decode("ascii", "replace")) if _held(e) and e.inode == inode]
    exact = [e for e in entries if (e.major, e.minor) == (major, minor)]
    other = [e for e in entries if (e.major, e.minor) != (major, minor)]

    def named(pid: int) -> tuple[int, str]:
        return pid, process_cmdline(pid, proc) or "?"

    for e in exact:
        if e.pid > 0 and pid_alive(e.pid, proc):
            return named(e.pid)
    if st is not None:
        for e in other:
            if e.pid > 0 and pid_alive(e.pid, proc) and _has_open(e.pid, st, proc):
                return named(e.pid)
    if any(e.kind == "OFDLCK" and e.pid < 0 for e in exact):
        pid = _ofd_owner(major, minor, inode, proc)
        if pid is not None:
            return named(pid)
    if st is not None and any(e.pid > 0 for e in exact):
        # The pid that took a flock died but the lock lives on in an inherited fd:
        # name a live process that has the file open.
        pid = _opened_by(st, proc)
        if pid is not None:
            return named(pid)
    return None


def _opened_by(st: os.stat_result, proc: str) -> int | None:
    try:
        pids = sorted(int(n) for n in os.listdir(proc) if n.isdigit())
    except OSError:
        return None
    for pid in pids:
        if pid != os.getpid() and pid_alive(pid, proc) and _has_open(pid, st, proc):
            return pid
    return None


def lock_holder(path: str, proc: str = PROC) -> tuple[int, str] | None:
    """(pid, cmdline) of the process holding a flock/POSIX/OFD lock on ``path``,
    matched by device and inode against ``proc``/locks; None when the file does not
    exist, nobody holds a lock on it, or the holder cannot be named."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return holder_of(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino, proc, st)
