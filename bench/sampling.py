"""Sampling cost: Monitor.tick() (sample + classify every console) against a bare
struct.unpack_from loop over the same mmaps, measured in the same run.

Goal (issues 2 and 7): <= 2x the bare loop at every size, cost linear in the count.

Two figures per size:

* back-to-back (the goal's figure, as in issue 2): best of interleaved rounds of many
  ticks in a row vs as many bare loops; between two ticks almost nothing moves, so this
  is the fixed cost of looking at every console (read, compare, skip);
* paced at 2 Hz (the TUI's rate; ``--paced N`` ticks, 0 to skip): one tick every 0.5 s in
  the live world, and a bare loop half-way between two ticks; each runs after 0.25 s of
  idling, so both find cold caches, as in the TUI. The consoles that moved in that half
  second are classified too, so this is the real per-tick cost, informational (no goal):
  median ratio, median tick time, median count of consoles that moved.

Pages are read as a dom0 reads them: live shared memory (``SimPlatform(mmap_reads=True)``,
read-only mmaps of the page files). By default the sim platform instead keeps private
copies refreshed with one ``preadv`` per console per tick (its guard against a page file
truncated under it: SIGBUS); one extra line shows that cost at 1,000 (``--copies N``).

Every size is a whole sim world (domains found through xenstore; from ~1,040 domains the
listing takes DIRECTORY_PART). 5,000 sim consoles need 5,000 ptys: see
``common.enough_ptys``.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from common import fmt_us, machine, verdict, world

from xcinspect.engine.monitor import Monitor
from xcinspect.sim.platform import SimPlatform

IDX = struct.Struct("<4I")


def timed(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def measure(n: int, rounds: int, paced: int, mmap_reads: bool = True) -> dict:
    with world(domains=n) as w:
        mon = Monitor(SimPlatform(w.dir, mmap_reads=mmap_reads), facts_interval=1e9)
        mon.open()
        try:
            mon.refresh_facts()
            mon.tick()
            bufs = [e.mapping.buf for e in mon.views() if e.mapping is not None]
            unpack = IDX.unpack_from

            def bare():
                for b in bufs:
                    unpack(b, 3072)

            tick = mon.tick
            number = max(3, 20000 // max(n, 1))
            t_bare, t_tick = [], []
            for _ in range(rounds):  # interleaved, so a load spike hits both
                t_bare.append(timed(bare, number))
                t_tick.append(timed(tick, number))
            r = {"n": len(bufs), "bare": min(t_bare), "tick": min(t_tick)}
            r["ratio"] = r["tick"] / r["bare"]
            ratios, moved, ticks = [], [], []
            for _ in range(paced):  # each timed after a quarter second of idling: both cold
                time.sleep(0.25)
                b = timed(bare, 1)
                time.sleep(0.25)
                t0 = time.perf_counter()
                res = tick()
                t = time.perf_counter() - t0
                ratios.append(t / b)
                ticks.append(t)
                moved.append(res.moved)
            if paced:
                r["paced_ratio"] = statistics.median(ratios)
                r["paced_tick"] = statistics.median(ticks)
                r["paced_moved"] = statistics.median(moved)
            return r
        finally:
            mon.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,100,1000,5000")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds (best kept)")
    ap.add_argument("--paced", type=int, default=8, help="ticks at 2 Hz per size (0: skip)")
    ap.add_argument("--copies", type=int, default=1000, help="also this size with the sim's preadv copies (0: skip)")
    args = ap.parse_args()
    print(f"Sampling: Monitor.tick vs a bare struct.unpack_from loop over the same mmaps; {machine()}")
    print("consoles   bare loop/tick   sample+classify/tick   ratio   per console  | paced 2 Hz: tick  ratio  moved")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        r = measure(n, args.rounds, args.paced)
        rows.append(r)
        line = (f"{r['n']:>8}   {fmt_us(r['bare'])}      {fmt_us(r['tick'])}        {r['ratio']:5.2f}x  "
                f"{r['tick'] / r['n'] * 1e9:7.0f} ns")
        if "paced_ratio" in r:
            line += f"  | {fmt_us(r['paced_tick'])} {r['paced_ratio']:5.2f}x {r['paced_moved']:6.0f}"
        print(line, flush=True)
    if args.copies:
        r = measure(args.copies, args.rounds, 0, mmap_reads=False)
        print(f"{r['n']:>8}   {fmt_us(r['bare'])}      {fmt_us(r['tick'])}        {r['ratio']:5.2f}x  "
              f"{r['tick'] / r['n'] * 1e9:7.0f} ns   (sim default: private copies, a preadv per console "
              f"per tick; not a dom0 cost)", flush=True)
    worst = max(r["ratio"] for r in rows)
    print(f"back-to-back: worst ratio {worst:.2f}x (goal <= 2x at every size) {verdict(worst <= 2.0)}")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        big = [r for r in rows if r["n"] >= 100] or rows
        per = [r["tick"] / r["n"] * 1e9 for r in big]
        print(f"growth: {b['n'] / a['n']:.0f}x consoles -> {b['tick'] / a['tick']:.1f}x time per tick; "
              f"per console from {big[0]['n']} up: {min(per):.0f}-{max(per):.0f} ns (linear if flat)")


if __name__ == "__main__":
    main()
