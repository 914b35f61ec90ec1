"""Shared bits of the simulated world: directory layout, world.json, process hygiene.

World directory layout (a contract other parts of xcinspect code against)::

    DIR/world.json            version, world_id, xen_version, default_layout, controller_pid, domains
    DIR/xenstored/socket      the sim xenstored's unix socket (real wire protocol)
    DIR/run/xenstored.pid     pid files (removed on clean exit)
    DIR/run/xenconsoled.pid
    DIR/pages/dom<N>.page     4096-byte console page, real layout, mmap-shared
    DIR/pages/dom<N>.layout   none | rfc-v2 | xen-4.21
    DIR/lock/                 xenconsole.<domid> lock files (the sim's /var/lock)
    DIR/state/                xcinspect's own backend daemons (not the sim's)
    DIR/logs/                 sim xenconsoled guest logs guest-<name>.log
    DIR/world.ready           all initial guests have booted
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import socket

WORLD_VERSION = 1


def world_id_for(directory: str) -> str:
    return hashlib.sha1(os.path.realpath(directory).encode()).hexdigest()[:12]


class Paths:
    """Every path of one world directory."""

    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(directory)
        self.world_json = os.path.join(self.dir, "world.json")
        self.xenstored_dir = os.path.join(self.dir, "xenstored")
        self.socket = os.path.join(self.xenstored_dir, "socket")
        self.run = os.path.join(self.dir, "run")
        self.xenstored_pid = os.path.join(self.run, "xenstored.pid")
        self.consoled_pid = os.path.join(self.run, "xenconsoled.pid")
        self.control = os.path.join(self.run, "world.sock")
        self.pages = os.path.join(self.dir, "pages")
        self.lock = os.path.join(self.dir, "lock")
        self.state = os.path.join(self.dir, "state")
        self.logs = os.path.join(self.dir, "logs")
        self.audit = os.path.join(self.dir, "audit.log")
        self.ready = os.path.join(self.dir, "world.ready")

    def page(self, domid: int) -> str:
        return os.path.join(self.pages, f"dom{domid}.page")

    def layout(self, domid: int) -> str:
        return os.path.join(self.pages, f"dom{domid}.layout")

    def guest_log(self, name: str) -> str:
        return os.path.join(self.logs, f"guest-{name}.log")

    def makedirs(self) -> None:
        for d in (self.dir, self.xenstored_dir, self.run, self.pages, self.lock, self.state, self.logs):
            os.makedirs(d, exist_ok=True)


def read_world(directory: str) -> dict:
    with open(os.path.join(directory, "world.json"), encoding="utf-8") as f:
        return json.load(f)


def write_world(directory: str, data: dict) -> None:
    """Atomic replace, so readers never see half a file."""
    path = os.path.join(directory, "world.json")
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_layout(paths: Paths, domid: int, default: str = "none") -> str:
    try:
        with open(paths.layout(domid), encoding="ascii") as f:
            return f.read().strip() or default
    except OSError:
        return default


def write_pidfile(path: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def remove_pidfile(path: str) -> None:
    """Remove ``path`` only if it still names this process."""
    try:
        with open(path) as f:
            if int(f.read().split()[0]) != os.getpid():
                return
        os.unlink(path)
    except (OSError, ValueError, IndexError):
        pass


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            # field 3 is the state; a zombie has exited already
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` when our parent exits (Linux prctl); exit now if it
    is already gone. Keeps a SIGKILLed controller from leaving orphans behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except Exception:  # pragma: no cover - not Linux
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)


def signal_wakeup(on_stop, stop=(signal.SIGTERM,), ignore=()) -> tuple[socket.socket, socket.socket]:
    """A socket pair that every signal wakes (``signal.set_wakeup_fd``): poll the first
    socket in the main loop. ``on_stop()`` runs for the ``stop`` signals; ``ignore`` ones are
    ignored. The caller keeps both sockets alive for as long as it runs."""
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)

    def handler(signum, frame):
        on_stop()

    for sig in stop:
        signal.signal(sig, handler)
    for sig in ignore:
        signal.signal(sig, signal.SIG_IGN)
    return r, w


def drain_wakeup(r: socket.socket) -> None:
    """Empty the wake-up socket of ``signal_wakeup`` (it only says: look at your flags)."""
    try:
        while r.recv(64):
            pass
    except OSError:  # BlockingIOError: empty
        pass
