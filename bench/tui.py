"""TUI benchmark: 1,000 sim domains at 2 Hz for 60 s, headless.

Figures (goals from issues 3 and 7), each with a baseline measured in the same run:

* CPU share of one core used by the TUI process (poller thread + UI) over the 60 s,
  goal <= 25 %; the sim world's own processes (guests, xenconsoled, xenstored) are not
  counted. Baseline: the bare data path, i.e. what the poller thread does with no UI
  (``Monitor.tick`` + ``FrameBuilder.build`` at the same rate, ``--base-seconds``,
  measured just before the app starts, on the same world).
* time from start (before the monitor opens) to the first full frame -- every domain in
  the table and drawn -- goal <= 1 s; median of ``--runs`` fresh apps, after the guests
  have finished booting. Baseline: a full table without a UI (``Monitor.open`` + the
  first ``tick`` + one frame build, on a fresh monitor), measured alternately with them.
* RSS of the TUI process with 1,000 domains and then with an attached console holding a
  full 10,000-line scrollback (the default ``[attach] scrollback``), goal <= 150 MB.
  The console is really attached (``a`` on a healthy domain: xenconsoled's pty); its
  guest is switched to a flood (``chatty``) until more than 10,000 lines went through
  the attach screen, then back to quiet. Read from /proc/self/status (VmRSS now, VmHWM
  the peak). Baseline: an empty Textual app run the same way in a fresh process.

Usage: python bench/tui.py [--domains N] [--seconds S] [--hz F] [--size WxH] [--runs N] [--no-attach]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import time

from common import machine, verdict, world

LINES = 10_000


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


EMPTY_APP = """
import asyncio, sys
from textual.app import App
from textual.widgets import Static
class Empty(App):
    def compose(self):
        yield Static("empty")
async def main():
    app = Empty()
    async with app.run_test(size=(%d, %d)) as pilot:
        await pilot.pause(0.5)
        with open("/proc/self/status") as f:
            print(next(l for l in f if l.startswith("VmRSS:")).split()[1])
