"""Pilot tests against a real sim world (xenstored, xenconsoled, guests as processes):
the poller thread, attach round trip, connect/disconnect through the confirm dialog,
notifications. The world runs without its timeline; tests drive it through its control
socket.
"""

from __future__ import annotations

import json
import os

import pytest
from pilot_wait import on_top, row, until
from textual.widgets import Input

from xcinspect.tui.attach_screen import AttachScreen
from xcinspect.tui.modals import ConfirmModal, PromptModal
from xcinspect.tui.screens import MainScreen


@pytest.fixture
def world(tmp_path):
    from xcinspect.sim.handle import start_world

    w = start_world(str(tmp_path / "world"), scenario="demo", timeline=False)
    yield w
    w.stop()



async def select(pilot, app, name):
    r = row(app, name)
    app.domain_command("show", r.domid)
    await pilot.pause()
    assert app.main.table.selected == r.domid


def notes(app):
    return [n.message for n in app._notifications]


async def test_poller_thread_fills_the_table_and_pauses(sim_app):
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(app.main.rows) == 8, what="8 domains")
        names = {r.name for r in app.main.rows}
        assert {"web01", "stuck-boot", "chatty", "corrupt"} <= names
        await until(pilot, lambda: row(app, "stuck-boot").state == "stalled", what="stuck-boot stalled")
        await pilot.press("space")
        n = app.poller.ticks
        await pilot.pause(0.8)
        assert app.poller.ticks <= n + 1  # at most the tick that was under way
        await pilot.press("r")  # one sample while paused
        await until(pilot, lambda: app.poller.ticks >= n + 1)
        await pilot.press("space")
        await until(pilot, lambda: app.poller.ticks >= n + 3, what="ticks after resume")


async def test_attach_round_trip(sim_app, tmp_path):
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "web01") is not None and row(app, "web01").state == "serviced")
        await select(pilot, app, "web01")
        await pilot.press("a")
        await until(pilot, lambda: on_top(app, AttachScreen), what="attach screen")
        screen = app.screen
        await until(pilot, lambda: "login" in screen.console.text(), what="console output")
        await until(pilot, lambda: "this TUI" in (row(app, "web01").attached or ""), what="lock held by us")
        await pilot.press(*"uname -a", "enter")
        await until(pilot, lambda: "Linux web01" in screen.console.text(), what="uname output")
        # keys a terminal sends reach the guest, not the app
        await pilot.press("ctrl+c", "question_mark", "q")
        assert isinstance(app.screen, AttachScreen)
        # scroll mode: search, copy, save
        await pilot.press("f2")
        assert not screen.live
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        # (the guest's output, not the echo of what was typed: the echo comes a key at a
        # time, and a tick line can land in the middle of it)
        await pilot.press(*"Linux web01", "enter")
        assert app.focused is screen.console  # at once: keys typed after enter are commands
        first = screen.console.current_match()
        assert first is not None and "linux web01" in screen.console.line_at(first).lower()
        await pilot.press("N")  # previous match (older), wrapping round
        assert screen.console.current_match() is not None
        await pilot.press("n")  # and back
        assert screen.console.current_match() == first
        await pilot.press("y")
        assert "Linux web01" in app.clipboard
        await pilot.press("s")
        await until(pilot, lambda: on_top(app, PromptModal))
        path = str(tmp_path / "saved.log")
        app.screen.query_one(Input).value = path
        await pilot.press("enter")
        await until(pilot, lambda: os.path.exists(path), what="saved file")
        with open(path) as f:
            assert "Linux web01" in f.read()
        await pilot.press("i")
        assert screen.live
        await pilot.press("ctrl+right_square_bracket")
        await until(pilot, lambda: on_top(app, MainScreen), what="back to the table")
        await until(pilot, lambda: row(app, "web01").attached == "", what="lock released")


async def test_attach_stuck_console_offers_to_connect_first(sim_app):
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "stuck-boot") is not None and row(app, "stuck-boot").action == "connect")
        await select(pilot, app, "stuck-boot")
        await pilot.press("a")
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "Nobody services this console" in body and "Then this TUI attaches" in body
        await pilot.press("n")  # no: nothing happens
        await until(pilot, lambda: on_top(app, MainScreen) and app.ops == 0)
        assert "xcinspect" not in row(app, "stuck-boot").backend
        await pilot.press("a")
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
        await pilot.press("y")
        await until(pilot, lambda: on_top(app, AttachScreen), timeout=30, what="attach screen")
        await until(pilot, lambda: "xcinspect" in row(app, "stuck-boot").backend, timeout=20, what="our backend")
        await pilot.press("ctrl+right_square_bracket")
        await until(pilot, lambda: on_top(app, MainScreen), what="back to the table")
        await pilot.press("d")  # and stop the backend again
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
        await pilot.press("y")
        await until(pilot, lambda: "xcinspect" not in row(app, "stuck-boot").backend, timeout=20,
                    what="backend stopped")


