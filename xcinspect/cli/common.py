"""What every subcommand shares: exit statuses, the platform context, one-line output."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile

from xcinspect.core.sanitize import sanitize
from xcinspect.platform.base import Platform, PlatformError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


class Context(contextlib.ExitStack):
    """The platform for this run, plus cleanup of a temporary demo world."""

    def __init__(self, args) -> None:
        super().__init__()
        self.args = args
        self.world = None
        self.platform: Platform | None = None
        self.platform_args: list[str] = []

    def open(self) -> Platform:
        sim = getattr(self.args, "sim", None)
        if sim is not None:
            from xcinspect.sim.platform import SimPlatform

            if sim == "":
                from xcinspect.sim.handle import start_world

                tmp = tempfile.mkdtemp(prefix="xcinspect-sim-")
                self.callback(shutil.rmtree, tmp, True)
                n = getattr(self.args, "domains", None)
                kw = {"domains": n, "scenario": "scale"} if n else {"scenario": "demo"}
                try:
                    self.world = start_world(tmp, **kw)
                except Exception as exc:  # WorldError: say what failed, in one line
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise PlatformError(f"could not start the demo world: {first}") from None
                self.callback(self.world.stop)
                sim = tmp
            elif not os.path.isdir(sim):
                raise PlatformError(f"no sim world at {sim} (start one with `xcinspect sim {sim}`)")
            self.platform = SimPlatform(sim)
            self.platform_args = ["--sim", os.path.abspath(sim)]
        else:
            from xcinspect.platform.dom0 import Dom0Platform

            self.platform = Dom0Platform()
        self.platform.read_only = bool(getattr(self.args, "read_only", False))
        self.callback(self.platform.close)
        return self.platform


def one_line(text: str) -> str:
    """One safe line: messages quote xenstore values (domain names) a guest may influence."""
    return sanitize(text.encode("utf-8", "surrogateescape")).replace("\n", " ").replace("\t", " ")


def die(msg: str, hint: str | None = None, code: int = EXIT_USAGE) -> int:
    line = f"xcinspect: {msg}"
    if hint:
        line += f" ({hint})"
    print(one_line(line), file=sys.stderr)
    return code
