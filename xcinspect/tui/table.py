"""The live domain table: rows keyed by domid, only changed cells redrawn, the cursor
following its domain while rows come, go and move. What each column shows is data in
``columns``; the DataTable internals it leans on are in ``_textual_hacks``."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.reactive import var
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from xcinspect.tui import _textual_hacks, render
from xcinspect.tui.columns import COLUMNS, columns_for, matches, render_cell, sort_function
from xcinspect.tui.model import Row


class Cell:
    """A table cell drawn on demand: DataTable renders only the visible rows, so the
    ``Text`` for a cell is built only when it is on screen (1,000 domains, 10 columns)."""

    __slots__ = ("col", "row", "pal", "now", "domid")

    def __init__(self, col: str, row: Row, pal: render.Palette, now: float) -> None:
        self.col = col
        self.row = row
        self.pal = pal
        self.now = now  # the time its value was taken at (an age is drawn as of then)
        self.domid = row.domid

    def __rich__(self) -> Text:
        return render_cell(self.col, self.row, self.pal, self.now)

    def __str__(self) -> str:
        return render_cell(self.col, self.row, self.pal, self.now).plain


class DomainTable(DataTable):
    """The live domain list. Rows are keyed by domid; only changed cells are updated and
    the cursor follows its domain while rows come, go and move."""

    DEFAULT_CSS = """
    DomainTable { height: 1fr; }
    """
    # DataTable's home/end scroll sideways in row mode: here they go to the first/last row.
    BINDINGS = [Binding("home", "scroll_top", "First", show=False),
                Binding("end", "scroll_bottom", "Last", show=False)]

    # The table's state, as reactives: whoever changes one (keys, the palette, the filter
    # line) just sets it, and the table redraws itself; screens watch them for the rest.
    domains: var[tuple[Row, ...]] = var((), always_update=True, init=False)  # the whole current list
    sorting: var[tuple[str, bool]] = var(("domid", False), always_update=True, init=False)  # column, reversed
    query_text: var[str] = var("", always_update=True, init=False)  # the filter
    selected: var[int | None] = var(None, always_update=True, init=False)  # the domain under the cursor

    def __init__(self, **kw) -> None:
        # Cells keep their own colours on the cursor row (a full ring stays red).
        super().__init__(cursor_type="row", zebra_stripes=False, cursor_foreground_priority="renderable", **kw)
        self.cols: tuple[str, ...] = ()
        self.shown: dict[int, dict[str, object]] = {}  # domid -> column -> value shown
        self.drawn: dict[int, Row] = {}  # domid -> the Row object last drawn
        # domid -> a newer Row not drawn yet: off screen, a row's cells are compared and set
        # only when it comes into view (5,000 rows changing every second, 55 on screen)
        self.pending: dict[int, Row] = {}
        self.order: list[int] = []
        # domid -> the RowKey DataTable made for it: its dicts then hit by identity, with no
        # StringKey.__eq__ call (5,000 lookups when the rows are re-sorted)
        self.keys: dict[int, RowKey] = {}
        self.palette_ = render.PLAIN
        # the time the rows are shown at (the frame's monitor clock: the screen sets it with
        # the rows); the ages in view are re-checked against it every frame
        self.now = 0.0
        self.aging: tuple[str, ...] = ()  # the shown columns whose cells change with the time alone
        self._rows: tuple[Row, ...] = ()
        self._moving_cursor = False

    def on_mount(self) -> None:
        self.palette_ = getattr(self.app, "pal", render.PLAIN)
        # A new theme reaches the table as Textual's theme signal (the app has rebuilt its
        # palette by the time the callback runs: the signal is delivered after a message round).
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme) -> None:
        self.palette_ = getattr(self.app, "pal", self.palette_)
        self.apply(self._rows, force=True)

    @property
    def sort_col(self) -> str:
        return self.sorting[0]

    @property
    def sort_reverse(self) -> bool:
        return self.sorting[1]

    def watch_domains(self, rows: tuple[Row, ...]) -> None:
        self.apply(rows)

    def watch_sorting(self) -> None:
        self.relabel()
        self.apply(self._rows)

    def watch_query_text(self) -> None:
        self.apply(self._rows)

    def watch_selected(self, domid: int | None) -> None:
        self.restore_cursor()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The operator moved the cursor (not the table keeping it on its domain)."""
        if self._moving_cursor or event.row_key is None or event.row_key.value is None:
            return
        if event.cursor_row != self.cursor_row:
            return  # stale: the cursor moved again since (acting on it would ping-pong the selection)
        domid = int(event.row_key.value)
        if domid != self.selected:
            self.selected = domid

    def _update_dimensions(self, new_rows) -> None:
        """DataTable's hook, replaced: fixed widths, one line per row (see _textual_hacks)."""
        _textual_hacks.size_without_measuring(self)

    # -- columns --------------------------------------------------------------------------
    def show_columns_for(self, width: int) -> None:
        """The columns for this terminal width; everything drawn again if they changed."""
        if self.set_columns(columns_for(width)):
            self.apply(self._rows, force=True)

    def set_columns(self, cols: tuple[str, ...]) -> bool:
        if cols == self.cols:
            return False
        self.cols = cols
        self.aging = tuple(c for c in cols if COLUMNS[c].ages)
        self.clear(columns=True)
        self.shown.clear()
        self.drawn.clear()
        self.pending.clear()
        self.keys.clear()
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
        _textual_hacks.invalidate_everything(self, dimensions=True)

    # -- data -----------------------------------------------------------------------------
    def apply(self, rows: tuple[Row, ...], force: bool = False) -> None:
        """Show ``rows`` (the whole current list): filter, diff, sort, keep the cursor.
        A row off screen only remembers its newest Row (``pending``); its cells are
        compared and set when it comes into view (a re-sort, a scroll, a resize)."""
        self._rows = rows
        pal = self.palette_
        now = self.now
        q = self.query_text
        visible = [r for r in rows if matches(r, q)] if q else list(rows)
        col, reverse = self.sorting
        visible.sort(key=sort_function(col), reverse=reverse)  # the column's own key: 5,000 calls, not 15,000
        want = [r.domid for r in visible]
        wanted = set(want)
        shown_of, drawn, pending = self.shown, self.drawn, self.pending
        # rows that went away
        for d in [d for d in shown_of if d not in wanted]:
            self.remove_row(self.keys.pop(d))
            del shown_of[d]
            drawn.pop(d, None)
            pending.pop(d, None)
        cols = self.cols
        for r in visible:
            d = r.domid
            if d in shown_of:
                if force or drawn.get(d) is not r:
                    pending[d] = r  # drawn below if it is in view
                else:
                    pending.pop(d, None)  # the Row on screen is the newest again
                continue
            drawn[d] = r
            shown_of[d] = {c: COLUMNS[c].value(r, now) for c in cols}
            self.keys[d] = self.add_row(*(Cell(c, r, pal, now) for c in cols), key=str(d))
        if want != self.order:
            def differs(was: RowKey, now: RowKey) -> list[ColumnKey]:
                a, b = shown_of.get(int(was.value)), shown_of.get(int(now.value))  # type: ignore[arg-type]
                return [ColumnKey(c) for c in cols if a is None or b is None or a.get(c) != b.get(c)]

            keys = self.keys
            _textual_hacks.reorder_rows(self, [keys[d] for d in want], differs)
            self.order = want
        if force:
            self._draw(list(pending), force=True)
        else:
            self.draw_in_view()
        self.restore_cursor()

    def in_view(self) -> list[int]:
        """The domids of the rows in view now, and a row either side."""
        top = self.header_height if self.show_header else 0
        first = max(0, int(self.scroll_offset.y) - 1)
        return self.order[first:first + max(0, self.size.height - top) + 2]

    def draw_in_view(self) -> None:
        """Bring the rows in view up to date with their newest Row, and their ages with the time."""
        if self.pending or self.aging:
            self._draw([d for d in self.in_view() if d in self.shown])

    def _draw(self, domids: list[int], force: bool = False) -> None:
        """Set the changed cells of these rows from their pending Rows (a row with no newer
        Row: its ages only), and repaint just those."""
        pal, now, pending = self.palette_, self.now, self.pending
        values_of = [(c, COLUMNS[c].value) for c in self.cols]
        ages_of = [(c, COLUMNS[c].value) for c in self.aging]
        changed: set[tuple[RowKey, ColumnKey]] = set()
        for d in domids:
            r = pending.pop(d, None)
            if r is None:
                r = self.drawn[d]
                check = ages_of
            else:
                self.drawn[d] = r
                check = values_of
            shown = self.shown[d]
            cells = None
            for c, value in check:
                v = value(r, now)
                if force or shown.get(c) != v:
                    shown[c] = v
                    if cells is None:
                        rk = self.keys[d]
                        cells = _textual_hacks.row_cells(self, rk)
                    # DataTable.update_cell() refreshes the widget once per cell; set the
                    # cell and invalidate once per frame instead.
                    ck = ColumnKey(c)
                    cells[ck] = Cell(c, r, pal, now)
                    changed.add((rk, ck))
        if changed:
            if force:
                _textual_hacks.invalidate_everything(self)
            else:
                _textual_hacks.invalidate_cells(self, changed)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        self.draw_in_view()  # rows scrolled into view: their newest cells before they are drawn
        super().watch_scroll_y(old_value, new_value)

    def on_resize(self) -> None:
        self.draw_in_view()

    def restore_cursor(self) -> None:
        if not self.order:
            return
        if self.selected is None or self.selected not in self.shown:
            row = min(self.cursor_row, len(self.order) - 1) if self.cursor_row >= 0 else 0
            # the cursor's domain went away (or none yet): take the row under it, quietly
            self.set_reactive(DomainTable.selected, self.order[max(0, row)])
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
