"""The collector policy (xcinspect/engine/gc_policy.py), each case in a fresh interpreter:
it freezes and re-tunes the process-wide collector, which the test process must not get."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_managed_process_is_frozen_after_startup_and_still_collects():
    got = run("""
        import gc
        from xcinspect.engine import gc_policy
        gc_policy.manage()
        print(gc.isenabled())  # not paused while starting (slower in the lab's dom0)
        startup = [[i] for i in range(50_000)]
        gc_policy.settle()
        print(gc.isenabled(), gc.get_freeze_count() >= 50_000,
              gc.get_threshold()[0] == gc_policy.YOUNG_THRESHOLD)
        # cycles made after start-up are still collected
        class Node: pass
        a, b = Node(), Node(); a.peer, b.peer = b, a
        import weakref; ref = weakref.ref(a); del a, b
        gc.collect()
        print(ref() is None)
    """)
    assert got.split() == ["True"] * 5


def test_settle_without_manage_leaves_the_collector_alone():
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


def test_the_tui_uses_it():
    """The TUI asks for it before it starts; the app settles it after its first frame."""
    import inspect

    from xcinspect import cli
    from xcinspect.tui import app

    assert "gc_policy.manage()" in inspect.getsource(cli.cmd_tui)
    assert "gc_policy.settle" in inspect.getsource(app.XcApp.on_frame_ready)
