"""Discovery: start-up time to a full table with N domains in the sim xenstore, and how it
grows with N, against a bare xenstore listing measured in the same run.

Goal (issue 7): <= 1 s to a full table with 1,000 domains.

"A full table" is what every front end waits for before it can show anything:
``Monitor.open()`` (environment check, xenstore connection, watches, the listing of
/local/domain, every domain's console keys, a watch per domain, every page mapped) plus
the first ``tick()`` (backend facts for every console, every page sampled and
classified). Measured on a fresh Monitor each round, in the same process, after the world
is ready (the TUI's figure that includes Textual is bench/tui.py's "first full frame").

Baseline, in the same rounds: a bare ``XsClient`` connection, ``DIRECTORY
/local/domain`` and one read per domain (``/local/domain/N/name``, pipelined as
``read_many`` does) -- the least any xenstore-driven tool must do to know N domains.

Every size is a whole sim world. From about 1,040 domains the listing of /local/domain no
longer fits one xenstore reply (4096 bytes: E2BIG, as on a real xenstored) and both the
baseline and discovery list it with DIRECTORY_PART, as libxenstore does (until issue 7's
own xenstore client, pyxs could not, and nothing past ~1,040 domains was discovered).

Usage: python bench/discovery.py [--sizes 100,300,1000,2000,5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import common  # noqa: F401  (sys.path)
from common import machine, verdict, world

from xcinspect.engine.monitor import Monitor
from xcinspect.platform.xenstore import XsClient
from xcinspect.sim.platform import SimPlatform


def full_table(directory: str) -> tuple[float, float, int]:
    """(seconds to open, seconds for the first tick, entries) on a fresh Monitor."""
    mon = Monitor(SimPlatform(directory))
    try:
        t0 = time.perf_counter()
        mon.open()
        t1 = time.perf_counter()
        mon.tick()
        t2 = time.perf_counter()
        n = sum(1 for e in mon.views() if e.idx is not None)
    finally:
        mon.close()
    return t1 - t0, t2 - t1, n


def bare_listing(sock: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    xs = XsClient(sock)
    try:
        ids = [e for e in xs.list("/local/domain") if e.isdigit() and e != "0"]
        names = xs.read_many([f"/local/domain/{d}/name" for d in ids])
    finally:
        xs.close()
    return time.perf_counter() - t0, sum(1 for n in names if n)


def measure(n: int, rounds: int) -> dict:
    with world(domains=n) as w:
        sock = w.xenstore_path
        bare, opens, ticks, totals = [], [], [], []
        seen = shown = 0
        full_table(w.dir)  # warm-up: imports, page cache
        for _ in range(rounds):
            b, seen = bare_listing(sock)
            o, t, shown = full_table(w.dir)
            bare.append(b)
            opens.append(o)
            ticks.append(t)
            totals.append(o + t)
    med = statistics.median
    return {"n": n, "seen": seen, "shown": shown, "bare": med(bare), "open": med(opens), "tick": med(ticks),
            "total": med(totals), "best": min(totals)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,300,1000,2000,5000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    print(f"Discovery: Monitor.open() + first tick vs a bare listing + one read per domain; {machine()}")
    print(f"  {'domains':>7} {'bare list+reads':>15} {'open':>8} {'1st tick':>8} {'full table':>10} {'ratio':>6}  per domain")
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        r = measure(n, a.rounds)
        rows.append(r)
        print(f"  {r['n']:>7} {r['bare'] * 1e3:12.1f} ms {r['open'] * 1e3:5.0f} ms {r['tick'] * 1e3:5.0f} ms "
              f"{r['total'] * 1e3:7.0f} ms {r['total'] / r['bare']:5.1f}x  {r['total'] / r['n'] * 1e6:6.0f} µs"
              + ("" if r["shown"] == r["n"] == r["seen"] else f"  (table {r['shown']}/{r['n']}, listing {r['seen']})"),
              flush=True)
    k = [r for r in rows if r["n"] == 1000]
    if k:
        t = k[0]["total"]
        print(f"  1,000 domains: full table in {t:.2f} s (median of {a.rounds}; goal <= 1 s) {verdict(t <= 1.0)}")
    if len(rows) > 1:
        a0, b0 = rows[0], rows[-1]
        print(f"  growth: {b0['n'] / a0['n']:.0f}x domains -> {b0['total'] / a0['total']:.1f}x time "
              f"(bare listing {b0['bare'] / a0['bare']:.1f}x)")
    if a.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
