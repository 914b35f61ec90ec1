"""Shared helpers for the benchmarks: a sim world, timing, ratios."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


PTY_MAX = "/proc/sys/kernel/pty/max"


@contextlib.contextmanager
def enough_ptys(n: int):
    """Every sim console gets a pty from xenconsoled, and the kernel hands out at most
    kernel.pty.max (4096 by default; a real dom0 with that many consoles needs the same
    change). Raised for the run when needed and possible (root), then put back."""
    try:
        with open(PTY_MAX) as f:
            old = int(f.read())
    except (OSError, ValueError):
        yield
        return
    want = n + 512
    if old >= want:
        yield
        return
    try:
        with open(PTY_MAX, "w") as f:
            f.write(str(want))
        print(f"(kernel.pty.max {old} -> {want} for this run: one pty per sim console)", flush=True)
    except OSError:
        print(f"(kernel.pty.max is {old}: past it the sim xenconsoled gives consoles no tty)", flush=True)
        yield
        return
    try:
        yield
    finally:
        with open(PTY_MAX, "w") as f:
            f.write(str(old))


@contextlib.contextmanager
def world(domains: int | None = None, scenario: str | None = None, timeline: bool = False):
    with enough_ptys(domains or 0):
        with _world(domains, scenario, timeline) as w:
            yield w


@contextlib.contextmanager
def _world(domains, scenario, timeline):
    from xcinspect.sim.handle import start_world

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


@contextlib.contextmanager
def custom_world(domains: dict[int, dict], external=(), timeout: float = 120.0):
    """A sim world with exactly these domains (``bench/benchworld.py``); ``external``
    domains have no sim guest process: the benchmark plays their guest."""
    from xcinspect.sim.common import Paths
    from xcinspect.sim.handle import launch_controller

    tmp = tempfile.mkdtemp(prefix="xcinspect-bench-")
    paths = Paths(tmp)
    paths.makedirs()
    spec = os.path.join(paths.run, "bench-spec.json")
    with open(spec, "w") as f:
        json.dump({"domains": {str(d): c for d, c in domains.items()}, "external": sorted(external)}, f)
    try:
        w = launch_controller(paths, [os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchworld.py"),
                                      "--world", paths.dir, "--spec", spec], timeout)
        try:
            yield w
        finally:
            w.stop()
    finally:
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


def percentile(xs, p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def machine() -> str:
    """One line about the box and its load right now (figures only compare within a run)."""
    try:
        load = os.getloadavg()
        la = f"load {load[0]:.2f}"
    except OSError:
        la = "load ?"
    return f"{os.cpu_count()} CPUs, {la}, Python {sys.version.split()[0]}"
