"""Waiting helpers for Textual pilot tests over a live (sim) world.

Shared by tests/test_faults.py and tests/tui/test_sim.py (tests/ is on sys.path through
tests/conftest.py). Real processes move the world, so tests poll for a condition with a
deadline instead of sleeping for a fixed time.
"""

from __future__ import annotations

import time


async def until(pilot, pred, what: str = "condition", timeout: float = 20.0) -> None:
    """Let the app run until ``pred()`` holds; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def row(app, name):
    """The main screen's row for the domain called ``name``, or None."""
    return next((r for r in app.main.rows if r.name == name), None)



def on_top(app, screen_type) -> bool:
    """True once a screen of ``screen_type`` is on top *and* composed and mounted.

    ``app.screen`` changes when a screen is pushed, before its children are mounted; a test
    that queries the new screen on the next poll races its compose under load (seen in CI:
    NoMatches for the attach screen's ConsoleView), so wait for ``is_mounted`` as well.
    """
    screen = app.screen
    return isinstance(screen, screen_type) and screen.is_mounted
