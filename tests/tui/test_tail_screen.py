"""The read-only tail screen (``t``, palette "Tail dom N"): snapshots on the frozen world,
pilot tests against a running sim world (in order, nothing consumed, gaps marked, under
--read-only), the disconnect dialog's stall warning, and the installed command in tmux."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from conftest import ready
from pilot_wait import on_top, row, until

from xcinspect.core.ring import IDX, IDX_OFFSET, MASK32, OUT_SIZE, RingIO
from xcinspect.core.sanitize import sanitize
from xcinspect.engine.tail import HEADER
from xcinspect.tui.modals import ConfirmModal
from xcinspect.tui.screens import MainScreen
from xcinspect.tui.tail_screen import TailScreen

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


async def wait_bytes(pilot, screen: TailScreen, n: int = 1, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while screen.bytes_in < n and time.monotonic() < deadline:
        await pilot.pause(0.05)
    assert screen.bytes_in >= n, "the tail showed nothing"


# -- the frozen world ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_tail_screen_snapshot(frozen_app, svg_snapshot, size):
    """dom 3: a full ring nobody drains (the frozen boot log with its hostile bytes)."""
    app = frozen_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot, 1)
        app.push_screen(TailScreen(app.main.table.row_for(3), app.monitor.platform))
        await pilot.pause()
        screen = app.screen
        await wait_bytes(pilot, screen, OUT_SIZE)
        await pilot.pause(0.3)
        assert screen.bytes_in == OUT_SIZE and screen.gaps == 0
        assert app.export_screenshot() == svg_snapshot


async def test_t_opens_the_tail_under_read_only_and_escape_goes_back(frozen_app):
    app = frozen_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, 1)
        app.domain_command("show", 3)
        await pilot.pause()
        await pilot.press("t")
        await until(pilot, lambda: on_top(app, TailScreen), what="tail screen")
        screen = app.screen
        await wait_bytes(pilot, screen)
        assert HEADER in str(screen.query_one("#tail-status").render())
        text = screen.console.text()
        assert "\x1b" not in text and "\x07" not in text and "^[]0;owned-title^G" in text
        await pilot.press("escape")
        await until(pilot, lambda: on_top(app, MainScreen), what="back to the table")
        # the palette has it per domain, read-only or not
        from xcinspect.tui.commands import PER_DOMAIN

        assert any(verb == "Tail" and not writes for _, verb, _, writes in PER_DOMAIN)


# -- a running world ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from xcinspect.sim.handle import start_world

    w = start_world(str(tmp_path_factory.mktemp("tail-tui-world")), scenario="demo", timeline=False)
    yield w
    w.stop()



def booted(world, d: int) -> None:
    deadline = time.monotonic() + 20
    while d not in json.loads(world.control("status"))["booted"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def out_indices(world, d: int) -> tuple[int, int]:
    with world.platform().map_page(d, None) as m:
        _, _, cons, prod = IDX.unpack_from(m.buf, IDX_OFFSET)
    return cons, prod


async def test_tail_follows_a_serviced_guest_in_order_read_only(sim_app, world):
    import re

    d = int(world.control("create tuicounter consoled=1 tick=0.05"))
    booted(world, d)
    app = sim_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "tuicounter") is not None, what="the new guest")
        app.domain_command("show", d)
        await pilot.pause()
        await pilot.press("t")
        await until(pilot, lambda: on_top(app, TailScreen), what="tail screen")
        screen = app.screen
        await until(pilot, lambda: len(re.findall(r"tick (\d+):", screen.console.text())) >= 30, timeout=20,
                    what="30 tick lines")
        ticks = [int(n) for n in re.findall(r"tick (\d+):", screen.console.text())]
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks))) and screen.gaps == 0
        await pilot.press("q")
        await until(pilot, lambda: on_top(app, MainScreen), what="back")
    world.control(f"guest {d} set behaviour quiet")
    with open(f"{world.dir}/logs/guest-tuicounter.log", "rb") as f:
        logged = [int(n) for n in re.findall(rb"tick (\d+):", f.read())]
    assert logged[: ticks[-1]] == list(range(1, ticks[-1] + 1))  # xenconsoled still got every line


async def test_tail_of_an_unserviced_ring_moves_nothing(sim_app, world):
    d = world.domid("stuck-boot")
    before = out_indices(world, d)
    assert (before[1] - before[0]) & MASK32 == OUT_SIZE
    with world.platform().map_page(d, None) as m:
        ring_now = RingIO(m.buf).peek_out()[0]
    app = sim_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: row(app, "stuck-boot") is not None)
        app.push_screen(TailScreen(row(app, "stuck-boot"), app.monitor.platform, interval=0.05))
        await pilot.pause()
        await wait_bytes(pilot, app.screen, OUT_SIZE)
        await pilot.pause(1.0)
        assert app.screen.console.text() == sanitize(ring_now).rstrip("\n") or \
            app.screen.console.text() + "\n" == sanitize(ring_now)
    assert out_indices(world, d) == before
    assert world.platform().port_bound(d, world.domains[d]["port"]) is False


async def test_tail_marks_the_gaps_of_a_fast_guest(sim_app, world):
    d = int(world.control("create tuiflood consoled=1 behaviour=chatty"))
    booted(world, d)
    app = sim_app(read_only=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: row(app, "tuiflood") is not None)
            app.push_screen(TailScreen(row(app, "tuiflood"), app.monitor.platform, interval=0.6))
            await pilot.pause()
            screen = app.screen
            await until(pilot, lambda: screen.gaps >= 2, timeout=20, what="two gaps")
            assert "xcinspect: missed" in screen.console.text()
            status = str(screen.query_one("#tail-status").render())
            assert f"missed {screen.missed} bytes in {screen.gaps} gaps" in status
    finally:
        world.control(f"guest {d} set behaviour quiet")


async def test_disconnect_dialog_warns_the_guest_will_stall_again(sim_app, world):
    from xcinspect.engine.actions import Actions

    acts = Actions(world.platform(), platform_args=["--sim", world.dir])
    d = world.domid("stuck-boot")
    try:
        assert acts.connect(d).ok
        app = sim_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: row(app, "stuck-boot") is not None
                        and "xcinspect" in row(app, "stuck-boot").backend, timeout=20, what="our backend")
            app.domain_command("show", d)
            await pilot.pause()
            await pilot.press("d")
            await until(pilot, lambda: on_top(app, ConfirmModal), what="confirm dialog")
            body = str(app.screen.query_one("#confirm-body").render())
            assert "Stop xcinspect's backend" in body
            assert "STALL AGAIN once its 2 KiB out ring fills" in body
            assert "did not bind this console" in body
            await pilot.press("n")
            await until(pilot, lambda: on_top(app, MainScreen), what="dialog closed")
    finally:
        acts.disconnect(d)
        acts.xs.close()


# -- the installed command in tmux -------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("tmux") is None or shutil.which("xcinspect") is None,
                    reason="needs tmux and the xcinspect console script")
def test_installed_xcinspect_tail_in_tmux(tmp_path):
    from test_tmux import Tmux

    term = Tmux(tmp_path)
    try:
        term.start("xcinspect --sim --read-only")
        term.wait_text("web01", "READ-ONLY", timeout=60)
        term.keys("/")  # web01 (problems sort first; it is serviced and ticks)
        term.wait_text("filter: name, domid or verdict")
        term.keys("w", "e", "b", "0", "1", "Enter")
        term.wait_text("dom 1 web01", "read-only: actions are disabled")
        for _ in range(3):  # a key typed while the first frames are drawn can be lost
            term.keys("t")
            try:
                screen = term.wait_text("tail (read-only)", timeout=5)
                break
            except AssertionError:
                continue
        screen = term.wait_text("tail (read-only)", "systemd", timeout=20)
        assert "dom 1 web01" in screen
        term.wait_text("tick", timeout=20)  # web01 ticks every 2 s: it follows
        term.keys("Escape")
        term.wait(lambda s: "tail (read-only)" not in s and "verdict" in s and "web01" in s, what="back to the table")
        term.keys("q")
        term.wait_text("XCI-EXIT=0", timeout=20)
    finally:
        term.kill()
