"""TUI benchmark: 1,000 sim domains at 2 Hz for 60 s, headless.

Prints two figures (goals from issue 3):

* CPU share of one core used by the TUI process (poller thread + UI), goal <= 25 %;
  the sim world's own processes (guests, xenconsoled, xenstored) are not counted.
* time from start (before the monitor opens) to the first full frame -- every domain
  in the table and drawn -- goal <= 1 s.

Usage: python bench/tui.py [--domains N] [--seconds S] [--hz F] [--size WxH] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time

from common import world


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def first_frame(w, hz: float, size: tuple[int, int]) -> float:
    """Seconds from start (nothing open) to the first frame with every domain drawn."""
    from xcinspect.monitor import Monitor
    from xcinspect.platform.sim import SimPlatform
    from xcinspect.tui.app import make_app

    t_start = time.monotonic()
    mon = Monitor(SimPlatform(w.dir))
    app = make_app(mon, interval=1.0 / hz, open_monitor=True)  # as run_tui does
    try:
        async with app.run_test(size=size) as pilot:
            while app.first_frame_at is None or app.main.table.row_count < max(1, len(mon.entries)):
                await asyncio.sleep(0.005)
            await pilot.pause()  # the frame is drawn
            return time.monotonic() - t_start
    finally:
        mon.close()


async def run(domains: int, seconds: float, hz: float, size: tuple[int, int], runs: int) -> dict:
    from xcinspect.monitor import Monitor
    from xcinspect.platform.sim import SimPlatform
    from xcinspect.tui.app import make_app

    with world(domains=domains, timeline=True) as w:
        time.sleep(2.0)  # let the guests finish booting: measure the TUI, not the boot storm
        firsts = [await first_frame(w, hz, size) for _ in range(runs)]
        mon = Monitor(SimPlatform(w.dir))
        app = make_app(mon, interval=1.0 / hz, open_monitor=True)
        try:
            async with app.run_test(size=size) as pilot:
                while app.first_frame_at is None or app.main.table.row_count < max(1, len(mon.entries)):
                    await asyncio.sleep(0.005)
                await pilot.pause()
                rows = app.main.table.row_count
                c0, w0, f0 = cpu_seconds(), time.monotonic(), app.frames
                await asyncio.sleep(seconds)
                c1, w1, f1 = cpu_seconds(), time.monotonic(), app.frames
                ticks = app.poller.ticks
        finally:
            mon.close()
    return {
        "domains": rows,
        "first_frame_s": statistics.median(firsts),
        "first_frames": firsts,
        "cpu_share": (c1 - c0) / (w1 - w0),
        "frames": f1 - f0,
        "seconds": w1 - w0,
        "ticks": ticks,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--hz", type=float, default=2.0)
    ap.add_argument("--size", default="200x60")
    ap.add_argument("--runs", type=int, default=3, help="first-frame measurements (median shown)")
    a = ap.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    r = asyncio.run(run(a.domains, a.seconds, a.hz, (w, h), a.runs))
    cpu_ok = "ok" if r["cpu_share"] <= 0.25 else "OVER GOAL"
    ff_ok = "ok" if r["first_frame_s"] <= 1.0 else "OVER GOAL"
    print(f"TUI, {r['domains']} sim domains at {a.hz:g} Hz for {r['seconds']:.0f} s, headless {w}x{h}")
    print(f"  CPU share of one core : {r['cpu_share'] * 100:5.1f} %   (goal <= 25 %)  {cpu_ok}")
    runs = ", ".join(f"{x:.2f}" for x in r["first_frames"])
    print(f"  first full frame      : {r['first_frame_s']:5.2f} s   (goal <= 1 s)   {ff_ok}   (median of {runs})")
    print(f"  frames applied        : {r['frames']} ({r['frames'] / r['seconds']:.2f}/s)")
    print(f"  machine               : {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          "(the sim world's guests run on the same CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
