"""The attached console's view: sanitized output, bounded scrollback, search, follow."""

from __future__ import annotations

from collections import deque

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class ConsoleView(ScrollView, can_focus=True):
    """Sanitized console output with bounded scrollback, search highlighting and follow.

    Lines hold only ``Sanitizer`` output (printable text); each is drawn as a ``Text``.
    """

    DEFAULT_CSS = """
    ConsoleView { height: 1fr; }
    """

    follow = reactive(True)

    def __init__(self, scrollback: int = 10000, **kw) -> None:
        super().__init__(**kw)
        self.lines: deque[str] = deque(maxlen=scrollback)
        self.partial = ""
        self.dropped = 0  # lines that fell off the top
        self.max_width = 0
        self.term = ""
        self.match_line: int | None = None  # absolute line number of the current match
        self.match_style = Style(reverse=True)
        self.current_style = Style(reverse=True, bold=True)
        self.show_cursor = True  # a steady block after the last character (no blink)

    # -- content --------------------------------------------------------------------------
    def write(self, text: str) -> None:
        """Append sanitized text (tabs are expanded per line)."""
        if not text:
            return
        parts = (self.partial + text).split("\n")
        self.partial = parts.pop()
        for line in parts:
            line = line.expandtabs(8)
            if len(self.lines) == self.lines.maxlen:
                self.dropped += 1
            self.lines.append(line)
            if len(line) > self.max_width:
                self.max_width = len(line)
        self.max_width = max(self.max_width, len(self.partial.expandtabs(8)))
        self._resize()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
            # A write that makes a scrollbar appear cannot scroll yet (the scrollbar, and
            # so the room to scroll, exists only after the next layout): again after it.
            self.call_after_refresh(self._follow_end)
        self.refresh()

    def _follow_end(self) -> None:
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def text(self) -> str:
        body = "\n".join(self.lines)
        return body + ("\n" + self.partial if self.partial else "") if body else self.partial

    def _resize(self) -> None:
        self.virtual_size = Size(self.max_width + 1, len(self.lines) + 1)

    def line_at(self, index: int) -> str | None:
        if 0 <= index < len(self.lines):
            return self.lines[index]
        if index == len(self.lines):
            return self.partial.expandtabs(8)
        return None

    # -- search ---------------------------------------------------------------------------
    def find(self, term: str, start: int | None, direction: int) -> int | None:
        """Index of the next line containing ``term`` from ``start`` in ``direction``."""
        self.term = term
        total = len(self.lines) + 1
        if not term or total == 0:
            return None
        low = term.lower()
        if start is None:
            start = total if direction < 0 else -1
        i = start
        for _ in range(total):
            i = (i + direction) % total
            line = self.line_at(i)
            if line is not None and low in line.lower():
                self.match_line = i + self.dropped
                self.follow = False
                self.scroll_to(y=max(0, i - self.size.height // 2), animate=False)
                self.refresh()
                return i
        self.match_line = None
        self.refresh()
        return None

    def current_match(self) -> int | None:
        if self.match_line is None:
            return None
        i = self.match_line - self.dropped
        return i if 0 <= i <= len(self.lines) else None

    def visible_text(self) -> str:
        top = int(self.scroll_y)
        out = []
        for i in range(top, top + self.size.height):
            line = self.line_at(i)
            if line is None:
                break
            out.append(line)
        return "\n".join(out)

    # -- drawing --------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        line = self.line_at(index)
        base = self.rich_style
        if line is None:
            return Strip.blank(width, base)
        text = Text(line, no_wrap=True, end="")
        if self.show_cursor and index == len(self.lines):
            text.append(" ", style=Style(reverse=True))
        if self.term:
            low = line.lower()
            term = self.term.lower()
            current = self.current_match() == index
            start = low.find(term)
            while start >= 0:
                text.stylize(self.current_style if current else self.match_style, start, start + len(term))
                start = low.find(term, start + len(term))
        segments = list(text.render(self.app.console))
        strip = Strip(segments).crop(scroll_x, scroll_x + width).extend_cell_length(width)
        return strip.apply_style(base)

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_mouse_scroll_up(self, event) -> None:
        self.follow = False
