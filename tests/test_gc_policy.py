"""The collector policy (xcinspect/engine/gc_policy.py), each case in a fresh interpreter: it
freezes and re-tunes the process-wide collector, which the test process must not get."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_paused_through_startup_then_frozen_and_collecting_again():
    got = run("""
        import gc
        from xcinspect.engine import gc_policy
        gc_policy.pause_for_startup()
        paused = not gc.isenabled()
        junk = [[i] for i in range(50_000)]  # start-up objects: no collection runs meanwhile
        collections = sum(s["collections"] for s in gc.get_stats())
        junk2 = [[i] for i in range(50_000)]
        still = sum(s["collections"] for s in gc.get_stats()) == collections
        gc_policy.settle()
        print(paused, still, gc.isenabled(), gc.get_freeze_count() >= 100_000,
              gc.get_threshold()[0] == gc_policy.YOUNG_THRESHOLD)
        # cycles made after start-up are still collected
        class Node: pass
        a, b = Node(), Node(); a.peer, b.peer = b, a
        import weakref; ref = weakref.ref(a); del a, b
        gc.collect()
        print(ref() is None)
    """)
    assert got.split() == ["True"] * 6


def test_settle_without_pause_leaves_the_collector_alone():
    """An app under test calls settle() after its first frame: the process's collector
    (pytest's) is not frozen or re-tuned."""
    got = run("""
        import gc
        from xcinspect.engine import gc_policy
        before = gc.get_threshold()
        gc_policy.settle()
        print(gc.isenabled(), gc.get_freeze_count() == 0, gc.get_threshold() == before)
    """)
    assert got.split() == ["True", "True", "True"]


def test_the_tui_and_once_use_it():
    """The TUI pauses collection until its first frame; a one-shot sample has none."""
    import inspect

    from xcinspect import cli
    from xcinspect.tui import app

    assert "gc_policy.pause_for_startup()" in inspect.getsource(cli.cmd_tui)
    assert "gc_policy.off_for_one_shot()" in inspect.getsource(cli.cmd_batch)
    assert "gc_policy.settle" in inspect.getsource(app.XcApp.on_frame_ready)
