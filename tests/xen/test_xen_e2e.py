"""End-to-end scenarios on a real Xen 4.17 host under QEMU TCG (`make test-xen`).

One boot per session runs every selected scenario (tests/xen/scenarios/NN-name.sh) in
order inside dom0; each test asserts its scenario's PASS and shows the dom0 evidence
(scenario output, xenstore-ls, xl list, rings, logs) when it failed.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_lab():
    """lab.py under one module name, shared with conftest.py (no package needed)."""
    name = "xcinspect_xen_lab"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("lab.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


lab = _load_lab()
pytestmark = pytest.mark.xen


def _context(report) -> str:
    parts = []
    if report.setup_errors:
        parts.append("dom0 set-up errors: " + "; ".join(report.setup_errors))
        if report.setup_text:
            parts.append(report.setup_text)
    if not report.done:
        parts.append(f"the run did not complete; serial log {report.serial_log}, tail:\n"
                     + lab.serial_tail(report))
    return "\n".join(parts)


def test_lab_boot(xen_lab_report):
    """The lab itself: dom0 came up, both guests were created, the run completed."""
    r = xen_lab_report
    assert r.done and not r.setup_errors, _context(r)


@pytest.mark.parametrize("scenario", lab.scenario_names())
def test_scenario(xen_lab_report, scenario):
    res = xen_lab_report.results.get(scenario)
    if res is None:
        pytest.fail(f"{scenario} was not part of the run", pytrace=False)
    if not res.passed:
        ctx = _context(xen_lab_report)
        pytest.fail(res.report() + ("\n" + ctx if ctx else ""), pytrace=False)
