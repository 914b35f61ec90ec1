"""The domain table repaints only the cells that changed (issue 7: TUI CPU), and what it
shows is always what a table built from scratch with the same rows shows."""

from __future__ import annotations

import random

import pytest
from textual.app import App

from xcinspect.tui.columns import columns_for
from xcinspect.tui.model import Row
from xcinspect.tui.table import DomainTable

STATES = ("serviced", "idle", "backlog", "stalled", "no-backend", "corrupt")


def make_row(d: int, rnd: random.Random, **kw) -> Row:
    cons = rnd.randrange(0, 1 << 32)
    fill = rnd.randrange(0, 2049)
    base = dict(domid=d, name=f"vm{d:04d}", state=rnd.choice(STATES), reason="r", action=None,
                flag=rnd.choice(("connected", "n/a")), flag_layout="none", out_cons=cons,
                out_prod=(cons + fill) % (1 << 32), out_fill=fill, in_cons=0, in_prod=0, in_fill=0,
                rate=float(rnd.randrange(0, 5000)), moved_at=-rnd.random() * 100, attached="",
                serviced_by=None, backend="b", console_type="xenconsoled", qemu=False)
    base.update(kw)
    return Row(**base)


class TableApp(App):
    def compose(self):
        yield DomainTable(id="t")


def screen_lines(table: DomainTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


@pytest.mark.parametrize("sort", ["domid", "verdict"])
async def test_partial_repaint_matches_a_fresh_table(sort):
    """Rows off screen are brought up to date only when they come into view: scrolled
    to, moved there by a re-sort (sorted by verdict) or by the cursor."""
    rnd = random.Random(7)
    rows = {d: make_row(d, rnd) for d in range(1, 201)}
    app, ref = TableApp(), TableApp()
    async with app.run_test(size=(140, 40)) as pilot, ref.run_test(size=(140, 40)) as rpilot:
        table, fresh = app.query_one(DomainTable), ref.query_one(DomainTable)
        for t in (table, fresh):
            t.set_columns(columns_for(140))
            t.sorting = (sort, False)
        table.apply(tuple(rows.values()))
        await pilot.pause()
        partial = 0
        for step in range(25):
            # a few rows change a cell or two, on screen and off it
            for d in rnd.sample(sorted(rows), 6):
                r = rows[d]
                rows[d] = make_row(d, rnd, name=r.name, state=r.state if rnd.random() < 0.7 else rnd.choice(STATES))
            if step % 5 == 4:
                table.scroll_to(y=rnd.randrange(0, 150), animate=False)
            if step % 3 == 1:  # the operator moves the cursor (the table scrolls to keep it in view)
                await pilot.press(rnd.choice(("down", "up", "pagedown", "pageup")))
            before = table._update_count
            table.apply(tuple(rows.values()))
            if table._update_count == before:
                partial += 1
            await pilot.pause()
            # the reference: a brand-new table with the same rows, same scroll and cursor
            fresh.clear(columns=True)
            fresh.cols = ()
            fresh.shown.clear()
            fresh.drawn.clear()
            fresh.order = []
            fresh.set_columns(columns_for(140))
            fresh.sorting = (sort, False)
            fresh.selected = table.selected
            fresh.apply(tuple(rows.values()))
            await rpilot.pause()
            fresh.scroll_to(y=table.scroll_y, animate=False)
            await rpilot.pause()
            assert screen_lines(table) == screen_lines(fresh), f"step {step}"
        assert partial >= 20  # the partial path was the one taken (not a full invalidation)


async def test_a_changed_cell_is_repainted_and_nothing_else_is_rendered_again():
    rnd = random.Random(3)
    rows = {d: make_row(d, rnd, state="idle", moved_at=-5.0, rate=0.0) for d in range(1, 51)}
    app = TableApp()
    async with app.run_test(size=(140, 30)) as pilot:
        table = app.query_one(DomainTable)
        table.set_columns(columns_for(140))
        table.apply(tuple(rows.values()))
        await pilot.pause()
        lines = screen_lines(table)
        cached = len(table._cell_render_cache)
        assert "stalled" not in "".join(lines)
        rows[3] = make_row(3, rnd, name=rows[3].name, state="stalled", moved_at=-5.0, rate=0.0,
                           out_cons=rows[3].out_cons, out_prod=rows[3].out_prod, out_fill=rows[3].out_fill,
                           flag=rows[3].flag)
        table.apply(tuple(rows.values()))
        await pilot.pause()
        after = screen_lines(table)
        changed = [y for y, (a, b) in enumerate(zip(lines, after)) if a != b]
        assert len(changed) == 1 and "stalled" in after[changed[0]] and "vm0003" in after[changed[0]]
        # one cell was rendered again, the other cached cells were kept
        assert len(table._cell_render_cache) >= cached - 1


async def test_ages_move_with_the_time_in_view_and_rows_keep_their_identity():
    """A ring that does not move keeps its Row: the table re-ages the rows in view against
    the frame's time (only the "moved" cells repaint), and a row off screen shows its
    current age as soon as it scrolls into view."""
    rnd = random.Random(5)
    rows = tuple(make_row(d, rnd, state="idle", moved_at=100.0, rate=0.0) for d in range(1, 201))
    app = TableApp()
    async with app.run_test(size=(140, 30)) as pilot:
        table = app.query_one(DomainTable)
        table.set_columns(columns_for(140))
        table.now = 103.0
        table.apply(rows)
        await pilot.pause()
        lines = screen_lines(table)
        assert "vm0001" in lines[1] and " 3s " in lines[1]
        table.now = 104.0
        table.apply(rows)  # the same Row objects
        await pilot.pause()
        after = screen_lines(table)
        changed = [y for y, (a, b) in enumerate(zip(lines, after)) if a != b]
        assert changed and all(" 4s " in after[y] and " 3s " in lines[y] for y in changed)
        assert all(a.replace(" 3s ", " 4s ") == b for a, b in zip(lines[1:], after[1:]))
        table.now = 160.0
        table.apply(rows)
        table.scroll_to(y=150, animate=False)
        await pilot.pause()
        assert any("vm0170" in line and " 60s " in line for line in screen_lines(table))
        assert not any(" 3s " in line or " 4s " in line for line in screen_lines(table))


def test_sorting_by_moved_puts_the_longest_stuck_first_and_unsampled_last():
    from xcinspect.tui.columns import sort_function

    rnd = random.Random(9)
    rows = [make_row(1, rnd, moved_at=50.0), make_row(2, rnd, moved_at=None),
            make_row(3, rnd, moved_at=10.0), make_row(4, rnd, moved_at=50.0)]
    assert [r.domid for r in sorted(rows, key=sort_function("moved"))] == [3, 1, 4, 2]
    # the same order as by age at any time (the age is now - moved_at)
    now = 80.0
    by_age = sorted(rows, key=lambda r: (r.quiet_at(now) is None, -(r.quiet_at(now) or 0.0), r.domid))
    assert [r.domid for r in by_age] == [3, 1, 4, 2]
