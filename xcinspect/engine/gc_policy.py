"""The cyclic garbage collector, set for a process that holds thousands of consoles
(issue 15).

Measured in the TUI at 5,000 domains (a gc callback timing every collection): with
CPython's defaults the collector took ~140 ms of every second in steady state, 14 % of
a core, and ~0.65 s of the ~4 s to the first frame. The cause is scanning, not garbage:
each full collection walked ~240,000 live objects (Textual, the widgets, the monitor's
entries) every few seconds, 220-270 ms each, to find a few hundred objects in cycles;
and the frames' Rows, which live a second or two, kept triggering the younger
generations.

So: once the TUI has drawn its first full frame, ``gc.freeze()`` moves what start-up made
(it lives as long as the process) out of the collector's sight for good, and the
collector runs with a larger first threshold, so that a tick's short-lived objects mostly
die by reference count before it runs.

The collector is *not* paused while the process starts: that was tried, and in the Xen
lab's dom0 (Python 3.13 under QEMU TCG) the TUI's first paint took 39-68 s with the
pause against 27-32 s without it, measured alternately in one boot -- which broke the
lab's stalled-console TUI scenario on xen421.
"""

from __future__ import annotations

import gc

# First-generation threshold after start-up (CPython's default is 700): one tick at
# 5,000 domains makes a few thousand Rows and keys that the next tick frees again.
YOUNG_THRESHOLD = 20_000

_managed = False


def manage() -> None:
    """This process (the TUI) wants ``settle()`` to act when start-up is over."""
    global _managed
    _managed = True


def settle() -> None:
    """Start-up is over: freeze what exists and collect with a larger threshold. Does
    nothing unless ``manage()`` was called (an app under test leaves the test process's
    collector alone)."""
    global _managed
    if not _managed:
        return
    _managed = False
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
