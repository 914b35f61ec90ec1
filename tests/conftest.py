"""Shared fixtures. Keep this small: module-specific fixtures live in their test files."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sim_xenstored(tmp_path_factory):
    """A sim xenstored in its own world dir (module scope). Yields the world dir (a Paths)."""
    from xcinspect.sim import xenstored
    from xcinspect.sim.common import Paths

    d = tmp_path_factory.mktemp("xsworld")
    proc = xenstored.spawn(str(d))
    paths = Paths(str(d))
    paths.proc = proc
    yield paths
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:
        proc.kill()
        proc.wait()
