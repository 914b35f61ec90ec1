"""Every use of a Textual private, in one place (memray keeps its ``_textual_hacks.py`` the
same way). Written for **textual 8.2.8** (pinned exactly in pyproject.toml): check each
function against ``textual/widgets/_data_table.py`` before moving the pin.

All of them serve the domain table at 1,000 domains (bench/README.md, issue 7): DataTable
measures every new cell and throws away every cached line on any update, which cost a
quarter of a second per 1,000 rows and three quarters of the TUI's CPU.
"""

from __future__ import annotations

from typing import Any

from textual._two_way_dict import TwoWayDict
from textual.geometry import Region, Size
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

TEXTUAL_VERSION = "8.2.8"
# A partial update's span longer than this is written whole, not compared cell by cell
# with what the terminal shows (new output on the attach screen rewrites whole lines).
LONG_SPAN = 48

CellKey = tuple[RowKey, ColumnKey]


def size_without_measuring(table: DataTable) -> None:
    """Replacement for ``DataTable._update_dimensions``: every column has a fixed width
    and every row is one line high, so skip measuring each new cell and only size the
    scrollable area."""
    width = sum(c.get_render_width(table) for c in table.columns.values()) + table._row_label_column_width
    header = table.header_height if table.show_header else 0
    table.virtual_size = Size(width, table._total_row_height + header)


def row_cells(table: DataTable, row_key: RowKey) -> dict[ColumnKey, Any]:
    """The live dict of one row's cells: setting a cell in it skips ``update_cell``'s
    refresh of the whole widget per cell (the caller invalidates once per frame)."""
    return table._data[row_key]


def invalidate_everything(table: DataTable, *, dimensions: bool = False) -> None:
    """DataTable's own way to redraw after a change: every cached cell and line goes."""
    table._update_count += 1
    if dimensions:
        table._require_update_dimensions = True
    table.refresh()


def _forget(table: DataTable, cell_hit, rows: set[RowKey], indices: set[int]) -> None:
    """Drop the cached renders of the cells ``cell_hit`` picks, of these rows, and of the
    lines at these row indices (one line a row)."""
    top = table.header_height if table.show_header else 0
    ys = {i + top for i in indices}
    for cache, hit in ((table._cell_render_cache, cell_hit),
                       (table._row_render_cache, lambda k: k[0] in rows),
                       (table._row_renderable_cache, lambda k: k[1] in indices),
                       (table._line_cache, lambda k: k[0] in ys)):
        for k in [k for k in cache.keys() if hit(k)]:
            cache.discard(k)


def invalidate_cells(table: DataTable, cells: set[CellKey]) -> None:
    """Forget the cached renders of just these cells and of the rows and lines that hold
    them, and repaint those rows. Relies on every row being one line high (fixed widths,
    no wrapping) and no fixed rows."""
    rows = {rk for rk, _ in cells}
    idx = {i for i in map(table._row_locations.get, rows) if i is not None}
    top = table.header_height if table.show_header else 0
    _forget(table, lambda k: (k[0], k[1]) in cells, rows, idx)
    # Repaint just the changed cells that are on screen, each its own region (Textual
    # writes every cell of a dirty region to the terminal: one band from the first
    # changed row to the last rewrote whole rows for an age that moved by a second).
    # Row positions come from _row_locations (DataTable.refresh_row and _get_cell_region
    # sum the heights of every row above: O(n) a row).
    first = table.scroll_offset.y
    last = first + table.size.height - top  # rows under the header that are on screen
    spans = column_spans(table)
    regions = []
    for rk, ck in cells:
        i = table._row_locations.get(rk)
        span = spans.get(ck)
        if i is None or span is None or not first <= i < last:
            continue
        regions.append(Region(span[0], top + i, span[1], 1).translate(-table.scroll_offset))
    if regions:
        table.refresh(*regions)


