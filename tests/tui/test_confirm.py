"""The confirm flow with real Actions: force-disconnect an `xl console`-style client.

A child process holds the console lock (as `xl console` / xenconsole does); `d` plans,
the dialog says exactly what will happen, `n` changes nothing, `y` ends that client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import Clock, ready
from pilot_wait import on_top
from static_world import Dom, StaticWorld

from xcinspect.tui.modals import ConfirmModal
from xcinspect.tui.screens import MainScreen

HOLDER = """
import sys, time
from xcinspect.engine.sessions import ConsoleLock
lock = ConsoleLock(sys.argv[1]); lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def world(tmp_path):
    w = StaticWorld(str(tmp_path / "w"), [Dom(1, "web", 0, 0), Dom(2, "db", 0, 0)]).start()
    yield w
    w.stop()


@pytest.fixture
def holder(world):
    path = world.platform().lock_path(2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    p = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()
    p.stdout.close()


def make(world, **kw):
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.app import make_app

    plat = world.platform()
    mon = Monitor(plat, clock=Clock(), facts_interval=0.0)
    mon.open()
    acts = Actions(plat, read_only=kw.get("read_only", False))
    kw.setdefault("sort", "domid")
    app = make_app(mon, actions=acts, poll=False, **kw)
    app.clock = mon.clock
    mon.actions = acts
    return app, mon


async def wait_for(pilot, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        if pred():
            return True
    return False


async def test_force_disconnect_confirm_no_then_yes(world, holder):
    app, mon = make(world)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            await pilot.press("down")
            row = app.main.table.selected_row()
            assert row.domid == 2 and str(holder.pid) in row.attached
            await pilot.press("d")
            assert await wait_for(pilot, lambda: on_top(app, ConfirmModal))
            modal = app.screen
            body = str(modal.query_one("#confirm-body").render())
            assert f"Send SIGTERM to pid {holder.pid}" in body and "db (dom 2)" in body
            assert app.screen.focused.id == "no"  # destructive: starts on No
            await pilot.press("n")
            assert isinstance(app.screen, MainScreen)
            time.sleep(0.2)
            assert holder.poll() is None  # nothing happened
            await pilot.press("d")
            assert await wait_for(pilot, lambda: on_top(app, ConfirmModal))
            await pilot.press("y")
            assert await wait_for(pilot, lambda: app.ops == 0 and holder.poll() is not None)
            assert "ended the console session" in (app.last_result or "")
            app.sample_now()
            await pilot.pause()
            assert app.main.table.selected_row().attached == ""
    finally:
        mon.actions.xs.close()
        mon.close()


async def test_plan_refused_is_a_warning_not_a_dialog(world):
    app, mon = make(world)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            await pilot.press("d")  # dom 1: nobody attached, no backend of ours
            assert await wait_for(pilot, lambda: app.ops == 0 and app.last_result)
            assert isinstance(app.screen, MainScreen)
            assert "nothing to disconnect" in app.last_result
    finally:
        mon.actions.xs.close()
        mon.close()


async def test_attach_to_a_held_console_offers_force(world, holder):
    app, mon = make(world)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            await pilot.press("down", "a")
            assert await wait_for(pilot, lambda: on_top(app, ConfirmModal))
            body = str(app.screen.query_one("#confirm-body").render())
            assert "attached by" in body and "SIGTERM" in body
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen) and holder.poll() is None
    finally:
        mon.actions.xs.close()
        mon.close()
