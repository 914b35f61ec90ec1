"""pytest glue for the Xen lab (tests/xen): one boot per host for all of its selected scenarios.

Run with `make test-xen` (= `pytest tests/xen -m xen -v`). Hosts: xen417, xen420, xen421,
or the ones in $XCINSPECT_LAB_HOSTS (space- or comma-separated); tests are parametrized
by (host, scenario) and each host boots once, when its first test runs. The fast suite ignores this
directory (`pytest tests --ignore=tests/xen`); if it is collected anyway without `-m xen`
or XCINSPECT_XEN=1, its tests are skipped. In CI (CI=true) a missing prerequisite is a
failure, never a skip.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

_LAB_PATH = Path(__file__).with_name("lab.py")


def load_lab():
    name = "xcinspect_xen_lab"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _LAB_PATH)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    wanted = "xen" in (config.getoption("markexpr") or "") or os.environ.get("XCINSPECT_XEN") == "1"
    if wanted:
        return
    skip = pytest.mark.skip(reason="Xen lab: run with `make test-xen` (pytest tests/xen -m xen)")
    for item in items:
        if item.get_closest_marker("xen"):
            item.add_marker(skip)


def _progress_writer(config):
    """Print progress live, past pytest's output capture (a run takes minutes)."""
    capman = config.pluginmanager.getplugin("capturemanager")

    def echo(msg: str) -> None:
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            sys.stderr.write(f"\n[xen-lab {time.strftime('%H:%M:%S')}] {msg}")
            sys.stderr.flush()

    return echo


@pytest.fixture(scope="session")
def xen_lab():
    """The lab module, or skip (fail in CI) when the host cannot run it."""
    lab = load_lab()
    try:
        lab.require_tools()
    except lab.LabError as e:
        if in_ci():
            pytest.fail(f"Xen lab prerequisite missing in CI: {e}", pytrace=False)
        pytest.skip(f"Xen lab prerequisite missing: {e}")
    return lab


class HostReports:
    """One lab run per host, started lazily by the first test of that host."""

    def __init__(self, lab, request):
        self.lab = lab
        self.request = request
        self.reports = {}
        self.errors = {}
        self.echo = _progress_writer(request.config)
        lab._log_hook = self.echo

    def wanted(self, host: str) -> list[str]:
        return sorted({item.callspec.params["scenario"] for item in self.request.session.items
                       if hasattr(item, "callspec") and item.callspec.params.get("host") == host
                       and "scenario" in item.callspec.params})

    def get(self, host: str):
        if host in self.errors:
            pytest.fail(f"Xen lab set-up failed ({host}): {self.errors[host]}", pytrace=False)
        if host not in self.reports:
            names = self.wanted(host)
            try:
                t0 = time.monotonic()
                report = self.lab.run(names or None, echo=self.echo, host=host)
            except self.lab.LabError as e:
                self.errors[host] = str(e)
                pytest.fail(f"Xen lab set-up failed ({host}): {e}", pytrace=False)
            self.echo(f"{host}: build + run {time.monotonic() - t0:.0f} s\n    "
                      + report.summary().replace("\n", "\n    ") + "\n")
            self.reports[host] = report
        return self.reports[host]


@pytest.fixture(scope="session")
def xen_lab_reports(request, xen_lab):
    """Build (cached), boot each host once, run the scenarios selected for it."""
    return HostReports(xen_lab, request)
