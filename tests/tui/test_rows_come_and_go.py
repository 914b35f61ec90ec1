"""Domains appear and die under the cursor: it stays on its domain; notifications fire."""

from __future__ import annotations

import time

import pytest
from conftest import Clock, ready
from static_world import Dom, StaticWorld, page_for

from xcinspect.platform.xenstore import XsClient


@pytest.fixture
def small_world(tmp_path):
    doms = [Dom(i, f"g{i}", 0, 0) for i in range(1, 6)]
    w = StaticWorld(str(tmp_path / "w"), doms).start()
    yield w
    w.stop()


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def wait_rows(pilot, app, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.sample_now()
        await pilot.pause()
        if pred():
            return True
        await pilot.pause(0.05)
    return False


async def test_cursor_stays_on_its_domain(small_world):
    from xcinspect.engine.monitor import Monitor
    from xcinspect.tui.app import make_app

    mon = Monitor(small_world.platform(), clock=Clock())
    mon.open()
    app = make_app(mon, poll=False, sort="domid")
    app.clock = mon.clock
    xs = XsClient(small_world.platform().xenstore_path())
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            t = app.main.table
            await pilot.press("down", "down", "down")
            assert t.selected == 4 and t.cursor_row == 3
            # dom 2 dies, dom 9 is born (xenstore keys + @introduceDomain, like the toolstack)
            xs.rm("/local/domain/2")
            xs.release(2)
            d9 = Dom(9, "newborn", 0, 0)
            with open(f"{small_world.dir}/pages/dom9.page", "wb") as f:
                f.write(page_for(d9))
            small_world.platform().doms[9] = d9
            for k, v in {"name": "newborn", "domid": "9", "console/ring-ref": "9", "console/port": "3",
                         "console/type": "xenconsoled", "console/tty": "/dev/pts/9"}.items():
                xs.write(f"/local/domain/9/{k}", v)
            xs.introduce(9, 0, 0)
            assert await wait_rows(pilot, app, lambda: t.order == [1, 3, 4, 5, 9])
            assert t.selected == 4 and t.cursor_row == 2  # moved up with its row
            msgs = notes(app)
            assert any("dom 2 (g2) is gone" in m for m in msgs), msgs
            assert any("dom 9 (newborn) appeared" in m for m in msgs), msgs
            # the selected domain itself dies: the cursor lands on a neighbour
            xs.rm("/local/domain/4")
            xs.release(4)
            assert await wait_rows(pilot, app, lambda: 4 not in t.order)
            assert t.selected in (3, 5)
            assert "dom" in str(app.main.query_one("#detail").border_title)
    finally:
        xs.close()
        mon.close()
