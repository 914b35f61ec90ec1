"""SVG snapshots of the main screen, the detail panel on a stalled console, the attach
screen and the help screen, at 80x24 and 120x40.

Deterministic: the frozen world (nothing moves), a fixed monitor clock, no poller
thread, no toasts, no cursor blink, a scrubbed environment (conftest.py). Update with
``pytest tests/tui --snapshot-update`` and look at the SVGs before committing them.
"""

from __future__ import annotations

import time

import pytest
from conftest import ready
from fakes import FakeSession
from static_world import BOOT_LOG

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


async def settle(pilot, samples: int = 4):
    await ready(pilot, samples=samples)


@pytest.mark.parametrize("size", SIZES)
async def test_main_screen(frozen_app, svg_snapshot, size):
    app = frozen_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert app.export_screenshot() == svg_snapshot


@pytest.mark.parametrize("size", SIZES)
async def test_detail_stalled_console(frozen_app, svg_snapshot, size):
    app = frozen_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")  # dom 3: full ring, no backend
        app.sample_now()
        await pilot.pause()
        assert app.main.table.selected == 3
        assert app.export_screenshot() == svg_snapshot


@pytest.mark.parametrize("size", SIZES)
async def test_help_screen(frozen_app, svg_snapshot, size):
    app = frozen_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot, 1)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.export_screenshot() == svg_snapshot


@pytest.mark.parametrize("size", SIZES)
async def test_attach_screen(frozen_app, svg_snapshot, size):
    from xcinspect.tui.attach_screen import AttachScreen

    app = frozen_app()
    session = FakeSession(via="/dev/pts/1")
    async with app.run_test(size=size) as pilot:
        await settle(pilot, 1)
        row = app.main.table.row_for(1)
        app.push_screen(AttachScreen(row, session, scrollback=1000, escape_display="^]"))
        await pilot.pause()
        session.guest.sendall(BOOT_LOG + b"web-01 login: ")
        screen = app.screen
        deadline = time.monotonic() + 5
        while "login:" not in screen.console.partial and time.monotonic() < deadline:
            await pilot.pause(0.02)
        assert screen.console.partial == "web-01 login: "
        assert app.export_screenshot() == svg_snapshot
        screen.io.stop()
    session.guest.close()
