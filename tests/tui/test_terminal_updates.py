"""What reaches the terminal (issue 15): the domain table repaints changed cells only and
Textual's partial updates are cropped to their dirty spans on both sides, with each SGR
sequence written once. Replaying every update the app writes, through a minimal
terminal, must give the screen a full render shows, characters and attributes, step
after step."""

from __future__ import annotations

import random
import re

import pytest
from rich.color import ColorSystem
from textual._compositor import CompositorUpdate
from textual.strip import Strip

from tests.tui.test_table_invalidation import TableApp, make_row
from xcinspect.tui import _textual_hacks
from xcinspect.tui.columns import columns_for
from xcinspect.tui.table import DomainTable

TOKEN = re.compile(r"\x1b\[(\d+);(\d+)H|\x1b\[([0-9;]*)m|\x1b\[[0-9;?$]*[A-Za-z]|(\n)|(\r)|([^\x1b\r\n])")


class Terminal:
    """Cursor moves, SGR, CR, LF and text; every other escape sequence ignored (ASCII
    and one-cell characters only, as in the table). A cell is (character, the SGR
    parameters in force when it was written, as Textual spells them after a reset)."""

    def __init__(self, width: int, height: int) -> None:
        self.lines = [[(" ", "")] * width for _ in range(height)]
        self.x = self.y = 0
        self.sgr = ""
        self.written = 0

    def feed(self, data: str) -> None:
        self.written += len(data)
        for m in TOKEN.finditer(data):
            row, col, sgr, lf, cr, ch = m.groups()
            if row is not None:
                self.y, self.x = int(row) - 1, int(col) - 1
            elif sgr is not None:
                self.sgr = "" if sgr in ("", "0") else sgr.removeprefix("0;")
            elif lf:
                self.y += 1
            elif cr:
                self.x = 0
            elif ch is not None:
                if 0 <= self.y < len(self.lines) and 0 <= self.x < len(self.lines[0]):
                    self.lines[self.y][self.x] = (ch, self.sgr)
                self.x += 1


def full_render(app) -> list[list[tuple[str, str]]]:
    """The screen as the compositor renders it whole, cell by cell, as ``Terminal`` keeps it."""
    system = app.console._color_system or ColorSystem.TRUECOLOR
    out = []
    for strip in app.screen._compositor.render_strips():
        cells = []
        for text, style, _ in strip:
            codes = "" if style is None else (style._ansi if style._ansi is not None
                                              else Strip.render_ansi(style, system))
            cells.extend((ch, codes) for ch in text)
        out.append(cells)
    return out


@pytest.mark.parametrize("sort", ["domid", "verdict"])
async def test_terminal_shows_what_a_full_render_shows(sort):
    """Sorted by verdict (the default), rows move as their verdicts change: the rows
    between a row's old and new place shift by one, and only what differs is written."""
    _textual_hacks.crop_partial_updates()
    rnd = random.Random(15)
    rows = {d: make_row(d, rnd) for d in range(1, 201)}
    app = TableApp()
    size = (140, 40)
    term = Terminal(*size)
    sizes: list[int] = []
    whole = moved = 0
    order: list[int] = []

    def display(screen, renderable) -> None:
        if isinstance(renderable, CompositorUpdate):
            data = renderable.render_segments(app.console)
            sizes.append(len(data))
            term.feed(data)

    async with app.run_test(size=size) as pilot:
        app._display = display  # the headless driver writes nothing: be the terminal
        table = app.query_one(DomainTable)
        table.set_columns(columns_for(size[0]))
        table.sorting = (sort, False)
        table.apply(tuple(rows.values()))
        await pilot.pause()
        app.screen.refresh()  # a full frame to start from
        await pilot.pause()
        for step in range(30):
            for d in rnd.sample(sorted(rows), 8):
                r = rows[d]
                # a cell or two change: the age, the rate, now and then the verdict
                rows[d] = make_row(d, rnd, name=r.name, state=r.state if rnd.random() < 0.7 else rnd.choice(
                    ("serviced", "stalled")), flag=r.flag, out_cons=r.out_cons, out_prod=r.out_prod,
                    out_fill=r.out_fill)
            if step % 7 == 6:
                table.scroll_to(y=rnd.randrange(0, 150), animate=False)
            if step % 5 == 2:  # the operator moves the cursor: it follows its domain from then on
                await pilot.press(rnd.choice(("down", "up", "pagedown")))
            before = _textual_hacks.update_count(table)
            table.apply(tuple(rows.values()))
            whole += _textual_hacks.update_count(table) != before
            await pilot.pause()
            await pilot.pause()
            assert term.lines == full_render(app), f"step {step}"
            moved += table.order != order
            order = list(table.order)
    assert sizes, "no update reached the terminal"
    if sort == "verdict":
        assert moved >= 20  # rows did move
    assert whole == 0  # and no step threw the whole table's cached lines away


async def test_a_cell_already_on_the_terminal_is_not_written_again():
    """An age going from 12s to 13s writes the one digit that changed (issue 15: bytes to
    the terminal), and a full render makes every cell of the next update written again."""
    _textual_hacks.crop_partial_updates()
    rnd = random.Random(3)
    rows = {d: make_row(d, rnd, state="idle", moved_at=-12.0, rate=0.0) for d in range(1, 21)}
    app = TableApp()
    size = (140, 30)
    term = Terminal(*size)
    written: list[str] = []

    def display(screen, renderable) -> None:
        if isinstance(renderable, CompositorUpdate):
            data = renderable.render_segments(app.console)
            written.append(data)
            term.feed(data)

    def text_of(data: str) -> str:
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", data)

    async with app.run_test(size=size) as pilot:
        app._display = display
        table = app.query_one(DomainTable)
        table.set_columns(columns_for(size[0]))
        table.apply(tuple(rows.values()))
        await pilot.pause()
        app.screen.refresh()
        await pilot.pause()
        for quiet, shown in ((13.0, None), (14.0, "4"), (15.0, "5")):
            rows[5] = rows[5]._replace(moved_at=-quiet)  # (the table's time stays 0)
            written.clear()
            table.apply(tuple(rows.values()))
            await pilot.pause()
            texts = [text_of(d) for d in written if text_of(d)]
            if shown is None:  # the first partial update after a full render: the whole cell
                assert "13s" in "".join(texts)
            else:  # then the shadow knows the cell
                assert texts == [shown]
            assert term.lines == full_render(app)
        app.screen.refresh()  # a full render: the terminal may show anything now
        await pilot.pause()
        rows[5] = rows[5]._replace(moved_at=-16.0)
        written.clear()
        table.apply(tuple(rows.values()))
        await pilot.pause()
        assert "16s" in "".join(text_of(d) for d in written)
        assert term.lines == full_render(app)
