"""Sampling cost: Monitor.tick() (sample + classify every console) against a bare
struct.unpack_from loop over the same mmaps, measured in the same run.

Goal (issues 2 and 7): <= 2x the bare loop at every size, cost linear in the count.
"""

from __future__ import annotations

import argparse
import struct

from common import best_of, fmt_us, world

from xcinspect.monitor import Monitor
from xcinspect.platform.sim import SimPlatform

IDX = struct.Struct("<4I")


def measure(n: int) -> dict:
    with world(domains=n) as w:
        mon = Monitor(SimPlatform(w.dir), facts_interval=1e9)
        mon.open()
        try:
            mon.refresh_facts()
            mon.tick()
            bufs = [e.mapping.buf for e in mon.views() if e.mapping is not None]
            unpack = IDX.unpack_from

            def bare():
                for b in bufs:
                    unpack(b, 3072)

            def tick():
                mon.tick()

            number = max(3, 20000 // max(n, 1))
            t_bare = best_of(bare, number=number)
            t_tick = best_of(tick, number=number)
            return {"n": len(bufs), "bare": t_bare, "tick": t_tick, "ratio": t_tick / t_bare}
        finally:
            mon.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000,5000")
    args = ap.parse_args()
    print("consoles   bare loop/tick   sample+classify/tick   ratio   per console")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        r = measure(n)
        rows.append(r)
        print(f"{r['n']:>8}   {fmt_us(r['bare'])}      {fmt_us(r['tick'])}        {r['ratio']:5.2f}x  {r['tick'] / r['n'] * 1e9:7.0f} ns")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"growth: {b['n'] / a['n']:.0f}x consoles -> {b['tick'] / a['tick']:.1f}x time per tick")


if __name__ == "__main__":
    main()
