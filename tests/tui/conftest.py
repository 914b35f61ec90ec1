"""TUI test fixtures: a scrubbed environment, a frozen world, a fixed clock.

The environment is scrubbed at import, before anything imports Textual (which reads
TEXTUAL_* once into module constants); NO_COLOR is read per App and removed per test.
The operator's own config and themes are kept out: XDG_CONFIG_HOME points at a temporary
directory for every test.
"""

from __future__ import annotations

import os

for _var in ("NO_COLOR", "TEXTUAL_THEME", "TEXTUAL_COLOR_SYSTEM", "TEXTUAL_FILTERS", "TEXTUAL_DRIVER",
             "TEXTUAL_PRESS", "TEXTUAL_SCREENSHOT", "TEXTUAL_FPS", "COLUMNS", "LINES", "ROWS"):
    os.environ.pop(_var, None)
os.environ["TEXTUAL_ANIMATIONS"] = "none"

import re  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

from static_world import StaticWorld  # noqa: E402


class SVGSnapshot(SingleFileSnapshotExtension):
    file_extension = "svg"
    _write_mode = WriteMode.TEXT

    def serialize(self, data, **kwargs):
        return re.sub(r"\bterminal-\d+-([\w-]+)", r"terminal-\1", str(data))


@pytest.fixture
def svg_snapshot(snapshot):
    return snapshot.use_extension(SVGSnapshot)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


class Clock:
    """A monitor clock that moves only when told (durations in verdicts are fixed)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="session")
def frozen_world(tmp_path_factory):
    w = StaticWorld(str(tmp_path_factory.mktemp("frozen"))).start()
    yield w
    w.stop()


@pytest.fixture
def frozen_app(frozen_world):
    """A factory: the app over the frozen world, no poller thread, fixed clock.

    Call ``await ready(pilot)`` inside ``run_test`` to take the first sample."""
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.app import make_app

    made = []

    def factory(**kw):
        clock = Clock()
        mon = Monitor(frozen_world.platform(), clock=clock)
        mon.open()
        kw.setdefault("sort", "domid")  # written for domid order; the default is tested on its own
        app = make_app(mon, poll=False, **kw)
        app.clock = clock
        made.append(mon)
        return app

    yield factory
    for mon in made:
        mon.close()


async def ready(pilot, samples: int = 1, step: float = 1.0):
    """Take ``samples`` samples ``step`` seconds apart on the fixed clock and settle."""
    app = pilot.app
    for i in range(samples):
        if i:
            app.clock.t += step
        app.sample_now()
        await pilot.pause()
    await pilot.pause()


@pytest.fixture
def sim_app(world):
    """A factory: the app over the test module's own running sim ``world`` (each module
    that uses it defines that fixture), with actions; domid order unless asked."""
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.app import make_app

    made = []

    def factory(interval: float = 0.2, **kw):
        plat = world.platform()
        mon = Monitor(plat, facts_interval=0.2)
        mon.open()
        acts = Actions(plat, read_only=kw.get("read_only", False), platform_args=["--sim", world.dir])
        kw.setdefault("sort", "domid")
        app = make_app(mon, actions=acts, interval=interval, **kw)
        made.append((mon, acts))
        return app

    yield factory
    for mon, acts in made:
        acts.xs.close()
        mon.close()
