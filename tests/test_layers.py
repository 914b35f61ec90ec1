"""The layers hold: core <- platform <- engine <- front ends, with the sim beside (it may
use core and platform, nothing may use it but the front ends). Checked twice: statically,
over every import statement in the package (function-level ones too), and at run time in
a fresh interpreter (the pure core and the headless paths never load Textual or Rich, and
the core needs no Xen library)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "xcinspect"

# layer -> the layers it may import from
ALLOWED = {
    "core": {"core"},
    "platform": {"core", "platform"},
    "engine": {"core", "platform", "engine"},
    "sim": {"core", "platform", "sim"},
    "frontend": {"core", "platform", "engine", "sim", "frontend", "package"},
}
FRONT_ENDS = {"cli", "metrics", "tui", "__main__"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"  # xcinspect/__init__.py: the version
    top = parts[1]
    if top in FRONT_ENDS:
        return "frontend"
    return top


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    name = ".".join(rel.parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def imports(path: pathlib.Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "xcinspect":  # a module, or a name of the package (__version__)
                out += [f"xcinspect.{a.name}" if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists()
                        else "xcinspect" for a in node.names]
            elif node.module.startswith("xcinspect."):
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name == "xcinspect" or a.name.startswith("xcinspect.")]
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    layers = {layer_of(module_name(p)) for p in MODULES}
    assert layers <= set(ALLOWED) | {"package"}, layers - set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_follow_the_layers(path):
    here = layer_of(module_name(path))
    if here == "package":
        return
    bad = [m for m in imports(path) if layer_of(m) not in ALLOWED[here]]
    assert not bad, f"{module_name(path)} ({here}) imports {bad}"


def test_front_ends_do_not_import_each_other_at_the_top():
    """The TUI and the metrics exporter are reached from the CLI, never the other way."""
    for path in MODULES:
        name = module_name(path)
        if name.startswith(("xcinspect.tui", "xcinspect.metrics")):
            assert not [m for m in imports(path) if m == "xcinspect.cli"], name


HEADLESS = [
    "xcinspect.core.ring",
    "xcinspect.core.flags",
    "xcinspect.core.health",
    "xcinspect.core.sanitize",
    "xcinspect.core.model",
    "xcinspect.core.xs_wire",
    "xcinspect.core.errors",
    "xcinspect.core.options",
    "xcinspect.core.hat",
    "xcinspect.platform.base",
    "xcinspect.platform.xenstore",
    "xcinspect.platform.procfs",
    "xcinspect.engine.discovery",
    "xcinspect.engine.monitor",
    "xcinspect.engine.actions",
    "xcinspect.engine.service",
    "xcinspect.engine.journal",
    "xcinspect.sim.platform",
    "xcinspect.cli",
]
CORE_ONLY_STDLIB = ["xcinspect.core.ring", "xcinspect.core.flags", "xcinspect.core.health",
                    "xcinspect.core.sanitize", "xcinspect.core.model", "xcinspect.core.xs_wire",
                    "xcinspect.core.errors", "xcinspect.core.options", "xcinspect.core.hat"]


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
