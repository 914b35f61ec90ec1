"""The operator TUI: ``xcinspect`` (dom0) and ``xcinspect --sim``.

Thin by design: the app gets a Platform and uses ``Monitor`` (what the consoles look
like) and ``Actions`` (connect / attach / disconnect). It never asks which platform it
runs on, computes no verdicts and does no ring math. A daemon thread (``poller.Poller``)
ticks the monitor and posts frames; actions run on daemon threads and report back with
notifications; the UI thread never waits on xenstore or a console.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.color import Color
from textual.css.query import NoMatches
from textual.message import Message
from textual.notifications import Notification

from xcinspect.core.options import UiOptions
from xcinspect.platform.base import PlatformError
from xcinspect.tui import _textual_hacks, bindings, render
from xcinspect.tui.action_workers import ActionWorkers
from xcinspect.tui.commands import DomainCommands, refused
from xcinspect.tui.config import Config, load_config
from xcinspect.tui.model import Detail, DetailGone, Frame, OpenFailed
from xcinspect.tui.poller import EarlyOpen, Poller, PollerState
from xcinspect.tui.themes import load_themes, resolve_theme, textual_themes

INTERVALS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
MAX_NOTES = 3  # events of one kind per frame shown one by one; more are summed up
MAX_TOASTS = 3  # notifications shown at once (the oldest information goes first)


class FrameReady(Message):
    """New frames from the poller thread are waiting (coalesced)."""


class DetailReady(Message):
    def __init__(self, detail: Detail | DetailGone) -> None:
        super().__init__()
        self.detail = detail


class XcApp(ActionWorkers, App[int], inherit_bindings=False):
    """xcinspect's Textual application."""

    CSS_PATH = "xcinspect.tcss"
    TITLE = "xcinspect"
    COMMANDS = App.COMMANDS | {DomainCommands}
    # No priority bindings here: in a live console every key but the escape key goes to
    # the guest (^C, ^Q and ^P included).
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, id="app-quit"),
        Binding("ctrl+c", "help_quit", show=False, system=True),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="palette"),
    ]

    def __init__(self, monitor, *, actions=None, config: Config | None = None, read_only: bool = False,
                 interval: float | None = None, theme: str | None = None, poll: bool = True,
                 themes: dict | None = None, open_monitor: bool = False, select: int | None = None,
                 sort: str | None = None) -> None:
        super().__init__()
        _textual_hacks.crop_partial_updates()  # a changed cell is written, not its whole row
        self.monitor = monitor
        self.select_at_start = select  # --select DOMID: selected, detail shown, once it is in a frame
        self.actions = actions
        self.config = config or Config()
        self.sort_at_start = sort or self.config.sort  # problems first unless told otherwise
        self.read_only = read_only
        self.theme_specs = load_themes() if themes is None else themes
        self.start_theme = resolve_theme(theme or self.config.theme, self.theme_specs)
        self.poll = poll
        self.poller_state = PollerState(interval=interval or self.config.interval)
        # open_monitor: the poller thread opens the monitor while Textual starts up (the
        # first frame comes sooner); a failure ends the app with ``open_error`` set.
        self.poller = Poller(monitor, self._deliver, self.poller_state,
                             opener=monitor.open if open_monitor else None)
        self.open_error: OpenFailed | None = None
        self._pending: list[Frame | Detail | DetailGone] = []
        self._pending_lock = threading.Lock()
        self._posted = False
        self.frames = 0
        self.first_frame_at: float | None = None
        self.pal = render.PLAIN
        self.main = None
        self.last_result: str | None = None
        self._toasts: dict[object, Notification] = {}  # key -> the notification shown for it
        self.under_way: dict[int, str] = {}  # domid -> "connecting dom 3…" (the status line says it)

    def dismiss_notification(self, key: object) -> None:
        """Take the notification shown for ``key`` away (if it still is)."""
        note = self._toasts.pop(key, None)
        if note is not None:
            _textual_hacks.unnotify(self, note)

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True, key: object = None) -> None:
        """Textual's ``notify``, coalesced: a notification with the same ``key`` (default:
        the same words) replaces the one still shown, and at most ``MAX_TOASTS`` show at
        once -- the oldest information goes first, warnings and errors stay longest."""
        if threading.current_thread() is not threading.main_thread():
            self.call_from_thread(self.notify, message, title=title, severity=severity, timeout=timeout,
                                  markup=markup, key=key)
            return
        note = Notification(message, title, severity, self.NOTIFICATION_TIMEOUT if timeout is None else timeout,
                            markup=markup)
        key = (severity, title, message) if key is None else key
        shown = self._toasts
        for k in [k for k, n in shown.items() if n.has_expired]:
            del shown[k]
        old = shown.pop(key, None)
        if old is not None:
            _textual_hacks.unnotify(self, old)
        while len(shown) >= MAX_TOASTS:
            victim = next((k for k, n in shown.items() if n.severity == "information"), next(iter(shown)))
            _textual_hacks.unnotify(self, shown.pop(victim))
        shown[key] = note
        _textual_hacks.add_notification(self, note)  # now, not a message later: the next
        # key (+ + +) must find this one to replace it

    # -- start and stop -------------------------------------------------------------------
    def on_mount(self) -> None:
        from xcinspect.tui.screens import MainScreen

        for t in textual_themes(self.theme_specs):
            self.register_theme(t)
        self.theme = self.start_theme
        self._rebuild_palette()
        self.set_keymap(self.config.effective_keymap())
        # Another program had the terminal: partial updates must not trust what was there.
        self.app_suspend_signal.subscribe(self, lambda app: _textual_hacks.forget_terminal(app.console))
        self.app_resume_signal.subscribe(self, lambda app: _textual_hacks.forget_terminal(app.console))
        self.main = MainScreen()
        self.push_screen(self.main)
        if self.poll:
            self.poller.start()

    def on_unmount(self) -> None:
        self.poller.stop()

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {"ring-unread": "", "ring-empty": ""}

    def get_css_variables(self) -> dict[str, str]:
        variables = super().get_css_variables()
        # Theme files may tune the ring colours; other themes derive them from tokens.
        if not variables.get("ring-unread"):
            variables["ring-unread"] = variables.get("warning", "")
        if not variables.get("ring-empty"):
            variables["ring-empty"] = variables.get("foreground-darken-3", variables.get("panel", ""))
        return variables

    def _rebuild_palette(self) -> None:
        variables = self.get_css_variables()

        def to_rich(value: str):
            try:
                return Color.parse(value).rich_color
            except Exception:
                return None

        self.pal = render.Palette(variables, to_rich=to_rich)

    def watch_theme(self, theme: str) -> None:
        # Before Textual's theme signal reaches the widgets (it is delivered a message later).
        self._rebuild_palette()

    # -- frames from the poller -----------------------------------------------------------
    def _deliver(self, item) -> None:
        """Called on the poller thread: queue the item, post one message per batch."""
        with self._pending_lock:
            self._pending.append(item)
            if self._posted:
                return
            self._posted = True
        self.post_message(FrameReady())

    def on_frame_ready(self, message: FrameReady) -> None:
        with self._pending_lock:
            items, self._pending = self._pending, []
            self._posted = False
        for i in items:
            if isinstance(i, OpenFailed):
                self.open_error = i
                self.exit(2, return_code=2)
                return
        frames = [i for i in items if isinstance(i, Frame)]
        for f in frames:
            self._notify_events(f)
        main = self.main
        if main is None or not main.is_attached:
            return
        try:
            table = main.table
        except NoMatches:
            return  # being torn down: a frame can arrive while the app exits
        if frames:
            main.apply_frame(frames[-1])
            self.frames += len(frames)
            want = self.select_at_start
            if want is not None and any(r.domid == want for r in frames[-1].rows):
                self.select_at_start = None
                self.domain_command("show", want)
            if self.first_frame_at is None:
                import time

                from xcinspect.engine import gc_policy

                self.first_frame_at = time.monotonic()
                # after this frame is drawn: start-up is over (a no-op unless the CLI asked for it)
                self.call_after_refresh(gc_policy.settle)
        for i in items:
            if isinstance(i, Detail) and i.domid == table.selected:
                main.apply_detail(i)

    def _notify_events(self, f: Frame) -> None:
        def say(items, one: Callable, many: str, severity: str = "information") -> None:
            if not items:
                return
            if len(items) <= MAX_NOTES:
                for it in items:
                    self.notify(one(it), severity=severity, markup=False)
            else:
                names = ", ".join(f"{d}" for d, *_ in items[:8]) + ("…" if len(items) > 8 else "")
                self.notify(f"{len(items)} {many}: dom {names}", severity=severity, markup=False)

        say(f.appeared, lambda it: f"dom {it[0]} ({it[1]}) appeared", "domains appeared")
        say(f.gone, lambda it: f"dom {it[0]} ({it[1]}) is gone", "domains are gone", "warning")
        say(f.stalled, lambda it: f"console of dom {it[0]} ({it[1]}) stalled", "consoles stalled", "error")
        say(f.recovered, lambda it: f"console of dom {it[0]} ({it[1]}) recovered: {it[2]}",
            "consoles recovered")

    # -- sampling control -----------------------------------------------------------------
    def request_tick(self) -> None:
        if self.poll:
            self.poller.request_tick()
        else:
            self.sample_now()

    def request_detail(self) -> None:
        if self.poll:
            self.poller.request_detail()
        else:
            self.poller.detail_once()

    def sample_now(self) -> Frame:
        """One synchronous tick (tests and snapshots run without the poller thread)."""
        return self.poller.once()

    def toggle_pause(self) -> None:
        st = self.poller_state
        st.paused = not st.paused
        self.poller.wake()
        self.notify("paused: the table is frozen (r samples once)" if st.paused else "sampling resumed",
                    timeout=2, markup=False, key="pause")
        if self.main is not None:
            self.main.update_status()

    def change_interval(self, step: int) -> None:
        st = self.poller_state
        cur = st.interval
        if step < 0:
            smaller = [i for i in INTERVALS if i < cur - 1e-9]
            st.interval = smaller[-1] if smaller else INTERVALS[0]
        else:
            larger = [i for i in INTERVALS if i > cur + 1e-9]
            st.interval = larger[0] if larger else INTERVALS[-1]
        self.poller.wake()
        self.notify(f"refresh every {st.interval:g} s", timeout=2, markup=False, key="interval")
        if self.main is not None:
            self.main.update_status()

    # -- helpers for the screens ----------------------------------------------------------
    def keys_for_hint(self) -> dict[str, str]:
        km = self.config.effective_keymap()
        out = {}
        for bid in ("connect", "attach", "set-flag-connected"):
            first = km.get(bid, bindings.ALL[bid].keys).split(",")[0]
            out[bid] = self.get_key_display(Binding(first, "x"))
        return out

    def escape_display(self) -> str:
        first = self.config.effective_keymap().get("detach", bindings.ALL["detach"].keys).split(",")[0]
        return self.get_key_display(Binding(first, "x"))

    def action_help(self) -> None:
        from xcinspect.tui.modals import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.config.effective_keymap(), self.read_only, self.config.path))

    def get_system_commands(self, screen):
        """Textual's own entries (its Screenshot replaced), then one per binding of the
        table (``bindings.MAIN``)."""
        for command in super().get_system_commands(screen):
            if command.title == "Screenshot":
                command = SystemCommand(command.title, "Save an SVG picture of the screen (in ~/Downloads or "
                                        "the current directory)", lambda: self.set_timer(0.1, self.save_picture))
            yield command
        main = self.main
        if main is None:
            return
        from xcinspect.tui.columns import SORT_LABEL, SORT_ORDER

        for spec in bindings.MAIN:
            if spec.id == bindings.SORT_BY:
                for col in SORT_ORDER:
                    yield SystemCommand(f"Sort by {SORT_LABEL[col]}", "Sort the domain table",
                                        lambda c=col: main.sort_by(c, False))
            if spec.command is None or (spec.writes and self.read_only):
                continue
            selected = main.table.selected_row()
            if spec.writes and selected is not None and refused(spec.action, selected):
                continue  # "Connect selected" on a serviced console: not offered
            yield SystemCommand(spec.command, spec.command_help, lambda a=spec.action: main.do(a))

    def save_picture(self) -> None:
        """The palette's Screenshot: Textual writes to ~/Downloads, which root on a dom0
        seldom has. Here: ~/Downloads if it exists, else the current directory, else the
        temporary one; the notification says where (or why not)."""
        if self.is_web:  # served: the browser downloads it
            self.deliver_screenshot()
            return
        import os
        import tempfile
        import time

        svg = self.export_screenshot()
        name = f"xcinspect-{time.strftime('%Y%m%d-%H%M%S')}.svg"
        tried = []
        for d in (os.path.expanduser("~/Downloads"), os.getcwd(), tempfile.gettempdir()):
            if not os.path.isdir(d):
                continue
            path = os.path.join(d, name)
            try:
                with open(path, "x", encoding="utf-8") as f:
                    f.write(svg)
            except OSError as exc:
                tried.append(f"{d}: {exc.strerror or exc}")
                continue
            self.notify(f"saved to {path}", title="Screenshot", timeout=8, markup=False)
            return
        self.notify("; ".join(tried) or "no directory to save in", title="Screenshot failed", severity="error",
                    markup=False)

    def domain_command(self, action: str, domid: int) -> None:
        """A palette command for one domain: select it, then act."""
        main = self.main
        if main is None:
            return
        if self.screen is not main:
            self.notify("leave the console first", severity="warning", markup=False)
            return
        t = main.table
        if t.query_text and domid not in t.shown:
            main.action_clear_filter()
        t.selected = domid  # the screen watches it: detail panel, poller, bindings
        if action != "show":
            main.do(action)

    def detach(self, screen) -> None:
        if screen.io is not None:
            screen.io.stop()
        self.pop_screen()
        self.notify(f"detached from dom {screen.row.domid}", timeout=2, markup=False)
        self.request_tick()