def reorder_rows(table: DataTable, order: list[RowKey], differs) -> None:
    """``DataTable.sort`` without throwing every cached line away (issue 15): the table is
    sorted by verdict, and a console whose verdict flips moves its row every other frame.

    ``order`` is every row key in its new order. Only the rows whose index changed lose
    their cached renders (a cell's render carries its row index as click metadata), and
    only the lines whose occupant changed lose theirs. Of those lines on screen, only the
    cells that differ between the old and the new occupant are repainted: ``differs(old,
    new)`` gives their column keys (the cursor row is repainted whole by ``move_cursor``
    when the cursor follows its domain). Relies on one-line rows and no fixed rows, as
    ``invalidate_cells``."""
    old = table._row_locations
    before = {i: old.get_key(i) for i in range(len(order))}
    table._row_locations = TwoWayDict({rk: i for i, rk in enumerate(order)})
    moved_keys = {rk for i, rk in enumerate(order) if old.get(rk) != i}
    if not moved_keys:
        return
    moved_idx = {i for i, rk in enumerate(order) if before.get(i) != rk}
    table._offset_cache.clear()
    table._ordered_row_cache.clear()
    top = table.header_height if table.show_header else 0
    _forget(table, lambda k: k[0] in moved_keys, moved_keys, moved_idx)
    first = table.scroll_offset.y
    last = first + table.size.height - top
    spans = column_spans(table)
    regions = []
    for i in moved_idx:
        if not first <= i < last:
            continue
        was = before.get(i)
        columns = spans.keys() if was is None else differs(was, order[i])
        for ck in columns:
            span = spans.get(ck)
            if span is not None:
                regions.append(Region(span[0], top + i, span[1], 1).translate(-table.scroll_offset))
    if regions:
        table.refresh(*regions)


def column_spans(table: DataTable) -> dict[ColumnKey, tuple[int, int]]:
    """x and width of every column in the table's virtual space."""
    x = table._row_label_column_width
    out = {}
    for col in table.ordered_columns:
        w = col.get_render_width(table)
        out[col.key] = (x, w)
        x += w
    return out


def update_count(table: DataTable) -> int:
    """How many whole-table invalidations there were (tests check partial repaints)."""
    return table._update_count


def unnotify(app, notification) -> None:
    """Take a notification off the screen now (``App._unnotify``; Textual has no public
    way: the app coalesces repeated notifications with it)."""
    app._unnotify(notification)


def add_notification(app, notification) -> None:
    """Show a notification now, on the UI thread (what ``App._on_notify`` does with the
    message ``App.notify`` posts), so that the next one can replace it at once."""
    app._notifications.add(notification)
    app._refresh_notifications()


