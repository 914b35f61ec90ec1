"""Shared helpers for the benchmarks: a sim world, timing, ratios."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def world(domains: int | None = None, scenario: str | None = None, timeline: bool = False):
    from xcinspect.sim.world import start_world

    tmp = tempfile.mkdtemp(prefix="xcinspect-bench-")
    kw = {"timeline": timeline}
    if domains:
        kw.update(domains=domains, scenario=scenario or "scale")
    else:
        kw.update(scenario=scenario or "demo")
    w = start_world(tmp, **kw)
    try:
        yield w
    finally:
        w.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def best_of(fn, repeat: int = 7, number: int = 20) -> float:
    """Best per-call time in seconds (min over repeats of the mean over `number` calls)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def median(xs):
    return statistics.median(xs)


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} µs"
