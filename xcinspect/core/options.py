"""What the command line hands each front end, typed (the CLI builds these from its
argparse result; the front ends never probe a Namespace)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UiOptions:
    """The TUI's (``xcinspect``, ``xcinspect serve`` for every browser tab)."""

    flag_layout: str = "auto"
    read_only: bool = False
    theme: str | None = None  # None: the config file's, else the default
    interval: float | None = None  # None: the config file's
    select: int | None = None  # --select DOMID: start with that domain selected, its detail shown


@dataclass(frozen=True)
class ServeOptions:
    ui: UiOptions
    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True)
class MetricsOptions:
    flag_layout: str = "auto"
    textfile: str | None = None  # a directory: DIR/xcinspect.prom written every ``interval``
    listen: str | None = None  # ADDR:PORT or :PORT
    interval: float = 15.0
