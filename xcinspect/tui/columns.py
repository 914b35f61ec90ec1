"""The domain table's columns, as data: one ``Column`` per column says what a cell holds
(compared between frames: only changed cells are redrawn), how the column sorts, how a
cell is drawn, how wide it is and from which terminal width it shows (xentop-style: the
essentials first). Also the filter's matching rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text

from xcinspect.core import health, ring
from xcinspect.tui import render
from xcinspect.tui.model import Row

# Terminal width from which each priority's columns show.
PRIORITY_WIDTH = {0: 0, 1: 100, 2: 118, 3: 140}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None  # content width (None: automatic)
    value: Callable[[Row, float], Any]  # what the cell shows at a time (monitor clock), as data
    sort_key: Callable[[Row], tuple]
    render: Callable[[Row, render.Palette, float], Text]
    priority: int = 0  # 0: always shown; higher: only on wider terminals (PRIORITY_WIDTH)
    sort_label: str = ""  # "sorted by ..." (defaults to the key)
    sortable_by_key: bool = False  # one of the columns ``s`` cycles through (SORT_ORDER)
    justify: str = "left"
    until: int | None = None  # shown only below this terminal width (a wider column replaces it)
    ages: bool = False  # the cell changes with the time alone (an age): re-checked every frame in view


def _flag_style(r: Row, pal: render.Palette) -> Style:
    return pal["warning"] if r.flag in render.WARN_FLAGS and r.flag_effect != "ignored" else pal["foreground-muted"]


def _in_cell(r: Row, pal: render.Palette) -> Text:
    return Text("-" if r.in_fill is None else str(r.in_fill), justify="right",
                style=pal["error"] if r.in_fill and r.in_fill > ring.IN_SIZE else Style())


def _idx_cell(r: Row, pal: render.Palette) -> Text:
    if r.out_cons is None:
        return Text("-", justify="right")
    return Text(f"{r.out_cons}/{r.out_prod}", justify="right")


def _attached_cell(r: Row, pal: render.Palette, width: int = 10) -> Text:
    who = r.attached if width > 10 else r.attached.split(" (pid ")[0]  # narrow: who, not the pid
    return Text(render.truncate(who, width) or "-", style=pal["accent"] if r.attached else pal["foreground-muted"])


_COLUMNS = (
    Column("domid", "dom", 5, value=lambda r, now: r.domid, sort_key=lambda r: (r.domid,),
           render=lambda r, pal, now: Text(str(r.domid), justify="right"),
           sortable_by_key=True, justify="right"),
    Column("name", "name", 14, value=lambda r, now: r.name, sort_key=lambda r: (r.name.lower(), r.domid),
           render=lambda r, pal, now: Text(render.truncate(r.name, 14)), sortable_by_key=True),
    Column("verdict", "verdict", 12, value=lambda r, now: r.state,
           sort_key=lambda r: (health.SEVERITY.get(r.state, 99), r.domid),
           render=lambda r, pal, now: Text(r.state, style=pal.state(r.state)),
           sort_label="verdict (most urgent first)", sortable_by_key=True),
    Column("flag", "flag", 5, value=lambda r, now: (r.flag, r.flag_effect == "ignored"), sort_key=lambda r: (r.flag, r.domid),
           render=lambda r, pal, now: Text(render.FLAG_SHORT.get(r.flag, r.flag), style=_flag_style(r, pal)),
           priority=1),
    Column("out", "out fill", 13, value=lambda r, now: r.out_fill,
           sort_key=lambda r: (-(r.out_fill if r.out_fill is not None else -1), r.domid),
           render=lambda r, pal, now: render.gauge(r.out_fill, ring.OUT_SIZE, 8, pal),
           sort_label="out fill", sortable_by_key=True),
    Column("in", "in", 4, value=lambda r, now: r.in_fill, sort_key=lambda r: (-(r.in_fill or 0), r.domid),
           render=lambda r, pal, now: _in_cell(r, pal), priority=1, sort_label="in fill", justify="right"),
    Column("idx", "out cons/prod", 21, value=lambda r, now: (r.out_cons, r.out_prod),
           sort_key=lambda r: (r.out_cons or 0, r.domid), render=lambda r, pal, now: _idx_cell(r, pal), priority=2,
           sort_label="out cons", justify="right"),
    Column("rate", "B/s", 5, value=lambda r, now: render.fmt_rate(r.rate), sort_key=lambda r: (-r.rate, r.domid),
           render=lambda r, pal, now: Text(render.fmt_rate(r.rate), justify="right"),
           sort_label="output rate", sortable_by_key=True, justify="right"),
    Column("moved", "moved", 5, value=lambda r, now: render.fmt_age(r.quiet_at(now)),
           # longest-stuck first (the oldest move), never-sampled last
           sort_key=lambda r: (r.moved_at is None, r.moved_at or 0.0, r.domid),
           render=lambda r, pal, now: Text(render.fmt_age(r.quiet_at(now)), justify="right"),
           sort_label="time since the ring moved", sortable_by_key=True, justify="right", ages=True),
    Column("attached", "attached", 10, value=lambda r, now: r.attached,
           sort_key=lambda r: (r.attached == "", r.attached, r.domid), render=lambda r, pal, now: _attached_cell(r, pal),
           until=PRIORITY_WIDTH[3]),
    Column("attached-pid", "attached", 28, value=lambda r, now: r.attached,  # xcinspect attach (pid 4194304)
           sort_key=lambda r: (r.attached == "", r.attached, r.domid),
           render=lambda r, pal, now: _attached_cell(r, pal, 28), priority=3),
)

COLUMNS: dict[str, Column] = {c.key: c for c in _COLUMNS}
SORT_ORDER = tuple(c.key for c in _COLUMNS if c.sortable_by_key)
SORT_LABEL = {c.key: c.sort_label or c.key for c in _COLUMNS}


def columns_for(width: int) -> tuple[str, ...]:
    """The columns shown at this terminal width, in table order."""
    return tuple(c.key for c in _COLUMNS
                 if width >= PRIORITY_WIDTH[c.priority] and (c.until is None or width < c.until))


def sort_function(col: str) -> Callable[[Row], tuple]:
    """The sort key of a column (the domid column's for an unknown one)."""
    return (COLUMNS.get(col) or COLUMNS["domid"]).sort_key


def render_cell(col: str, r: Row, pal: render.Palette, now: float) -> Text:
    return COLUMNS[col].render(r, pal, now)


def matches(r: Row, query: str) -> bool:
    """Filter: every word must match the name, the domid or the verdict."""
    for word in query.lower().split():
        neg = word.startswith("!") and len(word) > 1
        w = word[1:] if neg else word
        hit = w in r.name.lower() or w == str(r.domid) or r.state.startswith(w)
        if hit == neg:
            return False
    return True
