"""Operator experience (issue #13): what a person at the terminal reads -- long console
lines, who holds a console, notifications, Home/End, the screenshot command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest
from conftest import ready
from fakes import FakeSession
from pilot_wait import on_top
from rich.console import Console


def screen_text(app) -> str:
    """The screen as plain text, row by row, as the terminal shows it."""
    w, h = app.size
    console = Console(width=w, height=h, file=io.StringIO(), force_terminal=True, record=True,
                      color_system="truecolor", legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def attached(app, pilot, data: bytes, until: str):
    from xcinspect.tui.attach_screen import AttachScreen

    session = FakeSession(via="/dev/pts/1")
    row = app.main.table.row_for(1)
    app.push_screen(AttachScreen(row, session, scrollback=1000, escape_display="^]"))
    await pilot.pause()
    session.guest.sendall(data)
    screen = app.screen
    deadline = time.monotonic() + 5
    while until not in screen.console.text() and time.monotonic() < deadline:
        await pilot.pause(0.02)
    await pilot.pause()
    return screen, session


OOPS = (b"[   12.345678] BUG: unable to handle page fault for address: ffffc90000abc000 "
        b"#PF: supervisor read access in kernel mode, error_code(0x0000) - not-present page "
        b"RIP: 0010:xen_console_bug+0x42/0x99 END-OF-OOPS\r\n")


async def test_attach_wraps_long_lines_like_xl_console(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        screen, session = await attached(app, pilot, b"boot\r\n" + OOPS + b"login: ", "login:")
        text = screen_text(app)
        # the console's rows, without the status line, the footer and the scrollbar's column
        flat = "".join(line[:79] for line in text.splitlines()[1:-1])
        assert "END-OF-OOPS" in text
        assert OOPS.decode().strip() in flat  # every character, in order, over the rows
        assert screen.console.line_at(1) == OOPS.decode().strip()  # still one line
        # scroll mode: w turns wrapping off (a sideways view), and on again
        await pilot.press("f2", "w")
        assert not screen.console.wrap
        assert "END-OF-OOPS" not in screen_text(app)
        await pilot.press("w")
        assert screen.console.wrap
        await pilot.press("i")
        screen.io.stop()
    session.guest.close()


async def test_attach_wrapped_search_and_copy_keep_whole_lines(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        screen, session = await attached(app, pilot, b"boot\r\n" + OOPS + b"login: ", "login:")
        await pilot.press("f2", "slash", *"END-OF", "enter")
        c = screen.console
        assert c.current_match() == 1
        await pilot.pause()
        assert "END-OF-OOPS" in screen_text(app)
        await pilot.press("y")
        assert OOPS.decode().strip() in app.clipboard.splitlines()
        screen.io.stop()
    session.guest.close()


# -- who holds the console ----------------------------------------------------------------
XL_CONSOLE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.set_inheritable(fd, True)
print("locked", flush=True)
# what `xl console 2` leaves running: xl execs xenconsole, which holds the lock
os.execv("/bin/sleep", ["/usr/lib/xen/bin/xenconsole", "60"])
"""


