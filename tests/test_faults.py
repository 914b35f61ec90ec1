"""Faults in the sim world: the UI stays responsive, shows a clear state, recovers when the
fault ends; no hang, no traceback.

Faults: xenstored killed (then a new one started with the old contents, as after a
restart), xenstored stalled (every reply held) and stalled mid-reply (half a reply, then
nothing), a page file truncated and deleted (then put back), a domain destroyed while
attached, a guest flooding its console.

Front ends:
* the CLI's NDJSON stream (``--json --interval``): documents keep coming on time, the
  host or the domain says what is wrong, then says it is fine again; nothing on stderr;
* ``xcinspect attach`` (non-interactive) when its domain is destroyed or floods;
* the TUI through Textual's pilot against the real world: keys are processed during
  the fault (pause, help), the status bar or the row says what is wrong, and it clears;
* the TUI on a real pty during xenstore faults: no traceback reaches the terminal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from hostile_corpus import PtyRun
from pilot_wait import on_top, row, until

from xcinspect.platform.xenstore import XsClient
from xcinspect.sim import xenstored
from xcinspect.sim.handle import start_world

PY = sys.executable


# -- helpers ----------------------------------------------------------------------------------------
def sigint_default() -> None:
    """In a child the test will SIGINT: a job started in the background by a
    non-interactive shell (a CI runner, `make ... &`) inherits SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler, as a background job should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Stream:
    """``xcinspect --sim DIR --json -d S`` in the background: documents with arrival times."""

    def __init__(self, world_dir: str, interval: float = 0.3) -> None:
        self.interval = interval
        # faulthandler: a stream that will not stop dumps its threads on SIGABRT (stop())
        self.proc = subprocess.Popen([PY, "-m", "xcinspect", "--sim", world_dir, "--json", "-d", str(interval)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, PYTHONFAULTHANDLER="1"), preexec_fn=sigint_default)
        self.docs: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.err = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            doc = json.loads(line)
            with self.lock:
                self.docs.append((time.monotonic(), doc))

    def _read_err(self) -> None:
        self.err = self.proc.stderr.read()

    def mark(self) -> int:
        with self.lock:
            return len(self.docs)

    def wait(self, pred, what: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self.lock:
                docs = self.docs[seen:]
                seen += len(docs)
            for _, doc in docs:
                if pred(doc):
                    return doc
            assert self.proc.poll() is None, f"the stream ended: {self.err[-500:]!r}"
            time.sleep(0.05)
        raise AssertionError(f"no document where {what} within {timeout} s")

    def max_gap(self, since: int) -> float:
        with self.lock:
            times = [t for t, _ in self.docs[since:]]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def stop(self) -> bytes:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                # where it hangs: faulthandler writes every thread's stack to stderr
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                time.sleep(0.5)
                sys.stderr.write("xcinspect --json did not stop on SIGINT within 10 s; its stderr:\n"
                                 + self.err.decode(errors="replace")[-6000:] + "\n")
        time.sleep(0.1)
        return self.err


def dom(doc: dict, name: str) -> dict | None:
    return next((d for d in doc["domains"] if d["name"] == name), None)


def dump_store(xs: XsClient, path: str = "/") -> list[tuple[str, str]]:
    out = []
    for child in xs.list(path):
        p = f"{path.rstrip('/')}/{child}"
        value = xs.read(p)
        out.append((p, value or ""))
        out += dump_store(xs, p)
    return out


class XenstoredKiller:
    """SIGKILL the world's xenstored; later start a new one with the old contents and
    introduce the domains again (what a restarted xenstored with its database does)."""

    def __init__(self, world) -> None:
        self.world = world
        xs = XsClient(world.xenstore_path)
        self.store = dump_store(xs)
        xs.close()
        self.domains = world.domains
        self.new = None

    def kill(self) -> None:
        pid = self.world.info()["pids"]["xenstored"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)

    def restart(self) -> None:
        try:
            os.unlink(self.world.xenstore_path)
        except FileNotFoundError:
            pass
        self.new = xenstored.spawn(self.world.dir)
        xs = XsClient(self.world.xenstore_path, timeout=10)
        for path, value in self.store:
            xs.write(path, value)
        for d, cfg in self.domains.items():
            xs.introduce(d, cfg["store_mfn"], 1)
        xs.close()

    def close(self) -> None:
        if self.new is not None and self.new.poll() is None:
            self.new.kill()
            self.new.wait()


def no_traceback(err: bytes) -> None:
    text = err.decode(errors="replace")
    assert "Traceback" not in text and "Exception in thread" not in text, text[-2000:]


# -- fixtures --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Shared by the faults that end cleanly (each creates its own domains)."""
    w = start_world(str(tmp_path_factory.mktemp("faults-world")), scenario="demo", timeline=False)
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def fresh_world(tmp_path):
    """Its own world, for killing xenstored."""
    w = start_world(str(tmp_path / "world"), scenario="demo", timeline=False)
    try:
        yield w
    finally:
        w.stop()


# -- 1. the CLI's stream ----------------------------------------------------------------------------------
def test_stream_xenstored_killed_then_back(fresh_world):
    world = fresh_world
    killer = XenstoredKiller(world)
    s = Stream(world.dir)
    try:
        s.wait(lambda d: len(d["domains"]) >= 8, "8 domains")
        mark = s.mark()
        killer.kill()
        bad = s.wait(lambda d: not d["host"]["xenstore_ok"], "xenstore down", timeout=15)
        assert "xenstore" in bad["host"]["xenstore_error"].lower()
        assert len(bad["domains"]) == 8  # what was known stays on screen
        time.sleep(2.0)  # a while without xenstored: the stream keeps its pace
        assert s.max_gap(mark) < 3.0
        killer.restart()
        s.wait(lambda d: d["host"]["xenstore_ok"] and len(d["domains"]) >= 8, "xenstore back", timeout=20)
        assert s.proc.poll() is None
    finally:
        err = s.stop()
        killer.close()
    no_traceback(err)


@pytest.mark.parametrize("fault", ["stall-mid"])  # ("stall" holds every reply: the TUI pty test has it)
def test_stream_xenstored_stalled(world, fault):
    s = Stream(world.dir)
    try:
        s.wait(lambda d: len(d["domains"]) >= 8, "8 domains")
        mark = s.mark()
        world.control(f"xenstored {fault} 4")
        if fault == "stall-mid":
            # the next reply is the one cut in half: make xcinspect ask for something
            threading.Thread(target=lambda: subprocess.run(
                [PY, "-c", f"from xcinspect.platform.xenstore import XsClient; x = XsClient({world.xenstore_path!r}, timeout=8); "
                           f"x.write('/local/domain/3/console/limit', '1048576')"], capture_output=True),
                daemon=True).start()
        bad = s.wait(lambda d: not d["host"]["xenstore_ok"], "xenstore not answering", timeout=15)
        assert "xenstore" in bad["host"]["xenstore_error"].lower() or "answer" in bad["host"]["xenstore_error"]
        s.wait(lambda d: d["host"]["xenstore_ok"] and len(d["domains"]) >= 8, "xenstore back", timeout=25)
        assert s.max_gap(mark) < 5.0  # a stalled call costs its timeout, never more
    finally:
        err = s.stop()
    no_traceback(err)


@pytest.mark.parametrize("how", ["truncate", "delete"])
def test_stream_page_file_truncated_or_deleted(world, how):
    d = world.domid("web01")
    path = world.paths.page(d) if hasattr(world, "paths") else os.path.join(world.dir, "pages", f"dom{d}.page")
    s = Stream(world.dir)
    try:
        s.wait(lambda doc: dom(doc, "web01") and dom(doc, "web01")["verdict"]["state"] in ("serviced", "idle"),
               "web01 fine")
        with open(path, "rb") as f:
            saved = f.read()
        if how == "truncate":
            os.truncate(path, 0)
        else:
            os.unlink(path)
        bad = s.wait(lambda doc: dom(doc, "web01")["verdict"]["state"] == "error", "web01 error", timeout=15)
        reason = bad and dom(bad, "web01")["verdict"]["reason"]
        assert ("truncated" in reason) if how == "truncate" else ("deleted" in reason or "gone" in reason), reason
        assert dom(bad, "db01")["verdict"]["state"] != "error"  # the others carry on
        # the fault ends: the page is back (a new file for "delete")
        if how == "truncate":
            with open(path, "r+b") as f:
                f.write(saved)
        else:
            with open(path + ".new", "wb") as f:
                f.write(saved)
            os.replace(path + ".new", path)
        s.wait(lambda doc: dom(doc, "web01")["verdict"]["state"] != "error", "web01 recovered", timeout=15)
    finally:
        err = s.stop()
    assert s.proc.returncode in (0, 130, -2), s.proc.returncode
    no_traceback(err)


def test_stream_and_attach_with_a_flooding_guest(world):
    d = int(world.control("create flood behaviour=chatty"))
    s = Stream(world.dir)
    try:
        s.wait(lambda doc: dom(doc, "flood") is not None, "the flooding guest")
        mark = s.mark()
        t0 = time.monotonic()
        r = subprocess.run([PY, "-m", "xcinspect", "--sim", world.dir, "attach", str(d), "--timeout", "3"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        took = time.monotonic() - t0
        assert r.returncode == 0 and took < 10, (took, r.stderr)
        assert r.stdout.count(b"chatty: flood") > 100  # it kept up with the guest
        assert s.max_gap(mark) < 2.0
    finally:
        err = s.stop()
    no_traceback(err + r.stderr)


def test_attach_when_the_domain_is_destroyed(world):
    d = int(world.control("create victim behaviour=normal tick=0.3"))
    p = subprocess.Popen([PY, "-m", "xcinspect", "--sim", world.dir, "attach", str(d)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2.0)
        world.control(f"destroy {d}")
        out, err = p.communicate(timeout=20)  # stdin stays open: only the console going away ends it
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "closed" in lines[0], err
    assert b"tick" in out
    no_traceback(err)


# -- 2. the TUI under pilot ---------------------------------------------------------------------------------
@pytest.fixture
def tui_for(tmp_path, monkeypatch):
    """tui_for(world)() -> the app over the real world (poller thread, actions)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.app import make_app

    made = []

    def over(world):
        def factory():
            plat = world.platform()
            mon = Monitor(plat, facts_interval=0.5)
            mon.open()
            acts = Actions(plat, platform_args=["--sim", world.dir])
            app = make_app(mon, actions=acts, interval=0.2)
            made.append((mon, acts))
            return app
        return factory

    yield over
    for mon, acts in made:
        acts.xs.close()
        mon.close()


@pytest.fixture
def tui(world, tui_for):
    return tui_for(world)


def status(app) -> str:
    from xcinspect.tui.status import StatusBar

    return str(app.main.query_one(StatusBar).render())


async def responsive(pilot, app) -> None:
    """Keys still work: pause shows at once, the help opens and closes. (No wall-time bound
    here: the stalled-xenstore test checks that this ends before the stall does.)"""
    from xcinspect.tui.modals import HelpScreen

    await pilot.press("space")
    await until(pilot, lambda: "PAUSED" in status(app), "pause", timeout=10)
    await pilot.press("space")
    await until(pilot, lambda: "PAUSED" not in status(app), "resume", timeout=10)
    await pilot.press("question_mark")
    await until(pilot, lambda: on_top(app, HelpScreen), "help", timeout=10)
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is app.main, "back from help", timeout=10)


async def test_tui_xenstored_killed_then_back(fresh_world, tui_for):
    world = fresh_world
    app = tui_for(world)()
    killer = XenstoredKiller(world)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: len(app.main.rows) >= 8, "8 rows")
            killer.kill()
            await until(pilot, lambda: "xenstore" in status(app), "the xenstore error in the status bar")
            assert len(app.main.rows) >= 8
            await responsive(pilot, app)
            killer.restart()
            await until(pilot, lambda: "xenstore" not in status(app) and len(app.main.rows) >= 8, "recovery")
    finally:
        killer.close()


async def test_tui_xenstored_stalled_mid_reply(world, tui):
    app = tui()
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: len(app.main.rows) >= 8, "8 rows")
        t_arm = time.monotonic()
        world.control("xenstored stall-mid 8")
        app.domain_command("show", world.domid("web01"))
        await pilot.press("c")  # the plan reads xenstore: that read (or the monitor's) gets half a reply
        await until(pilot, lambda: "xenstore" in status(app), "the xenstore error in the status bar", timeout=15)
        await responsive(pilot, app)
        assert time.monotonic() < t_arm + 8, "the keys were handled only after the stall"
        await until(pilot, lambda: "xenstore" not in status(app), "recovery", timeout=25)
        app.last_result = None
        await pilot.press("c")  # and actions work again
        await until(pilot, lambda: app.ops == 0 and app.last_result, "connect planned again", timeout=15)
        assert "already serviced" in app.last_result, app.last_result


async def test_tui_page_truncated_then_back(world, tui):
    app = tui()
    d = world.domid("web01")
    path = os.path.join(world.dir, "pages", f"dom{d}.page")
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: row(app, "web01") is not None and row(app, "web01").state != "error", "web01")
        with open(path, "rb") as f:
            saved = f.read()
        os.truncate(path, 100)
        await until(pilot, lambda: row(app, "web01").state == "error", "web01 in error")
        assert "truncated" in row(app, "web01").reason
        await responsive(pilot, app)
        with open(path, "r+b") as f:
            f.write(saved)
        await until(pilot, lambda: row(app, "web01").state != "error", "web01 back")


async def test_tui_attached_when_the_domain_is_destroyed(world, tui):
    from xcinspect.tui.attach_screen import AttachScreen
    from xcinspect.tui.screens import MainScreen

    d = int(world.control("create victim behaviour=normal tick=0.3"))
    app = tui()
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: row(app, "victim") is not None and row(app, "victim").action == "attach",
                    "victim serviced")
        app.domain_command("attach", d)
        await until(pilot, lambda: on_top(app, AttachScreen), "attached")
        screen = app.screen
        await until(pilot, lambda: "tick" in screen.console.text(), "output")
        world.control(f"destroy {d}")
        await until(pilot, lambda: screen.closed_reason is not None, "the console closed")
        assert "closed" in screen.closed_reason
        await pilot.press("ctrl+right_square_bracket")
        await until(pilot, lambda: on_top(app, MainScreen), "back to the table")
        await until(pilot, lambda: row(app, "victim") is None, "the row gone")
        await responsive(pilot, app)


async def test_tui_attached_to_a_flooding_guest(world, tui):
    from xcinspect.tui.attach_screen import AttachScreen
    from xcinspect.tui.screens import MainScreen

    d = int(world.control("create flood behaviour=chatty"))
    app = tui()
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: row(app, "flood") is not None and row(app, "flood").action == "attach",
                    "flood serviced")
        app.domain_command("attach", d)
        await until(pilot, lambda: on_top(app, AttachScreen), "attached")
        screen = app.screen
        await until(pilot, lambda: screen.bytes_in > 200_000, "a flood of output", timeout=30)
        # Scroll mode answers at once, flood or not: a key waits for at most a few chunks of
        # output, never for the flood. Counted in chunks the screen handled between the key
        # and the switch, not in seconds (a loaded CI machine made 3 s of it once).
        chunks = [0]
        at_switch: list[int] = []
        feed, set_live = screen.feed, screen.set_live

        def counting_feed(data: bytes) -> None:
            chunks[0] += 1
            feed(data)

        def noting_set_live(live: bool) -> None:
            at_switch.append(chunks[0])
            set_live(live)

        screen.feed, screen.set_live = counting_feed, noting_set_live
        await pilot.press("f2")
        await until(pilot, lambda: not screen.live, "scroll mode", timeout=20)
        pressed_i = chunks[0]
        await pilot.press("i")
        await until(pilot, lambda: screen.live, "live again", timeout=20)
        assert chunks[0] > 0  # the flood went on meanwhile
        assert at_switch[0] <= 8 and at_switch[1] - pressed_i <= 8, (at_switch, pressed_i, chunks[0])
        n = screen.bytes_in
        await pilot.pause(0.5)
        assert screen.bytes_in > n  # still reading
        assert "chatty: flood" in screen.console.text().splitlines()[-2]  # the newest output is shown
        await pilot.press("ctrl+right_square_bracket")
        await until(pilot, lambda: on_top(app, MainScreen), "detached")


# -- 3. the TUI on a pty: nothing but the app reaches the terminal ---------------------------------------
def test_tui_on_a_pty_through_xenstore_faults(fresh_world, tmp_path):
    world = fresh_world
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), TERM="xterm-256color")
    killer = XenstoredKiller(world)
    run = PtyRun([PY, "-m", "xcinspect", "--sim", world.dir, "--interval", "0.25"], cols=140, rows=40, env=env)
    try:
        run.wait_for(b"web01", timeout=60)
        def pump(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                run.pump(0.1)

        for fault, wait in (("drop", 1.0), ("stall 1.5", 2.5)):
            world.control(f"xenstored {fault}")
            if fault != "drop":
                run.send(b"c")  # an action that reads xenstore into the stall
            pump(wait)
            run.send(b"\x1b")
        killer.kill()
        pump(2.5)
        killer.restart()
        pump(2.0)
        run.send(b"q")
        assert run.finish(30) == 0
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        killer.close()
    no_traceback(bytes(run.data))
