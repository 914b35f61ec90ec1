"""The cyclic garbage collector, set for a process that holds thousands of consoles
(issue 15).

Measured in the TUI at 5,000 domains (a gc callback timing every collection): with
CPython's defaults the collector took ~140 ms of every second in steady state, 14 % of
a core, and ~0.65 s of the ~4 s to the first frame. The cause is scanning, not garbage:
each full collection walked ~240,000 live objects (Textual, the widgets, the monitor's
entries) every few seconds, 220-270 ms each, to find a few hundred objects in cycles;
and the frames' Rows, which live a second or two, kept triggering the younger
generations.

So: no collection while the process starts (the objects made then live as long as it
does), then ``gc.freeze()`` moves them out of the collector's sight for good, and the
collector runs again with a larger first threshold, so that a tick's short-lived
objects mostly die by reference count before it runs. A one-shot command
(``--once``) keeps it off: it exits in a second or two.
"""

from __future__ import annotations

import gc

# First-generation threshold after start-up (CPython's default is 700): one tick at
# 5,000 domains makes a few thousand Rows and keys that the next tick frees again.
YOUNG_THRESHOLD = 20_000

_paused = False


def pause_for_startup() -> None:
    """No cyclic collection until ``settle()`` (what start-up allocates stays)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def settle() -> None:
    """Start-up is over: freeze what exists, and collect again with a larger threshold.
    Does nothing unless ``pause_for_startup`` paused the collector (an app under test
    leaves the test process's collector alone)."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    gc.enable()


def off_for_one_shot() -> None:
    """A command that samples once and exits: no cyclic collection at all."""
    gc.disable()
