"""End-to-end scenarios on real Xen hosts under QEMU TCG (`make test-xen`).

Hosts xen417 (Xen 4.17, bookworm), xen420 (Xen 4.20, trixie, a Linux 7.2 and a 6.12
guest), xen421 (Xen 4.20.4 + the 4.21 console-flag patches, built from source) and
xenarm (Xen 4.17/Arm, arm64 dom0 and guests, qemu-system-aarch64; by default only when
its inputs changed, see lab.arm_gate()); pick some with XCINSPECT_LAB_HOSTS. One boot per host runs every selected scenario of that host
(tests/xen/scenarios/NN-name.sh, `# xci-hosts:` header) in order inside dom0; each test
asserts its scenario's PASS and shows the dom0 evidence (scenario output, xenstore-ls,
xl list, rings, logs) when it failed.
"""
from __future__ import annotations

import importlib.util
import os
import re
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


def lab_hosts() -> list[str]:
    """XCINSPECT_LAB_HOSTS, else the x86 hosts + xenarm when lab.arm_gate() says so."""
    env = os.environ.get("XCINSPECT_LAB_HOSTS", "").strip()
    hosts = re.split(r"[\s,]+", env) if env else list(lab.X86_HOSTS) + ([lab.ARM_HOST] if ARM_GATE[0] else [])
    bad = [h for h in hosts if h not in lab.HOSTS]
    if bad:
        raise ValueError(f"XCINSPECT_LAB_HOSTS: unknown host(s) {bad}; known: {lab.HOSTS}")
    return hosts


ARM_GATE = (True, "XCINSPECT_LAB_HOSTS") if os.environ.get("XCINSPECT_LAB_HOSTS", "").strip() else lab.arm_gate()


def test_xenarm_gate():
    """Says whether this run includes the Arm host and why (skipped = not this time)."""
    if "xenarm" not in lab_hosts():
        pytest.skip(f"xenarm not run: {ARM_GATE[1]}")


HOST_SCENARIOS = [(h, s) for h in lab_hosts() for s in lab.scenario_names(h)]


@pytest.mark.parametrize("host", lab_hosts())
def test_lab_boot(xen_lab_reports, host):
    """The lab itself: dom0 came up, the guests were created, the run completed."""
    r = xen_lab_reports.get(host)
    assert r.done and not r.setup_errors, _context(r)


@pytest.mark.parametrize(("host", "scenario"), HOST_SCENARIOS,
                         ids=[f"{h}-{s}" for h, s in HOST_SCENARIOS])
def test_scenario(xen_lab_reports, host, scenario):
    res = xen_lab_reports.get(host).results.get(scenario)
    if res is None:
        pytest.fail(f"{scenario} was not part of the {host} run", pytrace=False)
    if not res.passed:
        ctx = _context(xen_lab_reports.get(host))
        pytest.fail(res.report() + ("\n" + ctx if ctx else ""), pytrace=False)
