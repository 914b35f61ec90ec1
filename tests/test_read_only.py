"""``--read-only``: no page is mapped with write permission and nothing writes to a page,
binds an event channel or changes xenstore -- whatever the front end asks for.

The guarantee is structural, at the lowest layers: a read-only ``Platform`` refuses a
writable mapping and an event channel binding, a read-only ``XsClient`` refuses every
request that could change the store, ``Actions`` over a read-only platform is read-only,
and the monitor's xenstore client is always read-only. The proof:

1. unit tests of each guard (sim and dom0 platforms, the xenstore client, actions);
2. every read-only command (JSON, batch, metrics, connect, attach, disconnect --force,
   disconnect --set-flag, the backend itself, the TUI with every action key pressed) runs
   under ``strace -f`` against a running world whose xenstore socket is a recording
   proxy: every ``open`` of a page file is ``O_RDONLY`` (so no mapping of it can ever be
   made writable: the kernel refuses ``PROT_WRITE`` on a shared mapping of a read-only
   fd), no event channel is bound, no backend is spawned, and xenstored receives only
   read requests. A positive control shows the same checks catch a writer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from hostile_corpus import PtyRun
from pyxs._internal import Op

from xcinspect.core import ring
from xcinspect.engine.actions import ActionError, Actions
from xcinspect.platform.base import PlatformError
from xcinspect.platform.dom0 import Dom0Platform
from xcinspect.platform.xenstore import READ_OPS, XenstoreError, XsClient
from xcinspect.sim.platform import SimPlatform

HEADER = struct.Struct("<IIII")
OP_NAMES = {getattr(Op, k): k for k in dir(Op) if k.isupper()}


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from xcinspect.sim.handle import start_world

    w = start_world(str(tmp_path_factory.mktemp("ro-world")), scenario="demo", timeline=False)
    try:
        yield w
    finally:
        w.stop()


class RecordingProxy:
    """A xenstored socket that forwards to the real one and records every request."""

    def __init__(self, listen: str, target: str) -> None:
        self.target = target
        self.requests: list[tuple[int, bytes]] = []
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(listen)
        self.srv.listen(16)
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.target)
            self.socks += [c, up]
            threading.Thread(target=self._pump, args=(c, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, c, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        buf = b""
        while True:
            try:
                chunk = src.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if record:
                buf += chunk
                while len(buf) >= HEADER.size:
                    op, _, _, n = HEADER.unpack_from(buf)
                    if len(buf) < HEADER.size + n:
                        break
                    with self.lock:
                        self.requests.append((op, buf[HEADER.size: HEADER.size + n]))
                    buf = buf[HEADER.size + n:]
            try:
                dst.sendall(chunk)
            except OSError:
                return

    def take(self) -> list[tuple[int, bytes]]:
        with self.lock:
            out, self.requests = self.requests, []
        return out

    def close(self) -> None:
        self.srv.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture(scope="module")
def shadow(world, tmp_path_factory):
    """The world seen through a recording xenstore proxy: a directory with the world's
    world.json, links to its pages, locks, state, logs and audit log, and a proxy socket."""
    d = tmp_path_factory.mktemp("ro-shadow")
    os.makedirs(d / "xenstored")
    shutil.copy(os.path.join(world.dir, "world.json"), d / "world.json")
    for name in ("pages", "lock", "state", "logs", "run", "audit.log"):
        os.symlink(os.path.join(world.dir, name), d / name)
    proxy = RecordingProxy(str(d / "xenstored" / "socket"), world.xenstore_path)
    try:
        yield str(d), proxy
    finally:
        proxy.close()


# -- 1. the guards -----------------------------------------------------------------------------
def test_sim_platform_refuses_writes_in_read_only_mode(world):
    plat = SimPlatform(world.dir)
    plat.read_only = True
    d = world.domid("stuck-boot")
    m = plat.map_page(d, None)
    try:
        assert len(m.buf) == ring.PAGE_SIZE and not m.writable
        with pytest.raises(TypeError):
            m.buf[ring.OUT_CONS] = 1
    finally:
        m.close()
    with pytest.raises(PlatformError, match="read-only mode"):
        plat.map_page(d, None, writable=True)
    with pytest.raises(PlatformError, match="read-only mode"):
        plat.bind_evtchn(d, world.domains[d]["port"])
    assert plat.port_bound(d, world.domains[d]["port"]) is False  # nothing was bound


def test_dom0_platform_refuses_before_touching_the_libraries(tmp_path):
    calls = []

    class Libs:
        def __getattr__(self, name):
            def record(*a, **kw):
                calls.append(name)
                raise PlatformError("fake library")
            return record

    p = Dom0Platform(str(tmp_path), euid=0, env={}, libs=Libs())
    p.read_only = True
    with pytest.raises(PlatformError, match="read-only mode"):
        p.map_page(3, 0x1234, writable=True)
    with pytest.raises(PlatformError, match="read-only mode"):
        p.bind_evtchn(3, 2)
    assert calls == []
    with pytest.raises(PlatformError, match="fake library"):
        p.map_page(3, 0x1234)  # a read-only mapping goes ahead
    assert calls and "map" in calls[0]


def test_read_only_xenstore_client_sends_nothing_that_changes_the_store(world):
    xs = XsClient(world.xenstore_path, read_only=True)
    try:
        assert xs.read("/local/domain/1/name") == "web01"
        assert "1" in xs.list("/local/domain")
        xs.watch("@releaseDomain", "t")
        for call in (lambda: xs.write("/local/domain/1/name", "x"), lambda: xs.mkdir("/xci"),
                     lambda: xs.rm("/local/domain/1"), lambda: xs.introduce(9, 1, 1), lambda: xs.release(1),
                     lambda: xs.control("drop")):
            with pytest.raises(XenstoreError, match="read-only mode"):
                call()
    finally:
        xs.close()
    assert READ_OPS.isdisjoint({Op.WRITE, Op.MKDIR, Op.RM, Op.SET_PERMS, Op.INTRODUCE, Op.RELEASE,
                                Op.TRANSACTION_START, Op.TRANSACTION_END, Op.DEBUG, Op.RESUME,
                                Op.SET_TARGET})


def test_actions_over_a_read_only_platform_are_read_only(world):
    plat = SimPlatform(world.dir)
    plat.read_only = True
    acts = Actions(plat, read_only=False)  # even if the caller forgets
    try:
        assert acts.read_only and acts.xs.read_only
        d = world.domid("stuck-boot")
        for act in (lambda: acts.connect(d), lambda: acts.attach(d), lambda: acts.disconnect(d, force=True),
                    lambda: acts.disconnect(world.domid("db01"), set_flag=True)):
            with pytest.raises(ActionError, match="read-only"):
                act()
    finally:
        acts.xs.close()
    audit = [json.loads(x) for x in open(os.path.join(world.dir, "audit.log"))]
    refused = [a for a in audit if a["result"] == "refused" and "read-only" in a["detail"]]
    assert {a["action"] for a in refused} >= {"connect", "attach", "disconnect"}


def test_the_monitor_never_writes_xenstore(world):
    from xcinspect.engine.monitor import Monitor

    mon = Monitor(SimPlatform(world.dir))
    mon.open()
    try:
        assert mon.xs.read_only
        mon.tick()
    finally:
        mon.close()


# -- 2. every command, under strace ----------------------------------------------------------------
STRACE = shutil.which("strace")
TRACED = "trace=open,openat,openat2,creat,truncate,ftruncate,mmap,mprotect,bind,execve"


def traced(out: str, *argv: str) -> list[str]:
    return [STRACE, "-f", "-qq", "-y", "-s", "200", "-e", TRACED, "-o", out, *argv]


def writes_in_trace(path: str) -> list[str]:
    """Lines of an strace log that open a page writable, map one writable, truncate one,
    bind an event channel or start a backend."""
    bad = []
    first_exec = True
    with open(path, errors="replace") as f:
        for line in f:
            if "execve(" in line and first_exec:
                first_exec = False  # the command under test itself
                continue
            if "/pages/dom" in line and re.search(r"open(at2?)?\(|creat\(|truncate\(", line):
                if re.search(r"O_WRONLY|O_RDWR|O_TRUNC|O_CREAT", line) or "truncate(" in line or "creat(" in line:
                    bad.append(line.strip())
            elif "/pages/dom" in line and "mmap(" in line and "PROT_WRITE" in line or line.find("bind(") >= 0 and "/backend" in line or "execve(" in line and '"_backend"' in line:
                bad.append(line.strip())
    return bad


def page_opens(path: str) -> int:
    with open(path, errors="replace") as f:
        return sum(1 for line in f if "/pages/dom" in line and "open" in line and "= -1" not in line)


def store_changes(requests) -> list[str]:
    return [f"{OP_NAMES.get(op, op)} {payload[:60]!r}" for op, payload in requests if op not in READ_OPS]


def xci(shadow_dir: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "xcinspect", "--sim", shadow_dir, "--read-only", *args]


@pytest.mark.skipif(STRACE is None, reason="needs strace")
@pytest.mark.parametrize("args,rc,says", [
    (["--once", "--json"], 0, ""),
    (["--batch", "-n", "2", "-d", "0.3"], 0, ""),
    (["metrics"], 0, ""),
    (["connect", "stuck-boot"], 1, "read-only"),
    (["attach", "web01"], 1, "read-only"),
    (["disconnect", "web01", "--force"], 1, "read-only"),
    (["disconnect", "db01", "--set-flag"], 1, "read-only"),
    (["_backend", "4"], 2, "read-only mode"),
    (["tail", "web01", "--timeout", "1"], 0, "tail (read-only)"),
    (["tail", "stuck-boot", "--timeout", "1"], 0, "tail (read-only)"),
], ids=["json", "batch", "metrics", "connect", "attach", "disconnect-force", "set-flag", "backend", "tail",
        "tail-unserviced"])
def test_read_only_commands_write_nothing(shadow, tmp_path, args, rc, says):
    sdir, proxy = shadow
    proxy.take()
    trace = str(tmp_path / "strace.log")
    r = subprocess.run(traced(trace, *xci(sdir, *args)), capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == rc, (r.returncode, r.stderr)
    assert says in r.stderr
    assert writes_in_trace(trace) == []
    assert store_changes(proxy.take()) == []
    if args[0] in ("--once", "--batch", "metrics"):
        assert page_opens(trace) >= 8  # it did read every page (read-only)


@pytest.mark.skipif(STRACE is None, reason="needs strace")
def test_read_only_tui_with_every_action_key(shadow, tmp_path, world):
    sdir, proxy = shadow
    proxy.take()
    trace = str(tmp_path / "strace.log")
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), TERM="xterm-256color")
    run = PtyRun(traced(trace, *xci(sdir)), cols=140, rows=40, env=env)
    try:
        run.wait_for(b"READ-ONLY", timeout=60)
        run.wait_for(b"stuck-boot", timeout=30)
        def idle(seconds: float) -> None:  # read the screen meanwhile: a full pty blocks the app
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                run.pump()

        for key in (b"c", b"a", b"d", b"D", b"\r", b"y", b"\x1b[B", b"c", b"a", b"d", b"D", b"y"):
            run.send(key)
            idle(0.15)
        run.send(b"\x10")  # ^p: the palette offers no actions in read-only mode either
        # typed before the palette is up, "connect" would reach the table (n: next problem,
        # t: a tail screen, which q leaves instead of quitting): wait for it
        run.wait_for(b"Search for commands", timeout=30)
        idle(0.3)
        run.send(b"connect")
        idle(0.5)
        run.send(b"\r")
        idle(0.5)
        run.send(b"\x1b")
        idle(0.5)
        for _ in range(3):  # a loaded machine may still be closing the palette: q again
            run.send(b"q")
            idle(5)
            if run.proc.poll() is not None:
                break
            run.send(b"\x1b")
        assert run.finish(30) == 0
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert writes_in_trace(trace) == []
    assert page_opens(trace) >= 8
    assert store_changes(proxy.take()) == []
    assert world.platform().port_bound(world.domid("stuck-boot"), 2) is False


@pytest.mark.skipif(STRACE is None, reason="needs strace")
def test_the_checks_catch_a_writer(shadow, tmp_path, world):
    """Positive control: a process that maps a page writable and writes xenstore."""
    sdir, proxy = shadow
    proxy.take()
    trace = str(tmp_path / "strace.log")
    code = ("import sys\nfrom xcinspect.sim.platform import SimPlatform\nfrom xcinspect.platform.xenstore import XsClient\n"
            "p = SimPlatform(sys.argv[1])\nm = p.map_page(4, None, writable=True)\nm.close()\n"
            "xs = XsClient(p.xenstore_path())\nxs.write('/local/domain/0/xci-probe', '1')\nxs.close()\n")
    r = subprocess.run(traced(trace, sys.executable, "-c", code, sdir), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert any("O_RDWR" in line for line in writes_in_trace(trace))
    assert any(c.startswith("WRITE") for c in store_changes(proxy.take()))