def crop_partial_updates() -> None:
    """Write only the cells of a partial update that the terminal does not already show,
    and each colour once (issue 15).

    ``ChopsUpdate.render_segments`` crops a widget's strip at the right end of a dirty
    span but not at the left: a changed cell in the middle of the table wrote its whole
    row from the table's left edge. This replacement crops both ends (what its
    ``__rich_console__`` twin's "TODO: crop to x extents" asks for), and within a span
    it skips the cells the terminal already shows: a shadow of the cells written since
    the last full render (per console) says what they are, so an age going from
    ``12s`` to ``13s`` writes one digit. Any full render (``LayoutUpdate``: the first
    frame, a resize, a new screen, a resume) or a change of size forgets the shadow; a
    cell not in it is written. And where ``Strip.render`` wraps every segment in its full
    SGR sequence and a reset (two true colours: ~40 bytes around a 7-cell age), the SGR
    state is carried across the update: a sequence only where the attributes change, one
    reset at the end; and no newline between lines (each span starts with a cursor
    move). Installed once, by the app; SVG screenshots are not touched."""
    from rich.cells import cell_len
    from rich.color import ColorSystem
    from textual._compositor import ChopsUpdate, InlineUpdate, LayoutUpdate
    from textual.strip import Strip

    if getattr(ChopsUpdate, "_xcinspect_cropped", False):
        return

    def render_segments(self, console) -> str:
        sequences: list[str] = []
        append = sequences.append
        chops = self.chops
        chop_ends = self.chop_ends
        color_system = console._color_system or ColorSystem.TRUECOLOR  # as Strip.render
        sgr = [""]  # the attributes the terminal has now ("" = reset)
        width = max((ends[-1] for ends in chop_ends if ends), default=0)
        shadow = _shadow(console, width, len(chops))
        for y, x1, x2 in self.spans:
            line = chops[y]
            ends = chop_ends[y]
            for end, (x, strip) in zip(ends, line.items()):
                if strip is None or x > x2 or end <= x1:
                    continue
                left = max(x, x1)
                if left != x or end > x2:
                    strip = strip.crop(left - x, min(end, x2) - x)
                known = shadow[y]
                n = strip.cell_length
                if n > LONG_SPAN:  # a screenful of new output (attach, a flood): written whole
                    known[left:left + n] = [None] * len(known[left:left + n])
                    append(f"\x1b[{y + 1};{left + 1}H")
                    _render_carrying_sgr(strip, color_system, sgr, append)
                else:
                    _write_strip(strip, y, left, known, color_system, sgr, append)
        if sgr[0]:
            append("\x1b[0m")
        return "".join(sequences)

    def _write_strip(strip: Strip, y: int, x: int, known: list, color_system, sgr: list[str], append) -> None:
        """One cropped strip from column ``x`` of line ``y``: ``Strip.render`` (Textual's own
        SGR codes) minus the cells ``known`` says the terminal shows, the reset and the
        full sequence around every segment."""
        width = len(known)
        at = None  # where the terminal's cursor is, if this strip moved it
        skipped: list[tuple[str, str]] = []  # known cells passed over since the last write
        for text, style, _ in strip:
            if not text:
                continue
            codes = "" if style is None else (style._ansi if style._ansi is not None
                                              else Strip.render_ansi(style, color_system))
            link = style is not None and style._link
            if link or (not text.isascii() and any(cell_len(ch) != 1 for ch in text)):
                # an OSC 8 hyperlink or a wide character: written whole, not remembered
                n = cell_len(text)
                append(f"\x1b[{y + 1};{x + 1}H")
                if link:
                    if sgr[0]:
                        append("\x1b[0m")
                        sgr[0] = ""
                    append(Strip.render_style(style, text, color_system))
                else:
                    if codes != sgr[0]:
                        append(f"\x1b[0;{codes}m" if codes else "\x1b[0m")
                        sgr[0] = codes
                    append(text)
                for i in range(x, min(x + n, width)):
                    known[i] = None
                x += n
                at, skipped = None, []
                continue
            for ch in text:
                cell = (ch, codes)
                if x < width and known[x] == cell:
                    skipped.append(cell)
                    x += 1
                    continue
                if at is None or skipped:
                    cup = f"\x1b[{y + 1};{x + 1}H"
                    if at is not None and len(skipped) < len(cup) and all(c[1] == sgr[0] for c in skipped):
                        append("".join(c[0] for c in skipped))  # cheaper than a cursor move
                    else:
                        append(cup)
                    skipped = []
                if codes != sgr[0]:
                    append(f"\x1b[0;{codes}m" if codes else "\x1b[0m")
                    sgr[0] = codes
                append(ch)
                if x < width:
                    known[x] = cell
                x += 1
                at = x if x < width else None  # past the last column: the cursor waits to wrap

    def _render_carrying_sgr(strip: Strip, color_system, sgr: list[str], append) -> None:
        """``Strip.render`` (Textual's own SGR codes), minus the reset and full sequence
        around every segment."""
        for text, style, _ in strip:
            if not text:
                continue
            if style is None:
                codes = ""
            else:
                codes = style._ansi if style._ansi is not None else Strip.render_ansi(style, color_system)
                if style._link:  # OSC 8 hyperlink: Textual's rendering, from a reset
                    if sgr[0]:
                        append("\x1b[0m")
                        sgr[0] = ""
                    append(Strip.render_style(style, text, color_system))
                    continue
            if codes != sgr[0]:
                append(f"\x1b[0;{codes}m" if codes else "\x1b[0m")
                sgr[0] = codes
            append(text)

    def forget_on_full_render(cls) -> None:
        full = cls.render_segments

        def render_segments(self, console) -> str:
            forget_terminal(console)
            return full(self, console)

        cls.render_segments = render_segments

    ChopsUpdate.render_segments = render_segments  # type: ignore[method-assign]
    forget_on_full_render(LayoutUpdate)
    forget_on_full_render(InlineUpdate)
    ChopsUpdate._xcinspect_cropped = True  # type: ignore[attr-defined]


def _shadow(console, width: int, height: int) -> list[list]:
    """The cells this console's terminal shows, as far as partial updates wrote them
    since the last full render: ``(character, SGR codes)`` or None (not known)."""
    shadow = getattr(console, "_xcinspect_shadow", None)
    if shadow is None or len(shadow) != height or (shadow and len(shadow[0]) != width):
        shadow = [[None] * width for _ in range(height)]
        console._xcinspect_shadow = shadow
    return shadow


def forget_terminal(console) -> None:
    """The terminal may show anything now (a full render, the app suspended or resumed):
    the next partial update writes every cell of its spans."""
    console._xcinspect_shadow = None
