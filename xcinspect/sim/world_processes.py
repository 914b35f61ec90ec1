"""The world's child processes, as the controller starts and ends them: ``python -m`` of a
sim daemon or guest module with the world directory and the controller as parent (its
stderr in ``DIR/run/NAME.log``), a guest process and its line pipes (``GuestProc``), and a
stop that always ends in the process being gone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from xcinspect.sim.common import Paths


class GuestProc:
    """One guest process: the domains it runs, its stdin (commands) and stdout (reports)."""

    def __init__(self, proc: subprocess.Popen, domids: list[int]) -> None:
        self.proc = proc
        self.domids = set(domids)
        self.buf = b""

    def tell(self, line: str) -> None:
        """A command line to the guest process (``stop DOMID``, ``set DOMID KEY VALUE``)."""
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def read_lines(self) -> list[str] | None:
        """The whole lines it reported since the last call; None at the end of its output,
        BlockingIOError when there is nothing to read."""
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            raise
        except OSError:
            chunk = b""
        if not chunk:
            return None
        self.buf += chunk
        lines = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line.decode(errors="replace"))
        return lines


def spawn(paths: Paths, args: list[str], name: str, **kw) -> subprocess.Popen:
    """``python -m ARGS --world DIR --parent-pid <us>``, its stderr appended to ``run/NAME.log``."""
    cmd = [sys.executable, "-m", *args, "--world", paths.dir, "--parent-pid", str(os.getpid())]
    log = open(os.path.join(paths.run, f"{name}.log"), "ab", buffering=0)
    try:
        return subprocess.Popen(cmd, stderr=log, close_fds=True, **kw)
    finally:
        log.close()


def stop(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, and SIGKILL after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    except OSError:
        pass


def stop_guests(guests: list[GuestProc], timeout: float) -> None:
    """Every guest process told to stop at once, then each waited for (and its pipes closed)."""
    for g in guests:
        if g.proc.poll() is None:
            try:
                g.proc.terminate()
            except OSError:
                pass
    for g in guests:
        stop(g.proc, timeout)
        for f in (g.proc.stdin, g.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


def report_exits(say: Callable[[str], None], named: list[tuple[str, subprocess.Popen | None]]) -> None:
    """Say once of each of these processes that it exited, and with what status."""
    for name, proc in named:
        if proc is not None and proc.poll() is not None and not getattr(proc, "_reported", False):
            proc._reported = True
            say(f"{name} exited with status {proc.returncode}")
