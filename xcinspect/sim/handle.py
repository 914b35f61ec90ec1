"""The client handle of a sim world: start one (``start_world``, the controller in its own
session), talk to its control socket, read its description, stop it (every process of the
world is gone afterwards, even if the controller was SIGKILLed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from xcinspect.sim.common import Paths, pid_alive, read_world, world_id_for
from xcinspect.sim.scenarios import MAX_DOMAINS


class WorldError(RuntimeError):
    pass


def _group_members(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if int(rest[2]) == pgid and rest[0] != "Z":
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return out


class World:
    """A running sim world (see ``start_world``)."""

    def __init__(self, directory: str, proc: subprocess.Popen) -> None:
        self.paths = Paths(directory)
        self.dir = self.paths.dir
        self.proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid  # start_new_session: the controller leads its own group
        self.stopped = False
        self._known_pids: set[int] = set()

    @property
    def xenstore_path(self) -> str:
        return self.paths.socket

    @property
    def world_id(self) -> str:
        return world_id_for(self.dir)

    def info(self) -> dict:
        return read_world(self.dir)

    @property
    def domains(self) -> dict[int, dict]:
        return {int(k): v for k, v in self.info().get("domains", {}).items()}

    def domid(self, name: str) -> int:
        for d, cfg in self.domains.items():
            if cfg.get("name") == name:
                return d
        raise KeyError(name)

    def pids(self) -> list[int]:
        """The controller and every process it started (as recorded in world.json)."""
        try:
            p = self.info().get("pids", {})
        except (OSError, ValueError):
            p = {}
        pids = [self.pid] + [x for x in (p.get("xenstored"), p.get("xenconsoled")) if x] + list(p.get("guests", []))
        self._known_pids.update(pids)
        return pids

    def platform(self):
        from xcinspect.sim.platform import SimPlatform

        return SimPlatform(self.dir)

    def control(self, line: str, timeout: float = 10.0) -> str:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.paths.control)
            s.sendall(line.strip().encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        reply = buf.decode().strip()
        if not reply.startswith("ok"):
            raise WorldError(f"world control {line!r}: {reply or 'no reply'}")
        return reply[2:].strip()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the world: every process of it is gone when this returns."""
        if self.stopped:
            return
        try:
            self.pids()
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (controller SIGKILLed, a wedged child): kill it.
        deadline = time.monotonic() + 5.0
        while True:
            members = _group_members(self.pgid)
            strays = [p for p in self._known_pids if p != self.pid and pid_alive(p) and p not in members]
            if not members and not strays:
                break
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for p in strays:
                try:
                    os.kill(p, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._stop_backends()
        for path in (self.paths.socket, self.paths.control, self.paths.ready):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.stopped = True

    def _stop_backends(self) -> None:
        """xcinspect backend daemons started for this world (own sessions) go with it."""
        try:
            names = os.listdir(self.paths.state)
        except OSError:
            return
        for name in names:
            if not name.endswith(".pid"):
                continue
            try:
                with open(os.path.join(self.paths.state, name)) as f:
                    pid = int(f.read().split()[0])
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except (OSError, ValueError, IndexError):
                continue
            if self.dir.encode() not in cmd:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                continue
            for _ in range(60):
                if not pid_alive(pid):
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_world(directory: str, domains: int | None = None, scenario: str = "demo", timeline: bool = True,
                timeout: float | None = None, log: str | None = None) -> World:
    """Start a world controller for ``directory`` (in its own session) and wait until every
    initial guest has booted (``world.ready``). Raises WorldError with the reason when it
    does not come up within ``timeout`` seconds (default: 30 s + 60 ms per domain)."""
    if domains is not None and not 1 <= int(domains) <= MAX_DOMAINS:
        raise WorldError(f"a sim world has 1 to {MAX_DOMAINS} domains")
    if domains and scenario == "demo":
        scenario = "scale"  # a domain count means the scale scenario
    paths = Paths(directory)
    paths.makedirs()
    other = running_controller(paths.dir)
    if other:
        raise WorldError(f"a sim world is already running in {paths.dir} (controller pid {other})")
    try:
        os.unlink(paths.ready)
    except FileNotFoundError:
        pass
    args = ["-m", "xcinspect.sim.world", "--world", paths.dir, "--scenario", scenario]
    if domains:
        args += ["--domains", str(int(domains))]
    if not timeline:
        args.append("--no-timeline")
    if log:
        args += ["--log", log]
    if timeout is None:
        timeout = 30.0 + 0.06 * (domains or 10)
    return launch_controller(paths, args, timeout)


def launch_controller(paths: Paths, args: list[str], timeout: float) -> World:
    """Run ``python ARGS`` (a world controller for ``paths``) in its own session, logging
    to run/world.log, and wait for ``world.ready``; stop it and raise WorldError with the
    log's tail when it exits or is not ready within ``timeout`` seconds."""
    cmd = [sys.executable, *args]
    if threading.current_thread() is threading.main_thread():
        # The world dies with us even if we are SIGKILLed (PDEATHSIG is per thread, so
        # only from the main thread: a worker thread's exit must not end the world).
        cmd += ["--parent-pid", str(os.getpid())]
    logf = open(os.path.join(paths.run, "world.log"), "ab", buffering=0)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    finally:
        logf.close()
    world = World(paths.dir, proc)
    deadline = time.monotonic() + timeout
    try:
        while not os.path.exists(paths.ready):
            if proc.poll() is not None:
                tail = _tail(os.path.join(paths.run, "world.log"))
                raise WorldError(f"the sim world controller exited (status {proc.returncode}) before the "
                                 f"world was ready:\n{tail}")
            if time.monotonic() > deadline:
                tail = _tail(os.path.join(paths.run, "world.log"))
                raise WorldError(f"the sim world at {paths.dir} was not ready within {timeout:g} s:\n{tail}")
            time.sleep(0.02)
        world.pids()
    except BaseException:  # also Ctrl-C while waiting: never leave a half-started world
        world.stop()
        raise
    return world


def _tail(path: str, n: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def running_controller(directory: str) -> int | None:
    """Pid of another live controller of this directory, if any."""
    try:
        pid = int(read_world(directory).get("controller_pid") or 0)
    except (OSError, ValueError, TypeError):
        return None
    if not pid or pid == os.getpid() or not pid_alive(pid):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return pid if b"xcinspect.sim.world" in f.read() else None
    except OSError:
        return None