def make_app(monitor, *, actions=None, config: Config | None = None, read_only: bool = False,
             interval: float | None = None, theme: str | None = None, poll: bool = True,
             themes: dict | None = None, open_monitor: bool = False, select: int | None = None,
             sort: str | None = None) -> XcApp:
    """The one factory for the CLI, tests and the benchmark."""
    return XcApp(monitor, actions=actions, config=config, read_only=read_only, interval=interval,
                 theme=theme, poll=poll, themes=themes, open_monitor=open_monitor, select=select,
                 sort=sort)


def run_tui(platform, options: UiOptions, *, platform_args: list[str] | None = None,
            opening: EarlyOpen | None = None) -> int:
    """``xcinspect`` / ``xcinspect --sim``: check the config and theme, open the monitor
    (PlatformError here is one line and exit 2 in the CLI), then run the app. ``opening``:
    the monitor, already being opened on a thread of its own (``start_opening``)."""
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor

    config = load_config()
    themes = load_themes()
    theme = resolve_theme(options.theme or config.theme, themes)
    interval = options.interval or config.interval
    monitor = opening.monitor if opening is not None else Monitor(platform, flag_layout=options.flag_layout)
    platform.check()  # the usual environment problems, before the screen switches
    actions = None
    try:
        actions = Actions(platform, flag_override=options.flag_layout, read_only=options.read_only,
                          platform_args=platform_args or [])
        app = make_app(monitor, actions=actions, config=config, read_only=options.read_only,
                       interval=interval, theme=theme, themes=themes, open_monitor=True,
                       select=options.select)
        if opening is not None:
            app.poller.opener = opening.wait
        app.run()
        if app.open_error is not None:
            raise PlatformError(app.open_error.message, app.open_error.hint)
        return app.return_code or 0
    finally:
        if actions is not None:
            actions.xs.close()
        if opening is not None:
            opening.join(30)  # never close the monitor under the thread still opening it
        monitor.close()


__all__ = ["XcApp", "make_app", "run_tui"]
