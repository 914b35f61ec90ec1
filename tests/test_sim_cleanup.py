"""`xcinspect --sim` (no DIR) starts the demo world in a temporary directory and cleans
everything -- processes, sockets, files -- on exit, also on Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time

import pytest


@pytest.fixture
def tmp_path():
    """A short temporary directory: unix socket paths (the sim's xenstored) are limited to 107 bytes."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="xci-t-", dir="/tmp")
    yield __import__("pathlib").Path(d)
    shutil.rmtree(d, ignore_errors=True)


def procs_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def wait_until(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_once_json_cleans_up(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "xcinspect", "--sim", "--once", "--json"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"stuck-boot"' in r.stdout
    assert wait_until(lambda: not procs_mentioning(str(tmp_path)), 10), procs_mentioning(str(tmp_path))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_tui_cleans_up_on_signal(tmp_path, sig):
    env = dict(os.environ, TMPDIR=str(tmp_path), TERM="xterm-256color", COLUMNS="100", LINES="30",
               PYTHONFAULTHANDLER="1")  # SIGABRT dumps every thread's stack if it does not exit
    pid, fd = pty.fork()
    if pid == 0:  # child: the TUI on a real pty
        # with SIGINT at its default: a job started in the background by a non-interactive
        # shell (a CI runner, `make ... &`) inherits it ignored, and so would the TUI
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(sys.executable, [sys.executable, "-m", "xcinspect", "--sim"], env)
    out = b""
    try:
        deadline = time.time() + 60
        while b"stuck-boot" not in out and time.time() < deadline:
            try:
                import select

                r, _, _ = select.select([fd], [], [], 0.5)
                if r:
                    out += os.read(fd, 65536)
            except OSError:
                break
        assert b"stuck-boot" in out, out[-2000:]
        worlds = os.listdir(tmp_path)
        assert len(worlds) == 1 and procs_mentioning(str(tmp_path))
        os.kill(pid, sig)

        def exited():
            try:
                import select

                while True:
                    r, _, _ = select.select([fd], [], [], 0)
                    if not r:
                        break
                    os.read(fd, 65536)
            except OSError:
                pass
            return os.waitpid(pid, os.WNOHANG)[0] == pid

        if not wait_until(exited, 30):
            os.kill(pid, signal.SIGABRT)
            time.sleep(3)
            dump = b""
            try:
                while select.select([fd], [], [], 0.2)[0]:
                    dump += os.read(fd, 65536)
            except OSError:
                pass
            text = dump.decode(errors="replace")
            raise AssertionError("xcinspect did not exit; its threads (faulthandler):\n"
                                 + text[text.find("Fatal Python error"):][-6000:])
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    assert wait_until(lambda: not procs_mentioning(str(tmp_path)), 15), procs_mentioning(str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_backend_ends_when_its_world_is_stopped(tmp_path):
    """`xcinspect connect 4` against `xcinspect sim DIR`, then Ctrl-C on the world: the
    backend daemon it started ends too (it kept running, servicing nothing)."""
    import re
    import signal
    import subprocess
    import sys
    import time

    wdir = str(tmp_path / "w")
    sim = subprocess.Popen([sys.executable, "-m", "xcinspect", "sim", wdir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(wdir, "world.json")) or subprocess.run(
                [sys.executable, "-m", "xcinspect", "--sim", wdir, "--once", "--json"],
                capture_output=True).returncode != 0:
            assert time.time() < deadline, "the world did not come up"
            time.sleep(0.5)
        r = subprocess.run([sys.executable, "-m", "xcinspect", "--sim", wdir, "connect", "4"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        pid = int(re.search(r"backend pid (\d+)", r.stdout).group(1))
        os.kill(pid, 0)
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"backend {pid} still running 20 s after its world stopped")