async def test_connect_then_disconnect_through_confirm(sim_app):
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "stuck-boot") is not None and row(app, "stuck-boot").state == "stalled",
                    what="stuck-boot stalled")
        await select(pilot, app, "stuck-boot")
        assert "press c to connect" in str(app.main.query_one("#verdict").render())
        await pilot.press("c")
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "xcinspect" in body  # says what will happen
        await pilot.press("y")
        await until(pilot, lambda: row(app, "stuck-boot").state in ("serviced", "idle", "backlog"), timeout=20,
                    what="stuck-boot serviced")
        assert "xcinspect" in row(app, "stuck-boot").backend
        await until(pilot, lambda: any("recovered" in m for m in notes(app)), what="recovered notification")
        # and release it again: d stops xcinspect's backend (confirm first)
        await pilot.press("d")
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "Stop xcinspect's backend" in body
        await pilot.press("y")
        await until(pilot, lambda: "xcinspect" not in row(app, "stuck-boot").backend, timeout=20,
                    what="backend stopped")


async def test_notifications_appear_die_stall(sim_app, world):
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(app.main.rows) == 8)
        await pilot.pause(0.5)
        d = int(world.control("create newcomer consoled=0 tick=0.2"))
        await until(pilot, lambda: any(f"dom {d} (newcomer) appeared" in m for m in notes(app)),
                    what="appeared notification")
        await until(pilot, lambda: any(f"console of dom {d} (newcomer) stalled" in m for m in notes(app)),
                    timeout=30, what="stalled notification")
        world.control(f"destroy {d}")
        await until(pilot, lambda: any(f"dom {d} (newcomer) is gone" in m for m in notes(app)),
                    what="gone notification")
        assert row(app, "newcomer") is None


async def test_read_only_refuses_in_the_actions_too(sim_app):
    app = sim_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "stuck-boot") is not None)
        await select(pilot, app, "stuck-boot")
        await pilot.press("c", "a", "d")
        await pilot.pause(0.3)
        assert isinstance(app.screen, MainScreen) and app.ops == 0
        with pytest.raises(Exception, match="read-only"):
            app.actions.connect(row(app, "stuck-boot").domid)


async def test_set_flag_disconnected_through_confirm(sim_app):
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "db01") is not None and row(app, "db01").flag == "connected")
        await select(pilot, app, "db01")
        await pilot.press("D")
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "xen-4.21 connection flag" in body and "DROP their console output" in body
        await pilot.press("y")
        await until(pilot, lambda: row(app, "db01").flag == "disconnected", what="flag disconnected")
        await until(pilot, lambda: row(app, "db01").state == "disconnected", what="verdict disconnected")
        # the way back: U, its own confirm, and the flag and verdict recover
        assert row(app, "db01").flag_effect == "drops-output"
        await pilot.press("U")
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog (connected)")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "Write 'connected' into the xen-4.21 connection flag" in body
        await pilot.press("y")
        await until(pilot, lambda: row(app, "db01").flag == "connected", what="flag connected again")
        await until(pilot, lambda: row(app, "db01").state in ("serviced", "idle", "backlog"),
                    what="verdict serviced again")
        audit = [json.loads(x) for x in open(app.actions.platform.audit_log_path())]
        ok = [(a["state"]) for a in audit if a["action"] == "flag" and a["result"] == "ok"]
        assert ok[-2:] == ["disconnected", "connected"]


async def test_connect_dialog_says_it_sets_a_disconnected_flag(sim_app):
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "hyperlaunch") is not None
                    and row(app, "hyperlaunch").flag == "disconnected")
        await select(pilot, app, "hyperlaunch")
        await pilot.press("c")
        await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
        body = str(app.screen.query_one("#confirm-body").render())
        assert "xcinspect will set it to connected" in body
        await pilot.press("n")


async def test_select_at_start_shows_that_domain(sim_app, world):
    """--select DOMID (what the fleet view's Enter runs on the host): that domain is
    selected and its detail shown once it is in a frame."""
    d = world.domid("hyperlaunch")
    app = sim_app(select=d)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main is not None and app.main.table.selected == d,
                    what="the selected domain")
        await until(pilot, lambda: f"dom {d}" in str(app.main.query_one("#detail").border_title),
                    what="its detail")
