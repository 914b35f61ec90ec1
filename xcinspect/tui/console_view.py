"""The attached console's view: sanitized output, bounded scrollback, search, follow."""

from __future__ import annotations

from collections import deque

from rich.cells import get_character_cell_size
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


def breaks(line: str, width: int) -> list[int]:
    """Where the rows of ``line`` start when it is wrapped at ``width`` cells."""
    if line.isascii():
        return list(range(0, len(line), width)) or [0]
    starts = [0]
    used = 0
    for i, ch in enumerate(line):
        w = get_character_cell_size(ch)
        if used + w > width and used:
            starts.append(i)
            used = 0
        used += w
    return starts


class ConsoleView(ScrollView, can_focus=True):
    """Sanitized console output with bounded scrollback, search highlighting and follow.

    Lines hold only ``Sanitizer`` output (printable text); each is drawn as a ``Text``.
    With ``wrap`` (the default, as ``xl console``) a line longer than the view goes on in
    the next rows; without it the view scrolls sideways.
    """

    DEFAULT_CSS = """
    ConsoleView { height: 1fr; }
    """

    follow = reactive(True)
    wrap = reactive(True)

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
        # wrapped rows of the complete lines: (absolute line number, start offset)
        self._rows: list[tuple[int, int]] = []
        self._wrap_width = 0

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
            number = self.dropped + len(self.lines)
            self.lines.append(line)
            if len(line) > self.max_width:
                self.max_width = len(line)
            if self._wrap_width:
                self._rows.extend((number, b) for b in breaks(line, self._wrap_width))
        if self._rows and self._rows[0][0] < self.dropped:
            k = 0
            while k < len(self._rows) and self._rows[k][0] < self.dropped:
                k += 1
            del self._rows[:k]
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
        if self.wrap:
            self.virtual_size = Size(self._wrap_width, self.row_count())
        else:
            self.virtual_size = Size(self.max_width + 1, len(self.lines) + 1)

    # -- wrapped rows ---------------------------------------------------------------------
    def _rewrap(self) -> None:
        """Wrap every line again at the view's width (one cell kept for the scrollbar)."""
        width = max(1, self.size.width - (self.styles.scrollbar_size_vertical or 0))
        if width == self._wrap_width:
            return
        top = self.top_line()
        self._wrap_width = width
        self._rows = [(self.dropped + i, b) for i, line in enumerate(self.lines) for b in breaks(line, width)]
        self._resize()
        self._show_line(top)

    def _partial_breaks(self) -> list[int]:
        # the cursor block takes a cell after the partial line
        return breaks(self.partial.expandtabs(8) + " ", self._wrap_width or 1)

    def row_count(self) -> int:
        """How many rows the content takes as shown."""
        if not self.wrap:
            return len(self.lines) + 1
        return len(self._rows) + len(self._partial_breaks())

    def row_span(self, row: int) -> tuple[int, int, int | None] | None:
        """The row as (line index, start, end) of ``line_at(index)``; None past the end."""
        if row < 0:
            return None
        if not self.wrap:
            return (row, 0, None) if row <= len(self.lines) else None
        if row < len(self._rows):
            number, start = self._rows[row]
            nxt = self._rows[row + 1] if row + 1 < len(self._rows) else None
            end = nxt[1] if nxt is not None and nxt[0] == number else None
            return number - self.dropped, start, end
        starts = self._partial_breaks()
        k = row - len(self._rows)
        if k >= len(starts):
            return None
        return len(self.lines), starts[k], starts[k + 1] if k + 1 < len(starts) else None

    def row_of(self, index: int) -> int:
        """The first row of line ``index``."""
        if not self.wrap:
            return index
        if index >= len(self.lines):
            return len(self._rows)
        from bisect import bisect_left

        return bisect_left(self._rows, (index + self.dropped, 0))

    def top_line(self) -> int:
        span = self.row_span(int(self.scroll_y))
        return span[0] if span is not None else len(self.lines)

    def _show_line(self, index: int) -> None:
        if not self.follow:
            self.scroll_to(y=self.row_of(index), animate=False, immediate=True)

    def on_resize(self, event) -> None:
        if self.wrap:
            self._rewrap()

    def watch_wrap(self, wrap: bool) -> None:
        top = self.top_line() if self.is_mounted else 0
        self._wrap_width = 0
        self._rows = []
        if wrap:
            self._rewrap()
        else:
            self._resize()
            self._show_line(top)
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

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
                self.scroll_to(y=max(0, self.row_of(i) - self.size.height // 2), animate=False)
                self.refresh()
                return i
        self.match_line = None
        self.refresh()
        return None

    def match_count(self) -> tuple[int, int]:
        """(which, of how many): the current match among the lines holding the term."""
        if not self.term:
            return 0, 0
        low = self.term.lower()
        cur = self.current_match()
        which = total = 0
        for i in range(len(self.lines) + 1):
            line = self.line_at(i)
            if line is not None and low in line.lower():
                total += 1
                if i == cur:
                    which = total
        return which, total

    def current_match(self) -> int | None:
        if self.match_line is None:
            return None
        i = self.match_line - self.dropped
        return i if 0 <= i <= len(self.lines) else None

    def visible_text(self) -> str:
        top = int(self.scroll_y)
        out: list[str] = []
        last = None
        for r in range(top, top + self.size.height):
            span = self.row_span(r)
            if span is None:
                break
            index, start, end = span
            piece = (self.line_at(index) or "")[start:end]
            if index == last:
                out[-1] += piece
            else:
                out.append(piece)
            last = index
        return "\n".join(out)

    # -- drawing --------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        span = self.row_span(scroll_y + y)
        line = self.line_at(span[0]) if span is not None else None
        if span is None or line is None:
            return Strip.blank(width, base)
        index, start, end = span
        text = Text(line, no_wrap=True, end="")
        if self.show_cursor and index == len(self.lines):
            text.append(" ", style=Style(reverse=True))
        if self.term:
            low = line.lower()
            term = self.term.lower()
            current = self.current_match() == index
            at = low.find(term)
            while at >= 0:
                text.stylize(self.current_style if current else self.match_style, at, at + len(term))
                at = low.find(term, at + len(term))
        if self.wrap:
            text, scroll_x = text[start:end], 0
        segments = list(text.render(self.app.console))
        strip = Strip(segments).crop(scroll_x, scroll_x + width).extend_cell_length(width)
        return strip.apply_style(base)

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_mouse_scroll_up(self, event) -> None:
        self.follow = False
