"""Widgets: the domain table, the detail panel, the status line, the console view."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey, RowKey

from xcinspect.core import health
from xcinspect.core import ring
from xcinspect.tui import render
from xcinspect.tui.poller import Detail, Row

# -- the domain table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None  # content width (None: automatic)
    sortable: bool = True
    justify: str = "left"


COLUMNS = {
    "domid": Column("domid", "dom", 5, justify="right"),
    "name": Column("name", "name", 14),
    "verdict": Column("verdict", "verdict", 12),
    "flag": Column("flag", "flag", 5),
    "out": Column("out", "out fill", 13),
    "in": Column("in", "in", 4, justify="right"),
    "idx": Column("idx", "out cons/prod", 21, justify="right"),
    "rate": Column("rate", "B/s", 5, justify="right"),
    "moved": Column("moved", "moved", 5, justify="right"),
    "attached": Column("attached", "attached", 10),
}
# Which columns show at which terminal width (xentop-style: the essentials first).
TIERS = (
    (0, ("domid", "name", "verdict", "out", "rate", "moved", "attached")),
    (100, ("domid", "name", "verdict", "flag", "out", "in", "rate", "moved", "attached")),
    (118, ("domid", "name", "verdict", "flag", "out", "in", "idx", "rate", "moved", "attached")),
)
SORT_ORDER = ("domid", "name", "verdict", "out", "rate", "moved")
SORT_LABEL = {"domid": "domid", "name": "name", "verdict": "verdict (most urgent first)",
              "out": "out fill", "rate": "output rate", "moved": "time since the ring moved",
              "flag": "flag", "in": "in fill", "idx": "out cons", "attached": "attached"}


def columns_for(width: int) -> tuple[str, ...]:
    cols = TIERS[0][1]
    for min_w, c in TIERS:
        if width >= min_w:
            cols = c
    return cols


def sort_key(col: str, r: Row):
    if col == "domid":
        return (r.domid,)
    if col == "name":
        return (r.name.lower(), r.domid)
    if col == "verdict":
        return (health.SEVERITY.get(r.state, 99), r.domid)
    if col == "out":
        return (-(r.out_fill if r.out_fill is not None else -1), r.domid)
    if col == "rate":
        return (-r.rate, r.domid)
    if col == "moved":  # longest-stuck first
        return (-(r.quiet if r.quiet is not None else -1.0), r.domid)
    if col == "flag":
        return (r.flag, r.domid)
    if col == "in":
        return (-(r.in_fill or 0), r.domid)
    if col == "idx":
        return (r.out_cons or 0, r.domid)
    if col == "attached":
        return (r.attached == "", r.attached, r.domid)
    return (r.domid,)


def matches(r: Row, query: str) -> bool:
    """Filter: every word must match the name, the domid or the verdict."""
    for word in query.lower().split():
        neg = word.startswith("!") and len(word) > 1
        w = word[1:] if neg else word
        hit = w in r.name.lower() or w == str(r.domid) or r.state.startswith(w)
        if hit == neg:
            return False
    return True


def cell_value(col: str, r: Row):
    """The data a cell shows (compared between frames: only changed cells update)."""
    if col == "domid":
        return r.domid
    if col == "name":
        return r.name
    if col == "verdict":
        return r.state
    if col == "flag":
        return r.flag
    if col == "out":
        return r.out_fill
    if col == "in":
        return r.in_fill
    if col == "idx":
        return (r.out_cons, r.out_prod)
    if col == "rate":
        return render.fmt_rate(r.rate)
    if col == "moved":
        return render.fmt_age(r.quiet)
    if col == "attached":
        return r.attached
    raise KeyError(col)


def render_cell(col: str, r: Row, pal: render.Palette) -> Text:
    if col == "domid":
        return Text(str(r.domid), justify="right")
    if col == "name":
        return Text(render.truncate(r.name, COLUMNS["name"].width or 14))
    if col == "verdict":
        return Text(r.state, style=pal.state(r.state))
    if col == "flag":
        style = pal["warning"] if r.flag in render.WARN_FLAGS and r.flag_effect != "ignored" else pal["foreground-muted"]
        return Text(render.FLAG_SHORT.get(r.flag, r.flag), style=style)
    if col == "out":
        return render.gauge(r.out_fill, ring.OUT_SIZE, 8, pal)
    if col == "in":
        return Text("-" if r.in_fill is None else str(r.in_fill), justify="right",
                    style=pal["error"] if r.in_fill and r.in_fill > ring.IN_SIZE else Style())
    if col == "idx":
        if r.out_cons is None:
            return Text("-", justify="right")
        return Text(f"{r.out_cons}/{r.out_prod}", justify="right")
    if col == "rate":
        return Text(render.fmt_rate(r.rate), justify="right")
    if col == "moved":
        return Text(render.fmt_age(r.quiet), justify="right")
    if col == "attached":
        return Text(render.truncate(r.attached, COLUMNS["attached"].width or 10) or "-",
                    style=pal["accent"] if r.attached else pal["foreground-muted"])
    raise KeyError(col)


class Cell:
    """A table cell drawn on demand: DataTable renders only the visible rows, so the
    ``Text`` for a cell is built only when it is on screen (1,000 domains, 10 columns)."""

    __slots__ = ("col", "row", "pal", "domid")

    def __init__(self, col: str, row: Row, pal: render.Palette) -> None:
        self.col = col
        self.row = row
        self.pal = pal
        self.domid = row.domid

    def __rich__(self) -> Text:
        return render_cell(self.col, self.row, self.pal)

    def __str__(self) -> str:
        return render_cell(self.col, self.row, self.pal).plain


class DomainTable(DataTable):
    """The live domain list. Rows are keyed by domid; only changed cells are updated and
    the cursor follows its domain while rows come, go and move."""

    DEFAULT_CSS = """
    DomainTable { height: 1fr; }
    """

    def __init__(self, **kw) -> None:
        # Cells keep their own colours on the cursor row (a full ring stays red).
        super().__init__(cursor_type="row", zebra_stripes=False, cursor_foreground_priority="renderable", **kw)
        self.cols: tuple[str, ...] = ()
        self.sort_col = "domid"
        self.sort_reverse = False
        self.query_text = ""
        self.shown: dict[int, dict[str, object]] = {}  # domid -> column -> value shown
        self.drawn: dict[int, Row] = {}  # domid -> the Row object last drawn
        self.order: list[int] = []
        self.selected: int | None = None
        self.palette_ = render.PLAIN
        self._rows: tuple[Row, ...] = ()
        self._moving_cursor = False

    def _update_dimensions(self, new_rows) -> None:
        """Every column here has a fixed width and every row is one line high, so skip
        DataTable's measuring of each new cell (a quarter of a second for 1,000 rows)
        and only size the scrollable area (textual 8.2.8 internals; pinned)."""
        width = sum(c.get_render_width(self) for c in self.columns.values()) + self._row_label_column_width
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(width, self._total_row_height + header)

    # -- columns --------------------------------------------------------------------------
    def set_columns(self, cols: tuple[str, ...]) -> bool:
        if cols == self.cols:
            return False
        self.cols = cols
        self.clear(columns=True)
        self.shown.clear()
        self.drawn.clear()
        self.order = []
        for c in cols:
            col = COLUMNS[c]
            self.add_column(self._label(c), width=col.width, key=c)
        return True

    def _label(self, c: str) -> Text:
        col = COLUMNS[c]
        label = col.label
        if c == self.sort_col:
            label += " ▼" if not self.sort_reverse else " ▲"
        return Text(label, justify=col.justify, style=Style(bold=True))

    def relabel(self) -> None:
        for c in self.cols:
            if c in self.columns:
                self.columns[c].label = self._label(c)  # type: ignore[index]
        self._update_count += 1
        self._require_update_dimensions = True
        self.refresh()

    # -- data -----------------------------------------------------------------------------
    def apply(self, rows: tuple[Row, ...], force: bool = False) -> None:
        """Show ``rows`` (the whole current list): filter, diff, sort, keep the cursor."""
        self._rows = rows
        pal = self.palette_
        q = self.query_text
        visible = [r for r in rows if not q or matches(r, q)]
        col = self.sort_col
        visible.sort(key=lambda r: sort_key(col, r), reverse=self.sort_reverse)
        want = [r.domid for r in visible]
        wanted = set(want)
        # rows that went away
        for d in [d for d in self.shown if d not in wanted]:
            self.remove_row(str(d))
            del self.shown[d]
            self.drawn.pop(d, None)
        cols = self.cols
        drawn = self.drawn
        data = self._data
        changed: set[tuple[RowKey, ColumnKey]] = set()
        for r in visible:
            d = r.domid
            if not force and drawn.get(d) is r:
                continue  # the very Row object already on screen: nothing changed
            drawn[d] = r
            shown = self.shown.get(d)
            if shown is None:
                values = {c: cell_value(c, r) for c in cols}
                self.add_row(*(Cell(c, r, pal) for c in cols), key=str(d))
                self.shown[d] = values
                continue
            cells = None
            for c in cols:
                v = cell_value(c, r)
                if force or shown.get(c) != v:
                    shown[c] = v
                    if cells is None:
                        rk = RowKey(str(d))
                        cells = data[rk]
                    # DataTable.update_cell() refreshes the widget once per cell; set the
                    # cell and invalidate once per frame instead (textual 8.2.8; pinned).
                    ck = ColumnKey(c)
                    cells[ck] = Cell(c, r, pal)
                    changed.add((rk, ck))
        if changed:
            if force:
                self._update_count += 1  # everything: DataTable's own way
                self.refresh()
            else:
                self._invalidate_cells(changed)
        if want != self.order:
            pos = {d: i for i, d in enumerate(want)}
            self.sort(cols[0], key=lambda cell: pos[cell.domid])
            self.order = want
        self.restore_cursor()

    def _invalidate_cells(self, cells: set[tuple[RowKey, ColumnKey]]) -> None:
        """Forget the cached renders of just these cells and of the rows and lines that
        hold them, and repaint those rows. (Bumping ``_update_count``, as DataTable's
        own updates do, throws away every cached cell and line: the whole visible table
        was rendered again every frame, three quarters of the TUI's CPU at 1,000 domains.)
        Relies on every row being one line high (fixed widths, no wrapping) and no fixed
        rows (textual 8.2.8 internals; pinned)."""
        rows = {rk for rk, _ in cells}
        idx = {i for i in map(self._row_locations.get, rows) if i is not None}
        top = self.header_height if self.show_header else 0
        ys = {i + top for i in idx}
        for cache, hit in ((self._cell_render_cache, lambda k: (k[0], k[1]) in cells),
                           (self._row_render_cache, lambda k: k[0] in rows),
                           (self._row_renderable_cache, lambda k: k[1] in idx),
                           (self._line_cache, lambda k: k[0] in ys)):
            for k in [k for k in cache.keys() if hit(k)]:
                cache.discard(k)
        # Repaint the changed rows that are on screen: one region from the first to the
        # last (DataTable.refresh_row sums the heights of every row above: O(n) a row).
        first = self.scroll_offset.y
        shown = [i for i in idx if first <= i < first + self.size.height]
        if shown:
            lo, hi = min(shown), max(shown)
            self._refresh_region(Region(0, top + lo, max(self.virtual_size.width, self.size.width), hi - lo + 1))

    def restore_cursor(self) -> None:
        if not self.order:
            return
        if self.selected is None or self.selected not in self.shown:
            row = min(self.cursor_row, len(self.order) - 1) if self.cursor_row >= 0 else 0
            self.selected = self.order[max(0, row)]
        try:
            index = self.get_row_index(str(self.selected))
        except Exception:
            return
        if index != self.cursor_row:
            self._moving_cursor = True
            self.move_cursor(row=index, animate=False, scroll=True)
            self._moving_cursor = False

    def row_for(self, domid: int | None) -> Row | None:
        if domid is None:
            return None
        for r in self._rows:
            if r.domid == domid:
                return r
        return None

    def selected_row(self) -> Row | None:
        return self.row_for(self.selected)


# -- the status line ----------------------------------------------------------------------


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; }
    """


def status_text(host: dict, rows: tuple[Row, ...], shown: int, *, interval: float, paused: bool,
                query: str, sort: str, reverse: bool, read_only: bool, error: str | None,
                pal: render.Palette, width: int = 80) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("xcinspect", style=pal["primary"] + Style(bold=True))
    kind = host.get("kind")
    if kind:
        ver = host.get("xen_version", "?")
        t.append(f"  {kind}" + ("" if kind == "sim" else f" xen {ver}"))
        layout = host.get("flag_layout")
        if layout and width >= 100:
            t.append(f" · flag layout {layout}")
        if host.get("xenconsoled_pid") is None and kind:
            t.append(" · xenconsoled down", style=pal["warning"])
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    t.append(f"  {len(rows)} dom")
    for state in health.STATES:
        n = counts.get(state)
        if n and state in health.PROBLEM_STATES:
            t.append("  ")
            t.append(f"{n} {state}", style=pal.state(state))
    if query:
        t.append(f"  filter '{query}': {shown}", style=pal["accent"])
    t.append(f"  every {interval:g}s")
    if paused:
        t.append("  PAUSED", style=pal["warning"] + Style(bold=True, reverse=True))
    if read_only:
        t.append("  READ-ONLY", style=pal["accent"] + Style(bold=True))
    if error:
        t.append(f"  {error}", style=pal["error"])
    return t


# -- the detail panel ---------------------------------------------------------------------


def sentence(r: Row, keys: dict[str, str], read_only: bool) -> str:
    """The verdict as a sentence with the suggested key (as the operator has it bound)."""
    act = r.action
    if act in ("connect", "attach", "flag-connected"):
        if read_only:
            return f"{r.reason} (read-only: actions are disabled)"
        binding = "set-flag-connected" if act == "flag-connected" else act
        key = keys.get(binding)
        default = {"connect": "c", "attach": "a", "set-flag-connected": "C"}[binding]
        if key and key != default:
            what = "set the flag back to connected" if act == "flag-connected" else act
            return f"{r.reason}: press {key} to {what}"
    return health.Verdict(r.state, r.reason, act).sentence()


FLAG_MEANING = {
    "drops-output": "a Linux >= 7.1 guest throws its output away",
    "ignored": "this guest ignores it",
    "qemu-console": "QEMU's console: always 1",
}


def facts_text(r: Row, pal: render.Palette) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("flag ", style=Style(bold=True))
    t.append(f"{r.flag} ({r.flag_layout})",
             style=pal["warning"] if r.flag in render.WARN_FLAGS and r.flag_effect != "ignored" else Style())
    meaning = FLAG_MEANING.get(r.flag_effect or "")
    if meaning is None and r.flag_layout == "xen-4.21" and r.flag == "connected":
        meaning = "xenconsoled connected once; says nothing about now"
    if meaning:
        t.append(f": {meaning}", style=Style(italic=True))
    t.append(" · attached ", style=Style(bold=True))
    t.append(r.attached or "nobody", style=pal["accent"] if r.attached else Style())
    return t


def keys_text(d: Detail | None, pal: render.Palette) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if d is None or not d.keys:
        t.append("no console keys", style=pal["foreground-muted"])
        return t
    width = max(len(k) for k, _ in d.keys)
    for i, (k, v) in enumerate(d.keys):
        if i:
            t.append("\n")
        t.append(k.ljust(width) + " ", style=pal["foreground-muted"])
        t.append(v)
    return t


def output_text(d: Detail | None, lines: int, width: int, pal: render.Palette) -> Text:
    """The last ``lines`` lines of output: what a backend already read in the muted colour,
    what is still unread in the normal one."""
    if d is None or (not d.consumed and not d.unread):
        return Text("(no output in the ring)", style=pal["foreground-muted"])
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(d.consumed.expandtabs(8), style=pal["foreground-muted"])
    t.append(d.unread.expandtabs(8))
    parts = t.split("\n", allow_blank=True)
    if parts and not parts[-1].plain:
        parts = parts[:-1]
    parts = parts[-lines:] if lines > 0 else []
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, p in enumerate(parts):
        if i:
            out.append("\n")
        p.truncate(max(1, width), overflow="ellipsis")
        out.append_text(p)
    return out


class DetailPanel(Vertical):
    """Everything about the selected domain."""

    def compose(self):
        yield Static(id="verdict")
        with Horizontal(id="detail-body"):
            with Vertical(id="detail-left"):
                yield Static(id="rings")
                yield Static(id="history")
                yield Static(id="facts")
            with Vertical(id="detail-right"):
                yield Static(id="output")
                yield Static(id="keys")

    def on_mount(self) -> None:
        self.query_one("#output").border_title = "last output"
        self.query_one("#keys").border_title = "xenstore console/"
        self.border_title = "no domain selected"

    def show(self, r: Row | None, d: Detail | None, *, keys: dict[str, str], read_only: bool,
             pal: render.Palette) -> None:
        if r is None:
            self.border_title = "no domain selected"
            for w in ("#verdict", "#rings", "#history", "#facts", "#output", "#keys"):
                self.query_one(w, Static).update("")
            return
        if d is not None and d.domid != r.domid:
            d = None
        title = Text()
        title.append(f"dom {r.domid} ")
        title.append(render.truncate(r.name, 32), style=Style(bold=True))
        title.append(" · ")
        title.append(r.state, style=pal.state(r.state))
        self.border_title = title
        verdict = Text(sentence(r, keys, read_only), style=pal.state(r.state) if r.problem else Style())
        self.query_one("#verdict", Static).update(verdict)
        left = self.query_one("#detail-left")
        lw = left.content_region.width or 40
        ring_w = max(12, min(64, lw - 12))
        rings = Text(no_wrap=True)
        rings.append_text(render.ring_picture("out", r.out_cons, r.out_prod, ring.OUT_SIZE, ring_w, pal))
        rings.append("\n")
        rings.append_text(render.ring_picture("in ", r.in_cons, r.in_prod, ring.IN_SIZE, ring_w, pal))
        rings.append("\n")
        rings.append_text(render.ring_numbers("out", r.out_cons, r.out_prod, ring.OUT_SIZE, pal))
        rings.append("\n")
        rings.append_text(render.ring_numbers("in ", r.in_cons, r.in_prod, ring.IN_SIZE, pal))
        self.query_one("#rings", Static).update(rings)
        hist = Text(no_wrap=True)
        hist.append("out fill history ", style=Style(bold=True))
        values = d.history if d is not None else ()
        hist.append_text(render.history_text(values, ring.OUT_SIZE, max(4, lw - 18), pal))
        self.query_one("#history", Static).update(hist)
        self.query_one("#facts", Static).update(facts_text(r, pal))
        out = self.query_one("#output", Static)
        h = max(1, out.content_region.height or out.size.height - 2 or 4)
        w = max(10, out.content_region.width or 40)
        out.update(output_text(d, h, w, pal))
        self.query_one("#keys", Static).update(keys_text(d, pal))


# -- the console view ---------------------------------------------------------------------


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


__all__ = ["DomainTable", "DetailPanel", "StatusBar", "ConsoleView", "status_text"]
