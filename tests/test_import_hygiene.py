"""The pure core and the headless paths never import Textual (checked in a fresh interpreter)."""

import subprocess
import sys

import pytest

HEADLESS = [
    "xcinspect.core.ring",
    "xcinspect.core.flags",
    "xcinspect.core.health",
    "xcinspect.core.sanitize",
    "xcinspect.core.model",
    "xcinspect.engine.discovery",
    "xcinspect.engine.monitor",
    "xcinspect.engine.actions",
    "xcinspect.engine.service",
    "xcinspect.engine.journal",
    "xcinspect.cli",
]
CORE_ONLY_STDLIB = ["xcinspect.core.ring", "xcinspect.core.flags", "xcinspect.core.health",
                    "xcinspect.core.sanitize", "xcinspect.core.model"]


@pytest.mark.parametrize("module", HEADLESS)
def test_no_textual(module):
    code = f"import {module}, sys; print(sorted(m for m in ('textual', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("module", CORE_ONLY_STDLIB)
def test_core_needs_no_xen_libraries(module):
    code = (f"import {module}, sys; print(sorted(m for m in ('pyxs', 'cffi', '_cffi_backend', 'prometheus_client')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