asyncio.run(main())
"""


def empty_app_rss(size: tuple[int, int]) -> int:
    out = subprocess.run([sys.executable, "-c", EMPTY_APP % size], capture_output=True, text=True, timeout=120)
    return int(out.stdout.split()[-1])


def table_without_ui(directory: str) -> float:
    """Seconds to a full table with no UI: open + first tick + one frame build."""
    from xcinspect.engine.monitor import Monitor
    from xcinspect.sim.platform import SimPlatform
    from xcinspect.tui.poller import FrameBuilder

    t0 = time.monotonic()
    mon = Monitor(SimPlatform(directory))
    try:
        mon.open()
        FrameBuilder(mon).build(mon.tick(), None)
        return time.monotonic() - t0
    finally:
        mon.close()


def data_path_cpu(directory: str, seconds: float, hz: float) -> float:
    """CPU share of the bare data path: what the poller thread does, at ``hz``, no UI."""
    from xcinspect.engine.monitor import Monitor
    from xcinspect.sim.platform import SimPlatform
    from xcinspect.tui.poller import FrameBuilder

    mon = Monitor(SimPlatform(directory))
    try:
        mon.open()
        builder = FrameBuilder(mon)
        builder.build(mon.tick(), None)
        c0, w0 = cpu_seconds(), time.monotonic()
        due = w0
        while time.monotonic() - w0 < seconds:
            due += 1.0 / hz
            time.sleep(max(0.0, due - time.monotonic()))
            builder.build(mon.tick(), None)
        return (cpu_seconds() - c0) / (time.monotonic() - w0)
    finally:
        mon.close()


async def first_frame(w, hz: float, size: tuple[int, int]) -> float:
    """Seconds from start (nothing open) to the first frame with every domain drawn."""
    from xcinspect.engine.monitor import Monitor
    from xcinspect.sim.platform import SimPlatform
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


async def wait_until(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run(domains: int, seconds: float, hz: float, size: tuple[int, int], attach: bool,
              base_seconds: float, runs: int) -> dict:
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor
    from xcinspect.sim.platform import SimPlatform
    from xcinspect.tui.app import make_app

    out: dict = {}
    with world(domains=domains, timeline=True) as w:
        time.sleep(2.0)  # let the guests finish booting: measure the TUI, not the boot storm
        firsts, bases = [], []
        for _ in range(runs):  # alternately, so both see the same machine
            bases.append(table_without_ui(w.dir))
            firsts.append(await first_frame(w, hz, size))
        out.update(first_frame_s=statistics.median(firsts), first_frames=firsts,
                   base_table=statistics.median(bases))
        out["base_cpu"] = data_path_cpu(w.dir, base_seconds, hz)
        mon = Monitor(SimPlatform(w.dir))
        acts = Actions(SimPlatform(w.dir), platform_args=["--sim", w.dir])
        app = make_app(mon, actions=acts, interval=1.0 / hz, open_monitor=True)
        try:
            async with app.run_test(size=size) as pilot:
                while app.first_frame_at is None or app.main.table.row_count < max(1, len(mon.entries)):
                    await asyncio.sleep(0.005)
                await pilot.pause()
                out["domains"] = app.main.table.row_count
                c0, w0, f0 = cpu_seconds(), time.monotonic(), app.frames
                await asyncio.sleep(seconds)
                c1, w1, f1 = cpu_seconds(), time.monotonic(), app.frames
                out.update(cpu_share=(c1 - c0) / (w1 - w0), frames=f1 - f0, seconds=w1 - w0, ticks=app.poller.ticks)
                out["rss_domains"] = status_kib("VmRSS")
                if attach:
                    await attach_and_flood(app, pilot, w, out)
        finally:
            mon.close()
            acts.xs.close()
    return out


async def attach_and_flood(app, pilot, w, out: dict) -> None:
    from xcinspect.tui.attach_screen import AttachScreen

    cfgs = w.domains
    rows = {r.domid: r for r in app.main.rows}
    domid = next(d for d, c in sorted(cfgs.items())
                 if c.get("shows") == "healthy" and c.get("behaviour") == "normal" and d in rows
                 and rows[d].state in ("serviced", "idle"))
    app.domain_command("attach", domid)
    await wait_until(lambda: isinstance(app.screen, AttachScreen), 15, "the attach screen")
    screen = app.screen
    await wait_until(lambda: screen.io is not None, 15, "the attach screen mounted")
    console = screen.console
    w.control(f"guest {domid} set behaviour chatty")
    t0 = time.monotonic()
    try:
        await wait_until(lambda: len(console.lines) + console.dropped > LINES + 200, 120, f"{LINES} lines")
    finally:
        w.control(f"guest {domid} set behaviour quiet")
    out["flood_s"] = time.monotonic() - t0
    await pilot.pause(1.0)
    out["lines_seen"] = len(console.lines) + console.dropped
    out["lines_kept"] = len(console.lines)
    out["bytes_in"] = screen.bytes_in
    out["rss_attached"] = status_kib("VmRSS")
    out["rss_peak"] = status_kib("VmHWM")
    out["domid"] = domid
    app.detach(screen)
    await pilot.pause(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--hz", type=float, default=2.0)
    ap.add_argument("--size", default="200x60")
    ap.add_argument("--base-seconds", type=float, default=10.0, help="duration of the data-path baseline")
    ap.add_argument("--runs", type=int, default=3, help="first-frame measurements (median shown)")
    ap.add_argument("--no-attach", dest="attach", action="store_false", help="skip the RSS-with-scrollback phase")
    a = ap.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    r = asyncio.run(run(a.domains, a.seconds, a.hz, (w, h), a.attach, a.base_seconds, a.runs))
    empty = empty_app_rss((w, h))
    mib = 1024.0
    print(f"TUI, {r['domains']} sim domains at {a.hz:g} Hz for {r['seconds']:.0f} s, headless {w}x{h}; {machine()}")
    print(f"  CPU share of one core : {r['cpu_share'] * 100:5.1f} %   (goal <= 25 %)  {verdict(r['cpu_share'] <= 0.25)}"
          f"   = {r['cpu_share'] / r['base_cpu']:.1f}x the bare data path ({r['base_cpu'] * 100:.1f} %: "
          f"tick + frame build, no UI)")
    runs = ", ".join(f"{x:.2f}" for x in r["first_frames"])
    print(f"  first full frame      : {r['first_frame_s']:5.2f} s   (goal <= 1 s)   {verdict(r['first_frame_s'] <= 1.0)}"
          f"   = {r['first_frame_s'] / r['base_table']:.1f}x a full table without a UI ({r['base_table']:.2f} s)"
          f"   (median of {runs})")
    print(f"  frames applied        : {r['frames']} ({r['frames'] / r['seconds']:.2f}/s)")
    print(f"  RSS, {r['domains']} domains     : {r['rss_domains'] / mib:5.1f} MiB = "
          f"{r['rss_domains'] / empty:.1f}x an empty Textual app ({empty / mib:.1f} MiB)")
    if "rss_attached" in r:
        worst = max(r["rss_attached"], r["rss_peak"]) / mib
        print(f"  RSS, + attached, {r['lines_kept']} lines kept of {r['lines_seen']} : {r['rss_attached'] / mib:5.1f} MiB "
              f"(peak {r['rss_peak'] / mib:.1f} MiB; goal <= 150 MB) {verdict(worst * 1.048576 <= 150)} "
              f"= {r['rss_attached'] / empty:.1f}x an empty Textual app; flood of {r['bytes_in'] / 1e6:.1f} MB "
              f"took {r['flood_s']:.1f} s (dom {r['domid']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