@pytest.fixture
def held_world(tmp_path):
    from static_world import Dom, StaticWorld

    w = StaticWorld(str(tmp_path / "w"), [Dom(1, "web", 0, 0), Dom(2, "db", 0, 0)]).start()
    path = w.platform().lock_path(2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    p = subprocess.Popen([sys.executable, "-c", XL_CONSOLE, path], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    yield w, p
    p.kill()
    p.wait()
    p.stdout.close()
    w.stop()


@pytest.mark.parametrize("width", [80, 160])
async def test_attached_names_the_holder_and_its_pid(held_world, width):
    from test_confirm import make, wait_for

    from xcinspect.tui.modals import ConfirmModal

    world, holder = held_world
    app, mon = make(world)
    try:
        async with app.run_test(size=(width, 40)) as pilot:
            await ready(pilot)
            await pilot.press("down")
            await pilot.pause()
            text = screen_text(app)
            table_row = next(line for line in text.splitlines() if " db " in line)
            if width >= 140:
                assert table_row.rstrip().endswith(f"xl console (pid {holder.pid})")
            else:
                assert table_row.rstrip().endswith("xl console")
            assert f"attached xl console (pid {holder.pid})" in text  # the detail panel
            await pilot.press("a")
            assert await wait_for(pilot, lambda: on_top(app, ConfirmModal))
            body = str(app.screen.query_one("#confirm-body").render())
            assert f"is attached by xl console (pid {holder.pid})." in body
            await pilot.press("escape")
    finally:
        mon.actions.xs.close()
        mon.close()


@pytest.mark.parametrize("cmd, who", [
    ("/usr/lib/xen/bin/xenconsole 7 --num 0 --type pv", "xl console"),
    ("xl console 7", "xl console"),
    ("/usr/bin/python3 /usr/local/bin/xcinspect attach 7", "xcinspect attach"),
    ("/usr/bin/python3 -m xcinspect --sim", "xcinspect"),
    ("/usr/bin/python3 -m xcinspect attach --force 7", "xcinspect attach"),
    ("/venv/bin/python3 /venv/bin/xcinspect --sim /tmp/xcinspect-sim-nvu550ei attach 1", "xcinspect attach"),
    ("/usr/bin/python3 /opt/tools/holdit.py 7", "holdit.py"),
    ("[kworker/0:1]", "[kworker/0:1]"),
])
def test_holder_names(cmd, who):
    from xcinspect.tui.poller import holder_name

    assert holder_name(cmd) == who


# -- notifications -------------------------------------------------------------------------
async def test_notifications_coalesce_and_stay_off_the_last_output(frozen_app):
    from textual.widgets._toast import Toast

    app = frozen_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("plus", "plus", "plus", "minus", "s", "space")
        await pilot.pause()
        await pilot.pause()
        toasts = [t for t in app.screen.query(Toast) if t.is_mounted]
        texts = [str(t.render()) for t in toasts]
        assert sum("refresh every" in t for t in texts) == 1, texts  # the latest only
        assert "refresh every 0.5 s" in texts, texts  # 1 s, faster (+) thrice, slower once
        assert len(toasts) <= 3, texts
        output = app.screen.query_one("#output")
        assert output.region.height > 0
        for t in toasts:
            assert not t.region.overlaps(output.region), (t.region, output.region)
        # errors are kept longest: the oldest information makes room
        app.notify("console of dom 3 (legacy-stuck) stalled", severity="error")
        for i in range(4):
            app.notify(f"note {i}")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert "console of dom 3 (legacy-stuck) stalled" in messages
        assert len(messages) == 3


# -- the palette's Screenshot -----------------------------------------------------------------
async def test_palette_screenshot_saves_where_it_can_and_says_where(frozen_app, tmp_path, monkeypatch):
    home = tmp_path / "root-home"  # root's home on a dom0: no ~/Downloads
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+p", *"Screenshot")
        await pilot.pause(0.3)
        await pilot.press("enter")
        deadline = time.monotonic() + 5
        while not list(tmp_path.glob("*.svg")) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        saved = list(tmp_path.glob("*.svg"))
        assert len(saved) == 1, [n.message for n in app._notifications]
        assert "<svg" in saved[0].read_text()
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any(str(saved[0]) in m for m in messages), messages
        assert not any("Failed" in m for m in messages), messages


# -- Home / End ------------------------------------------------------------------------------
async def test_home_and_end_move_the_table_cursor(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        t = app.main.table
        first, last = t.order[0], t.order[-1]
        await pilot.press("down", "down")
        assert t.selected not in (first, last)
        await pilot.press("end")
        await pilot.pause()
        assert t.selected == last and t.cursor_row == len(t.order) - 1
        await pilot.press("home")
        await pilot.pause()
        assert t.selected == first and t.cursor_row == 0


# -- cosmetics --------------------------------------------------------------------------------
async def test_footer_groups_are_spaced_and_the_header_keeps_its_modes(frozen_app):
    app = frozen_app(read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("space")  # paused
        await pilot.pause()
        lines = screen_text(app).splitlines()
        header, footer = lines[0], lines[-1]
        assert "READ-ONLY" in header and "PAUSED" in header, header
        assert "Delay ? Help" in footer and "Delay?" not in footer, footer


async def test_footer_fits_80_columns(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        footer = screen_text(app).splitlines()[-1]
        assert footer.rstrip().endswith("q Quit"), footer


async def test_attach_scroll_mode_footer_is_spaced(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        screen, session = await attached(app, pilot, b"boot\r\nlogin: ", "login:")
        await pilot.press("f2")
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "Next/prev s Save" in footer, footer
        screen.io.stop()
    session.guest.close()


async def test_zoom_at_80_columns_gives_the_output_the_width_and_unzoom_the_arrows(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("z")
        await pilot.pause()
        output = app.screen.query_one("#output")
        assert output.region.width >= 70, output.region
        text = screen_text(app)
        assert "[    2.500000] evil: ^[]52;c;cm0gLXJmIC8K^G clipboard write" in text  # not cut at 40
        await pilot.press("z", "down")
        await pilot.pause()
        assert app.main.table.selected == app.main.table.order[1]


@pytest.mark.parametrize("size", [(120, 40), (160, 50)])
async def test_no_blank_band_between_a_short_table_and_the_panel(frozen_app, size):
    """Eight domains on a tall terminal: the table is as tall as its rows and the detail
    panel starts right below it (it was ~16 blank rows at 160x50)."""
    app = frozen_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        table = app.main.table
        detail = app.screen.query_one("#detail")
        assert table.region.height <= table.row_count + 2, (table.region, table.row_count)
        assert detail.region.y == table.region.bottom, (table.region, detail.region)
        assert detail.region.bottom >= size[1] - 2  # the panel takes the room


def test_last_output_leaves_out_blank_lines():
    from xcinspect.tui import render
    from xcinspect.tui.detail import output_text
    from xcinspect.tui.model import Detail

    d = Detail(1, (), "\nDebian GNU/Linux 12 web01 hvc0\n\n", "web01 login: root\n\n~ # ", (), {})
    assert output_text(d, 4, 60, render.PLAIN).plain.split("\n") == [
        "Debian GNU/Linux 12 web01 hvc0", "web01 login: root", "~ # "]


# -- next problem --------------------------------------------------------------------------
async def test_n_and_N_go_to_the_next_and_previous_problem(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        t = app.main.table
        problems = [d for d in t.order if t.row_for(d).problem]
        assert len(problems) >= 3 and t.selected not in problems
        seen = []
        for _ in problems:
            await pilot.press("n")
            seen.append(t.selected)
        assert seen == problems
        await pilot.press("n")
        assert t.selected == problems[0]  # round again
        await pilot.press("N")
        assert t.selected == problems[-1]
        assert "legacy-stuck" in screen_text(app)  # the detail follows


async def test_scroll_mode_search_says_which_match_of_how_many(frozen_app):
    app = frozen_app()
    async with app.run_test(size=(120, 24)) as pilot:
        await ready(pilot)
        log = b"".join(b"[ %d.0] tick %d\r\n" % (i, i) for i in range(1, 6)) + b"login: "
        screen, session = await attached(app, pilot, log, "login:")
        await pilot.press("f2", "slash", *"tick", "enter")
        await pilot.pause()
        header = screen_text(app).splitlines()[0]
        assert "'tick': 5 of 5" in header, header  # the newest first (search goes backwards)
        await pilot.press("N")
        await pilot.pause()
        assert "'tick': 4 of 5" in screen_text(app).splitlines()[0]
        screen.io.stop()
    session.guest.close()


# -- connecting... -------------------------------------------------------------------------
class SlowConnect:
    """The engine's Actions for connect only, whose connect takes as long as the test says
    (a backend that needs seconds to report): the UI is what is under test."""

    def __init__(self) -> None:
        import threading

        self.go = threading.Event()

    def plan_connect(self, domid):
        from xcinspect.engine.plans import Plan

        return Plan(True, f"Start xcinspect's backend for dom {domid}.")

    def connect(self, domid):
        from xcinspect.engine.plans import ActionResult

        assert self.go.wait(10)
        return ActionResult(True, f"connected dom {domid}")

    def audit(self, *a, **kw) -> None:
        pass


async def test_connect_says_connecting_while_it_runs(frozen_app):
    from test_confirm import wait_for

    from xcinspect.tui.modals import ConfirmModal

    acts = SlowConnect()
    app = frozen_app(actions=acts)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("down", "down")  # dom 3: no backend
        await pilot.press("c")
        assert await wait_for(pilot, lambda: on_top(app, ConfirmModal))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: "connecting dom 3" in screen_text(app).splitlines()[0])
        assert any("connecting dom 3 (legacy-stuck)" in n.message for n in app._notifications)
        acts.go.set()
        assert await wait_for(pilot, lambda: app.ops == 0)
        await pilot.pause()
        assert "connecting" not in screen_text(app).splitlines()[0]
        messages = [n.message for n in app._notifications]
        assert "connected dom 3" in messages and not any("connecting" in m for m in messages), messages


# -- the palette offers what would be done, not refused -------------------------------------
async def test_palette_hides_actions_that_would_be_refused(frozen_app):
    from xcinspect.tui.commands import DomainCommands

    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        provider = DomainCommands(app.screen)

        async def offered(query: str) -> set[str]:
            return {h.text async for h in provider.search(query)}

        assert "Connect dom 3 (legacy-stuck)" in await offered("connect dom 3")  # no backend
        assert "Connect dom 1 (web-01)" not in await offered("connect dom 1")  # xenconsoled has it
        assert "Attach dom 1 (web-01)" in await offered("attach dom 1")
        assert "Attach dom 3 (legacy-stuck)" in await offered("attach dom 3")  # connect, then attach
        assert "Attach dom 7 (hvm-qemu)" not in await offered("attach dom 7")  # QEMU's
        assert "Force-disconnect dom 1 (web-01)" not in await offered("force-disconnect dom 1")  # nobody
        assert "Show dom 1 (web-01)" in await offered("show dom 1")
        # the "... selected" entries follow the cursor's domain
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Attach selected" in titles and "Connect selected" not in titles  # dom 1
        await pilot.press("down", "down")  # dom 3
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Connect selected" in titles and "Force-disconnect selected" not in titles
