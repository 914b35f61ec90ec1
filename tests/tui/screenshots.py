"""Regenerate the README screenshots from a live demo sim world (not a test).

    python tests/tui/screenshots.py [OUTDIR]      # default docs/screenshots

Writes SVG (Textual's export) and PNG (rsvg-convert, when installed) files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def until(pilot, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await pilot.pause(0.05)


def save(app, out: str, name: str) -> None:
    svg = os.path.join(out, f"{name}.svg")
    with open(svg, "w") as f:
        f.write(app.export_screenshot(title=f"xcinspect — {name}"))
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-z", "1.0", svg, "-o", os.path.join(out, f"{name}.png")], check=True)
    print("wrote", name)


async def shoot(world, out: str) -> None:
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.app import make_app
    from xcinspect.tui.attach_screen import AttachScreen

    async def session(size, theme=None, script=None):
        plat = world.platform()
        mon = Monitor(plat)
        mon.open()
        acts = Actions(plat, platform_args=["--sim", world.dir])
        app = make_app(mon, actions=acts, interval=0.5, theme=theme)
        try:
            async with app.run_test(size=size) as pilot:
                await until(pilot, lambda: len(app.main.rows) >= 8)
                await script(app, pilot)
        finally:
            acts.xs.close()
            mon.close()

    def row(app, name):
        return next(r for r in app.main.rows if r.name == name)

    async def stalled(app, pilot):
        await until(pilot, lambda: row(app, "stuck-boot").state == "stalled")
        app.domain_command("show", row(app, "stuck-boot").domid)
        await pilot.pause(3.0)
        save(app, out, "main-stalled-120x40")

    async def high_contrast(app, pilot):
        await pilot.pause(2.0)
        save(app, out, "main-high-contrast-80x24")

    async def attach(app, pilot):
        app.domain_command("show", row(app, "web01").domid)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AttachScreen) and bool(app.screen.query("ConsoleView")))
        await until(pilot, lambda: "login" in app.screen.console.text())
        await pilot.press(*"uname -a", "enter")
        await until(pilot, lambda: "Linux web01" in app.screen.console.text())
        await pilot.pause(1.0)
        save(app, out, "attach-80x24")
        await pilot.press("ctrl+right_square_bracket")

    await session((120, 40), script=stalled)
    await session((80, 24), theme="high-contrast", script=high_contrast)
    await session((80, 24), script=attach)


def main() -> int:
    sys.path.insert(0, ROOT)
    for var in ("NO_COLOR", "TEXTUAL_THEME", "TEXTUAL_COLOR_SYSTEM"):
        os.environ.pop(var, None)
    os.environ["TEXTUAL_ANIMATIONS"] = "none"
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "screenshots")
    os.makedirs(out, exist_ok=True)
    from xcinspect.sim.handle import start_world

    tmp = tempfile.mkdtemp(prefix="xci-shots-")
    os.environ["XDG_CONFIG_HOME"] = os.path.join(tmp, "xdg")
    world = start_world(os.path.join(tmp, "w"), scenario="demo", timeline=False)
    try:
        asyncio.run(shoot(world, out))
    finally:
        world.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
