"""Every use of a Textual private, in one place (memray keeps its ``_textual_hacks.py`` the
same way). Written for **textual 8.2.8** (pinned exactly in pyproject.toml): check each
function against ``textual/widgets/_data_table.py`` before moving the pin.

All of them serve the domain table at 1,000 domains (bench/README.md, issue 7): DataTable
measures every new cell and throws away every cached line on any update, which cost a
quarter of a second per 1,000 rows and three quarters of the TUI's CPU.
"""

from __future__ import annotations

from typing import Any

from textual.geometry import Region, Size
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

TEXTUAL_VERSION = "8.2.8"

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


def invalidate_cells(table: DataTable, cells: set[CellKey]) -> None:
    """Forget the cached renders of just these cells and of the rows and lines that hold
    them, and repaint those rows. Relies on every row being one line high (fixed widths,
    no wrapping) and no fixed rows."""
    rows = {rk for rk, _ in cells}
    idx = {i for i in map(table._row_locations.get, rows) if i is not None}
    top = table.header_height if table.show_header else 0
    ys = {i + top for i in idx}
    for cache, hit in ((table._cell_render_cache, lambda k: (k[0], k[1]) in cells),
                       (table._row_render_cache, lambda k: k[0] in rows),
                       (table._row_renderable_cache, lambda k: k[1] in idx),
                       (table._line_cache, lambda k: k[0] in ys)):
        for k in [k for k in cache.keys() if hit(k)]:
            cache.discard(k)
    # Repaint the changed rows that are on screen: one region from the first to the
    # last (DataTable.refresh_row sums the heights of every row above: O(n) a row).
    first = table.scroll_offset.y
    shown = [i for i in idx if first <= i < first + table.size.height]
    if shown:
        lo, hi = min(shown), max(shown)
        table._refresh_region(Region(0, top + lo, max(table.virtual_size.width, table.size.width), hi - lo + 1))


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
