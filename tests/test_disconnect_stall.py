"""Stopping xcinspect's own backend warns when nobody else will service the console: the
guest stalls again once its 2 KiB out ring fills (issue #13). The plan is the engine's
(``Actions.plan_disconnect``), so the CLI's stderr and the TUI's dialog both say it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from xcinspect.core.model import BackendFacts
from xcinspect.core.ring import IDX, IDX_OFFSET, MASK32, OUT_SIZE
from xcinspect.engine import facts
from xcinspect.engine.actions import Actions

WARNING = "STALL AGAIN once its 2 KiB out ring fills"


def xci(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "xcinspect", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from xcinspect.sim.handle import start_world

    w = start_world(str(tmp_path_factory.mktemp("stall-world")), scenario="demo", timeline=False)
    yield w
    w.stop()


def out_fill(world, domid: int) -> int:
    with world.platform().map_page(domid, None) as m:
        _, _, cons, prod = IDX.unpack_from(m.buf, IDX_OFFSET)
    return (prod - cons) & MASK32


def test_cli_disconnect_warns_when_xenconsoled_declined_the_console(world):
    """stuck-boot: xenconsoled runs but is not set up for it, so connect's re-fired watch
    did not make it bind and xcinspect's backend took over. Stopping that backend leaves
    the console to nobody -- the warning says so, and it comes true."""
    d = world.domid("stuck-boot")
    r = xci("--sim", world.dir, "connect", "stuck-boot")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(facts.declined_marker(world.platform(), d))
    deadline = time.monotonic() + 20
    while out_fill(world, d) == OUT_SIZE:
        assert time.monotonic() < deadline, "the backend never drained the ring"
        time.sleep(0.2)
    r = xci("--sim", world.dir, "disconnect", "stuck-boot")
    assert r.returncode == 0, r.stderr
    assert "xenconsoled runs but did not bind this console when xcinspect connected it" in r.stderr
    assert WARNING in r.stderr and "bytes unread now" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "the guest stalls again once its ring fills" in r.stdout
    assert not os.path.exists(facts.declined_marker(world.platform(), d))
    deadline = time.monotonic() + 30  # it ticks every second: nobody drains it any more
    while out_fill(world, d) < OUT_SIZE:
        assert time.monotonic() < deadline, f"the ring never filled again ({out_fill(world, d)} bytes)"
        time.sleep(0.3)


def test_the_plan_when_xenconsoled_will_bind_again_does_not_warn(world, monkeypatch):
    """xenconsoled alive and it did not decline (xcinspect connected while it was down):
    stopping the backend re-fires its watch; the plan says the stall only as a fallback."""
    acts = Actions(world.platform())
    try:
        d = world.domid("web01")
        monkeypatch.setattr(acts, "facts", lambda info: BackendFacts(consoled_alive=True, port_bound=True,
                                                                     xcinspect_backend_pid=os.getpid()))
        plan = acts.plan_disconnect(d)
        assert plan.allowed and not plan.destructive
        assert "re-fired so it can bind again" in plan.description and WARNING not in plan.description
        assert "2 KiB" in plan.description  # if it does not
        monkeypatch.setattr(acts, "facts", lambda info: BackendFacts(consoled_alive=None, port_bound=True,
                                                                     xcinspect_backend_pid=os.getpid()))
        plan = acts.plan_disconnect(d)
        assert plan.destructive and WARNING in plan.description and "state is unknown" in plan.description
    finally:
        acts.xs.close()


def test_cli_disconnect_warns_when_xenconsoled_is_not_running(world):
    """Last: it stops the world's xenconsoled."""
    plat = world.platform()
    pid = plat.consoled_pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while plat.consoled_pid() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = xci("--sim", world.dir, "connect", "hyperlaunch")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(facts.declined_marker(plat, world.domid("hyperlaunch")))
    r = xci("--sim", world.dir, "disconnect", "hyperlaunch")
    assert r.returncode == 0, r.stderr
    assert "no other backend will service this console (xenconsoled is not running)" in r.stderr
    assert WARNING in r.stderr
