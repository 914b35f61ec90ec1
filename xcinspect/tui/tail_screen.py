"""The read-only tail of a console: its output as the ring shows it, never consumed.

``engine/tail.py`` does the reading (a read-only mapping, sampled; ``out_cons`` is never
moved, nothing is bound or written), on a Textual thread worker; the bytes go through a
``Sanitizer`` into the same ``ConsoleView`` the attach screen uses. Works under
``--read-only``. What the tail could not see (the guest wrote more than the ring holds
between two samples) is a marked line in the view and a count in the header, which guest
output cannot fake.
"""

from __future__ import annotations

import threading

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from xcinspect.core.sanitize import Sanitizer
from xcinspect.engine.tail import HEADER, ConsoleTail, TailChunk, TailError
from xcinspect.tui import bindings
from xcinspect.tui.console_view import ConsoleView
from xcinspect.tui.model import Row, clean
from xcinspect.tui.screens import make_bindings
from xcinspect.tui.status import StatusBar

INTERVAL = 0.2  # seconds between samples of the ring
ALIVE_CHECK = 2.0


def gap_text(missed: int) -> str:
    return f"─── xcinspect: missed {missed} byte{'s' if missed != 1 else ''} here (the ring moved on between two samples) ───"


class TailScreen(Screen):
    """Follows one console read-only; ``escape`` / ``q`` go back to the table."""

    BINDINGS = make_bindings(bindings.TAIL)
    AUTO_FOCUS = "ConsoleView"

    def __init__(self, row: Row, platform, *, interval: float = INTERVAL, scrollback: int = 10000) -> None:
        super().__init__(id="tail")
        self.row = row
        self.platform = platform
        self.interval = interval
        self.scrollback = scrollback
        self.sanitizer = Sanitizer()
        self.stop_event = threading.Event()
        self.bytes_in = 0
        self.missed = 0
        self.gaps = 0
        self.problem: str | None = None
        self.ended: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="tail-status")
        yield ConsoleView(self.scrollback, id="console")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def console(self) -> ConsoleView:
        return self.query_one(ConsoleView)

    def on_mount(self) -> None:
        self.console.show_cursor = False
        self.update_status()
        self.run_worker(self._follow, thread=True, exclusive=True, group="tail", name=f"tail-{self.row.domid}")

    # -- the worker thread ----------------------------------------------------------------------
    def _follow(self) -> None:
        import time

        app = self.app
        tail = ConsoleTail(self.platform, self.row.domid)
        try:
            tail.open()
            next_alive = time.monotonic() + ALIVE_CHECK
            while not self.stop_event.is_set():
                chunk = tail.sample()
                if chunk.data or chunk.missed or chunk.problem != self.problem:
                    app.call_from_thread(self.add, chunk)
                if time.monotonic() >= next_alive:
                    next_alive = time.monotonic() + ALIVE_CHECK
                    if not tail.alive():
                        app.call_from_thread(self.end, f"domain {self.row.domid} is gone")
                        return
                self.stop_event.wait(self.interval)
        except TailError as exc:
            if not self.stop_event.is_set():
                app.call_from_thread(self.end, exc.message)
        finally:
            tail.close()

    # -- on the UI thread -----------------------------------------------------------------------
    def add(self, chunk: TailChunk) -> None:
        c = self.console
        if chunk.missed:
            self.missed += chunk.missed
            self.gaps += 1
            c.write(self.sanitizer.flush())
            if c.partial:
                c.write("\n")
            c.write(gap_text(chunk.missed) + "\n")
        if chunk.data:
            self.bytes_in += len(chunk.data)
            c.write(self.sanitizer.feed(chunk.data))
        if chunk.problem != self.problem:
            self.problem = chunk.problem
            if chunk.problem:
                self.app.notify(f"dom {self.row.domid}: {chunk.problem}", severity="warning", markup=False)
        self.update_status()

    def end(self, reason: str) -> None:
        self.console.write(self.sanitizer.flush())
        self.ended = clean(reason)
        self.update_status()
        self.app.notify(f"tail of dom {self.row.domid}: {reason}", severity="warning", markup=False)

    def update_status(self) -> None:
        pal = self.app.pal
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"dom {self.row.domid} ", style=pal["primary"] + Style(bold=True))
        t.append(self.row.name, style=Style(bold=True))
        t.append(" · ")
        t.append(HEADER, style=pal["warning"])
        if self.ended:
            t.append(f" · {self.ended}", style=pal["error"])
        elif self.problem:
            t.append(f" · {clean(self.problem)}", style=pal["error"])
        if self.gaps:
            t.append(f" · missed {self.missed} bytes in {self.gaps} gap{'s' if self.gaps != 1 else ''}",
                     style=pal["error"] + Style(bold=True))
        self.query_one("#tail-status", StatusBar).update(t)

    def action_back(self) -> None:
        self.stop_event.set()
        self.app.pop_screen()

    def on_unmount(self) -> None:
        self.stop_event.set()


def open_tail(app, row: Row) -> None:
    """The main screen's ``t``: push a tail of the selected console."""
    app.push_screen(TailScreen(row, app.monitor.platform))
