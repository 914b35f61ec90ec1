"""Pilot tests over the frozen world (deterministic: no poller thread, fixed clock)."""

from __future__ import annotations

import pytest
from conftest import ready
from textual.widgets import Input

from xcinspect.tui.modals import HelpScreen
from xcinspect.tui.screens import MainScreen
from xcinspect.tui.table import DomainTable


def plain(renderable, width: int = 120) -> str:
    import io

    from rich.console import Console

    c = Console(width=width, record=True, file=io.StringIO())
    c.print(renderable)
    return c.export_text()


def table(app) -> DomainTable:
    return app.main.table


def order(app) -> list[int]:
    return list(table(app).order)


async def test_first_frame_fills_the_table(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert isinstance(app.screen, MainScreen)
        assert order(app) == [1, 2, 3, 4, 5, 6, 7, 8]
        assert table(app).row_count == 8
        status = str(app.main.query_one("#status").render())
        assert "8 dom" in status and "1 stalled" in status


async def test_cursor_moves_and_detail_follows(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("down", "down")
        await pilot.pause()
        assert table(app).selected == 3
        detail = app.main.query_one("#detail")
        assert "dom 3" in str(detail.border_title) and "stalled" in str(detail.border_title)
        verdict = str(app.main.query_one("#verdict").render())
        assert "out ring full" in verdict and "press c to connect" in verdict


async def test_only_changed_cells_update(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        cells = {}
        t = app.main.table
        for d in t.order:
            cells[d] = {c: t.get_cell(str(d), c) for c in t.cols}
        app.sample_now()  # same clock, nothing moved: nothing to redraw
        await pilot.pause()
        assert all(t.get_cell(str(d), c) is cells[d][c] for d in t.order for c in t.cols)
        app.clock.t += 2  # time passes: only the "moved" column changes
        app.sample_now()
        await pilot.pause()
        changed = {c for d in t.order for c in t.cols if t.get_cell(str(d), c) is not cells[d][c]}
        assert changed == {"moved"}
        assert str(t.get_cell("3", "moved")) == "2s"


async def test_filter_by_name_domid_verdict_and_clear(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"stuck")
        await pilot.pause()
        assert order(app) == [3]
        # "/" is a priority binding (keys typed right after it reach the filter); in the
        # filter line it is a character like any other
        await pilot.press("slash")
        assert app.main.query_one("#filter", Input).value == "stuck/"
        await pilot.press("backspace")
        await pilot.press("enter")
        assert isinstance(app.focused, DomainTable)
        assert order(app) == [3]  # the filter stays after enter
        assert "filter 'stuck'" in str(app.main.query_one("#status").render())
        await pilot.press("escape")  # esc clears it
        await pilot.pause()
        assert order(app) == [1, 2, 3, 4, 5, 6, 7, 8]
        for query, expected in (("5", [5]), ("stalled", [3]), ("!serviced", [3, 5, 6, 8]),
                                ("corrupt", [5]), ("serviced web", [1])):
            await pilot.press("slash")
            inp = app.main.query_one("#filter", Input)
            inp.value = query
            await pilot.pause()
            assert order(app) == expected, query
            await pilot.press("escape")
            await pilot.pause()


async def test_sort_keys_and_cursor_stays_on_its_domain(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("down", "down", "down")  # dom 4
        assert table(app).selected == 4
        await pilot.press("s")  # -> name
        assert table(app).sort_col == "name"
        names = [table(app).row_for(d).name for d in order(app)]
        assert names == sorted(names, key=str.lower)
        assert table(app).selected == 4
        assert table(app).cursor_row == order(app).index(4)
        await pilot.press("s")  # -> verdict: most urgent first
        assert order(app)[:3] == [8, 5, 3]
        await pilot.press("S")
        assert order(app)[-3:] == [3, 5, 8]
        assert table(app).cursor_row == order(app).index(4)
        await pilot.press("s", "s", "s", "s")  # out, rate, moved, back to domid
        assert table(app).sort_col == "domid"


async def test_header_click_sorts(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        t = table(app)
        t.post_message(DomainTable.HeaderSelected(t, t.columns["out"].key, 4, label=t.columns["out"].label))
        await pilot.pause()
        assert t.sort_col == "out" and order(app)[:2] == [5, 3]  # corrupt, then full


async def test_pause_and_refresh_delay(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert app.poller_state.interval == 1.0
        await pilot.press("space")
        assert app.poller_state.paused
        assert "PAUSED" in str(app.main.query_one("#status").render())
        await pilot.press("space")
        assert not app.poller_state.paused
        await pilot.press("minus")
        assert app.poller_state.interval == 2.0
        await pilot.press("plus", "plus")
        assert app.poller_state.interval == 0.5
        await pilot.press(*["plus"] * 5)
        assert app.poller_state.interval == 0.25  # floor
        assert "every 0.25s" in str(app.main.query_one("#status").render())


async def test_refresh_key_samples_once(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        before = app.frames
        await pilot.press("r")
        await pilot.pause()
        assert app.frames == before + 1


@pytest.mark.parametrize("key", ["question_mark", "f1"])
async def test_help_screen_opens_and_closes(frozen_app, key):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press(key)
        assert isinstance(app.screen, HelpScreen)
        body = plain(app.screen._body())
        for bid in ("connect", "attach", "force-disconnect", "filter", "sort", "pause", "faster", "slower",
                    "quit", "detach", "search", "save", "copy"):
            assert bid in body
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_zoom_toggles_the_detail(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("z")
        assert app.main.has_class("-zoom") and not table(app).display
        await pilot.press("z")
        assert not app.main.has_class("-zoom")


async def test_quit(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_footer_shows_every_main_binding(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        shown = {b.action for _, b, enabled, _ in app.screen.active_bindings.values() if b.show}
        for action in ("connect", "attach", "force_disconnect", "filter", "sort_next", "toggle_pause",
                       "faster", "slower", "help", "quit"):
            assert action in shown, action


async def test_read_only_hides_and_blocks_actions(frozen_app):
    app = frozen_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        active = {b.action for _, b, enabled, _ in app.screen.active_bindings.values()}
        assert not {"connect", "attach", "force_disconnect", "set_flag"} & active
        await pilot.press("down", "down", "c", "a", "d")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and app.ops == 0
        verdict = str(app.main.query_one("#verdict").render())
        assert "read-only" in verdict and "press c" not in verdict
        assert "READ-ONLY" in str(app.main.query_one("#status").render())


async def test_keymap_rebinds_by_id(frozen_app):
    from xcinspect.tui.config import Config

    app = frozen_app(config=Config(keymap={"connect": "C", "sort": "o"}))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        keys = {ab.binding.action: key for key, ab in app.screen.active_bindings.items()}
        assert keys["connect"] == "C" and keys["sort_next"] == "o"
        await pilot.press("o")
        assert table(app).sort_col == "name"
        app.domain_command("show", 3)
        await pilot.pause()
        # the verdict's hint names the key as bound
        assert "press C to connect" in str(app.main.query_one("#verdict").render())


async def test_themes_switch_and_restyle(frozen_app):
    app = frozen_app(theme="light")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.theme == "xcinspect-light"
        light = app.pal["error"].color
        app.theme = "xcinspect-high-contrast"
        await pilot.pause()
        assert app.pal["error"].color != light


async def test_no_color(frozen_app, monkeypatch):
    from textual.filter import Monochrome

    monkeypatch.setenv("NO_COLOR", "1")
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.no_color and any(isinstance(f, Monochrome) for f in app._filters)
        svg = app.export_screenshot()
        assert "stalled" in svg


async def test_palette_lists_per_domain_commands(frozen_app):
    from xcinspect.tui.commands import DomainCommands

    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        provider = DomainCommands(app.screen)
        hits = [h async for h in provider.search("connect dom 3")]
        assert any(h.text == "Connect dom 3 (legacy-stuck)" for h in hits)
        hits = [h async for h in provider.search("show dom 6")]
        show = next(h for h in hits if h.text == "Show dom 6 (new-kernel)")
        show.command()
        await pilot.pause()
        assert table(app).selected == 6
        disc = [h async for h in provider.discover()]
        assert disc and disc[0].text.startswith("Connect dom 3")


async def test_palette_opens_and_runs_a_command(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"show dom 5")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert table(app).selected == 5


async def test_monitor_open_failure_ends_the_app_with_status_2(frozen_world):
    """run_tui opens the monitor on the poller thread; a failure there is one line, exit 2."""
    from xcinspect.engine.monitor import Monitor
    from xcinspect.platform.base import PlatformError
    from xcinspect.tui.app import make_app

    mon = Monitor(frozen_world.platform())

    def broken_open():
        raise PlatformError("xenstored did not answer within 2 s", "is xenstored running?")

    mon.open = broken_open
    app = make_app(mon, open_monitor=True)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if app.open_error is not None:
                break
            await pilot.pause(0.02)
    assert app.return_code == 2
    assert app.open_error.message == "xenstored did not answer within 2 s"
    assert app.open_error.hint == "is xenstored running?"


async def test_problems_first_by_default(frozen_app):
    """Without a sort asked for (config `sort`), the table opens sorted by verdict, most
    urgent first, the cursor on the top row (the fixtures of the other tests ask for
    domid order)."""
    from xcinspect.core import health

    app = frozen_app(sort=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        t = app.main.table
        assert t.sorting == ("verdict", False)
        rows = {r.domid: r for r in t.domains}
        states = [rows[d].state for d in t.order]
        assert states == sorted(states, key=lambda s: health.SEVERITY.get(s, 99)), states
        assert states[0] in health.PROBLEM_STATES and states[-1] not in health.PROBLEM_STATES
        assert t.selected == t.order[0]


def test_config_sort_is_a_column(tmp_path):
    from xcinspect.tui.config import ConfigError, load_config

    p = tmp_path / "config.toml"
    p.write_text('sort = "domid"\n')
    assert load_config(p).sort == "domid"
    p.write_text('sort = "bogus"\n')
    with pytest.raises(ConfigError, match="sort must be a column"):
        load_config(p)
