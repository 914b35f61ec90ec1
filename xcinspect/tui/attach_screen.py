"""The attached console: typed keys go to the guest; F2 scroll mode (search, save, copy)."""

from __future__ import annotations

import os
import re
import time

from rich.style import Style
from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input

from xcinspect.core.sanitize import Sanitizer
from xcinspect.tui import bindings
from xcinspect.tui.attach_io import key_bytes
from xcinspect.tui.console_view import ConsoleView
from xcinspect.tui.model import Row, clean
from xcinspect.tui.screens import make_bindings
from xcinspect.tui.status import StatusBar


class AttachScreen(Screen):
    """A live console. Typed keys go to the guest; F2 (or shift+PgUp) switches to scroll
    mode, where / n s y work on the scrollback; the escape key (^]) detaches."""

    BINDINGS = make_bindings(bindings.ATTACH) + [
        # Enter in the search line moves focus back at once (see MainScreen: keys typed
        # ahead, such as n for the next match, must not land in the search line).
        Binding("enter", "search_done", show=False, priority=True),
    ]
    AUTO_FOCUS = "ConsoleView"

    def __init__(self, row: Row, session, *, scrollback: int, escape_display: str) -> None:
        super().__init__(id="attach")
        self.row = row
        self.session = session
        self.scrollback = scrollback
        self.escape_display = escape_display
        self.sanitizer = Sanitizer()
        self.io = None
        self.live = True
        self.closed_reason: str | None = None
        self.bytes_in = 0

    def compose(self) -> ComposeResult:
        yield StatusBar(id="attach-status")
        yield ConsoleView(self.scrollback, id="console")
        yield Input(placeholder="search the scrollback (enter: find, esc: cancel)", id="search")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def console(self) -> ConsoleView:
        return self.query_one(ConsoleView)

    def on_mount(self) -> None:
        from xcinspect.tui.attach_io import AttachIO

        self.update_status()
        self._app = self.app  # for the reader thread: self.app needs the app's context
        self.io = AttachIO(self.session, self._from_thread_output, self._from_thread_closed)
        self.io.start()
        self.app.notify(f"Attached to dom {self.row.domid}. Escape character is {self.escape_display}",
                        timeout=4, markup=False)

    # thread -> UI (the app may be gone by then: the screen dismissed, the app exiting)
    def _to_ui(self, fn, arg) -> None:
        try:
            self._app.call_from_thread(fn, arg)
        except Exception:  # NoActiveAppError, RuntimeError (app not running, loop closed)
            self.io.stop()

    def _from_thread_output(self, data: bytes) -> None:
        self._to_ui(self.feed, data)

    def _from_thread_closed(self, reason: str) -> None:
        self._to_ui(self.console_closed, reason)

    def feed(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.console.write(self.sanitizer.feed(data))

    def console_closed(self, reason: str) -> None:
        self.console.write(self.sanitizer.flush())
        self.closed_reason = clean(reason)
        self.console.show_cursor = False
        self.console.refresh()
        self.update_status()
        self.app.notify(f"dom {self.row.domid}: {reason}", severity="warning", markup=False)
        self.refresh_bindings()

    def update_status(self) -> None:
        pal = self.app.pal
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"dom {self.row.domid} ", style=pal["primary"] + Style(bold=True))
        t.append(self.row.name, style=Style(bold=True))
        if self.closed_reason:
            t.append(f" · {self.closed_reason}", style=pal["error"])
        elif self.live:
            t.append(" · keys go to the guest", style=pal["success"])
        else:
            t.append(" · SCROLL MODE (i: type again)", style=pal["warning"] + Style(bold=True))
            if self.console.term:
                which, total = self.console.match_count()
                t.append(f" · {self.console.term!r}: " + (f"{which} of {total}" if which else f"{total} lines"),
                         style=pal["accent"])
        t.append(" · Escape character is ")
        t.append(self.escape_display, style=pal["accent"] + Style(bold=True))
        via = getattr(self.session, "via", "")
        if via:
            t.append(f" · via {clean(str(via))}")
        self.query_one("#attach-status", StatusBar).update(t)

    # -- keys -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters) -> bool | None:
        if action in ("search", "search_next", "search_prev", "save", "copy", "live", "toggle_wrap"):
            return not self.live
        return True

    def on_key(self, event) -> None:
        if not self.live or self.focused is not self.console:
            return
        data = key_bytes(event.key, event.character)
        event.stop()
        event.prevent_default()
        if data is not None and self.io is not None and self.closed_reason is None:
            self.io.send(data)
            if not self.console.follow:
                self.console.follow = True  # typing brings the view back to the prompt

    def on_paste(self, event) -> None:
        if self.live and self.io is not None and self.closed_reason is None:
            event.stop()
            self.io.send(event.text.replace("\r\n", "\r").replace("\n", "\r").encode("utf-8", "replace"))

    def set_live(self, live: bool) -> None:
        self.live = live
        self.console.show_cursor = live and self.closed_reason is None
        if live:
            self.console.wrap = True  # live output never loses the end of a line
            self.console.follow = True
            self.console.term = ""
            self.console.refresh()
            self.console.focus()
        self.update_status()
        self.refresh_bindings()

    def action_detach(self) -> None:
        self.app.detach(self)

    def action_scroll_mode(self) -> None:
        if self.live:
            self.set_live(False)
            self.console.follow = False
            self.console.scroll_page_up(animate=False)
        else:
            self.set_live(True)

    def action_live(self) -> None:
        self.set_live(True)

    def action_toggle_wrap(self) -> None:
        self.console.wrap = not self.console.wrap

    def action_search(self) -> None:
        s = self.query_one("#search", Input)
        s.add_class("-active")
        s.value = self.console.term
        self.set_focus(s)  # now: keys typed right after the slash are the search's

    def action_search_done(self) -> None:
        s = self.query_one("#search", Input)
        if self.focused is not s:
            raise SkipAction()  # enter elsewhere (live: it goes to the guest)
        term = s.value
        s.remove_class("-active")
        self.set_focus(self.console)  # now, not after a message round
        if not term:
            self.console.term = ""
            self.console.refresh()
            self.update_status()
            return
        if self.console.find(term, None, -1) is None:
            self.app.notify(f"not found: {term}", severity="warning", timeout=3, markup=False)
        self.update_status()

    def on_descendant_blur(self, event) -> None:
        s = self.query_one("#search", Input)
        if event.widget is s:
            s.remove_class("-active")

    def action_search_next(self) -> None:
        c = self.console
        if c.term and c.find(c.term, c.current_match(), +1) is None:
            self.app.notify(f"not found: {c.term}", severity="warning", timeout=3, markup=False)
        self.update_status()

    def action_search_prev(self) -> None:
        c = self.console
        if c.term and c.find(c.term, c.current_match(), -1) is None:
            self.app.notify(f"not found: {c.term}", severity="warning", timeout=3, markup=False)
        self.update_status()

    def action_copy(self) -> None:
        c = self.console
        i = c.current_match()
        text = c.line_at(i) if (i is not None and c.term) else c.visible_text()
        text = text or ""
        self.app.copy_to_clipboard(text)
        n = text.count("\n") + 1 if text else 0
        self.app.notify(f"copied {n} line{'s' if n != 1 else ''} to the clipboard (OSC 52)", timeout=3,
                        markup=False)

    def action_save(self) -> None:
        from xcinspect.tui.modals import PromptModal

        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.row.name)[:40] or "guest"
        default = os.path.abspath(f"xcinspect-dom{self.row.domid}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}.log")
        self.app.push_screen(PromptModal("Save the scrollback to", default), self._save_to)

    def _save_to(self, path: str | None) -> None:
        if not path:
            return
        text = self.console.text()
        try:
            with open(os.path.expanduser(path), "x", encoding="utf-8") as f:
                f.write(text + ("\n" if text and not text.endswith("\n") else ""))
        except OSError as exc:
            self.app.notify(f"cannot save to {path}: {exc.strerror or exc}", severity="error", markup=False)
            return
        n = len(self.console.lines) + (1 if self.console.partial else 0)
        self.app.notify(f"saved {n} lines to {path}", timeout=5, markup=False)

    def on_unmount(self) -> None:
        if self.io is not None:
            self.io.stop()
