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
from textual.message import Message

from xcinspect.core.errors import OperatorError
from xcinspect.core.options import UiOptions
from xcinspect.platform.base import PlatformError
from xcinspect.tui import render
from xcinspect.tui.commands import DomainCommands
from xcinspect.tui.config import Config, load_config
from xcinspect.tui.model import Detail, DetailGone, Frame, OpenFailed, Row, clean
from xcinspect.tui.poller import Poller, PollerState
from xcinspect.tui.themes import load_themes, resolve_theme, textual_themes

INTERVALS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
MAX_NOTES = 3  # events of one kind per frame shown one by one; more are summed up


class FrameReady(Message):
    """New frames from the poller thread are waiting (coalesced)."""


class DetailReady(Message):
    def __init__(self, detail: Detail | DetailGone) -> None:
        super().__init__()
        self.detail = detail


class XcApp(App[int], inherit_bindings=False):
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
                 themes: dict | None = None, open_monitor: bool = False) -> None:
        super().__init__()
        self.monitor = monitor
        self.actions = actions
        self.config = config or Config()
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
        self.ops = 0  # actions running on threads (tests wait for 0)
        self._action_lock = threading.Lock()
        self._inflight: set[tuple[str, int | None]] = set()
        self.main = None
        self.last_result: str | None = None

    # -- start and stop -------------------------------------------------------------------
    def on_mount(self) -> None:
        from xcinspect.tui.screens import MainScreen

        for t in textual_themes(self.theme_specs):
            self.register_theme(t)
        self.theme = self.start_theme
        self._rebuild_palette()
        self.set_keymap(self.config.effective_keymap())
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
        self._rebuild_palette()
        if self.main is not None and self.main.is_mounted:
            self.main.table.palette_ = self.pal
            self.main.table.apply(self.main.rows, force=True)
            self.main.update_status()
            self.main.show_detail()

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
        if main is None:
            return
        if frames:
            main.table.palette_ = self.pal
            main.apply_frame(frames[-1])
            self.frames += len(frames)
            if self.first_frame_at is None:
                import time

                self.first_frame_at = time.monotonic()
        for i in items:
            if isinstance(i, Detail) and i.domid == main.table.selected:
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
                    timeout=2, markup=False)
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
        self.notify(f"refresh every {st.interval:g} s", timeout=2, markup=False)
        if self.main is not None:
            self.main.update_status()

    # -- helpers for the screens ----------------------------------------------------------
    def keys_for_hint(self) -> dict[str, str]:
        from xcinspect.tui import bindings

        km = self.config.effective_keymap()
        out = {}
        for bid in ("connect", "attach", "set-flag-connected"):
            first = km.get(bid, bindings.ALL[bid].keys).split(",")[0]
            out[bid] = self.get_key_display(Binding(first, "x"))
        return out

    def escape_display(self) -> str:
        from xcinspect.tui import bindings

        first = self.config.effective_keymap().get("detach", bindings.ALL["detach"].keys).split(",")[0]
        return self.get_key_display(Binding(first, "x"))

    def action_help(self) -> None:
        from xcinspect.tui.modals import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.config.effective_keymap(), self.read_only, self.config.path))

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        main = self.main
        if main is None:
            return
        from xcinspect.tui.columns import SORT_LABEL, SORT_ORDER

        yield SystemCommand("Help", "Every key and what it does", self.action_help)
        yield SystemCommand("Filter", "Filter domains by name, domid or verdict", main.action_filter)
        for col in SORT_ORDER:
            yield SystemCommand(f"Sort by {SORT_LABEL[col]}", "Sort the domain table",
                                lambda c=col: main.sort_by(c, False))
        yield SystemCommand("Reverse sort order", "Reverse the domain table", main.action_sort_reverse)
        yield SystemCommand("Pause / resume", "Freeze or resume sampling", self.toggle_pause)
        yield SystemCommand("Faster refresh", "Shorter refresh delay", lambda: self.change_interval(-1))
        yield SystemCommand("Slower refresh", "Longer refresh delay", lambda: self.change_interval(+1))
        yield SystemCommand("Refresh now", "Sample every console once", self.request_tick)
        yield SystemCommand("Enlarge detail panel", "Toggle a full-screen detail panel", main.action_zoom)
        if not self.read_only:
            for action, title in (("connect", "Connect selected"), ("attach", "Attach selected"),
                                  ("force_disconnect", "Force-disconnect selected"),
                                  ("set_flag", "Set flag disconnected on selected"),
                                  ("set_flag_connected", "Set flag connected on selected")):
                yield SystemCommand(title, "Act on the domain under the cursor",
                                    lambda a=action: main.do(a))

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
        t.selected = domid
        self.poller_state.selected = domid
        t.restore_cursor()
        main.detail = None
        main.show_detail()
        self.request_detail()
        if action != "show":
            main.do(action)

    # -- actions (off the UI thread) -------------------------------------------------------
    def run_blocking(self, fn: Callable, on_ok: Callable, what: str, domid: int | None = None) -> None:
        """Run ``fn`` on a daemon thread; ``on_ok(result)`` or an error notification.
        A second request for the same action on the same domain while one runs is dropped."""
        if self.actions is None:
            self.notify("actions are not available here", severity="error", markup=False)
            return
        key = (what, domid)
        if key in self._inflight:
            self.notify(f"{what} of dom {domid} is already under way", timeout=2, markup=False)
            return
        self._inflight.add(key)
        self.ops += 1

        def body() -> None:
            try:
                with self._action_lock:
                    result = fn()
            except OperatorError as exc:
                self._later(self._op_failed, key, exc.message)
            except Exception as exc:  # report, never crash the UI
                self._later(self._op_failed, key, f"{type(exc).__name__}: {exc}")
            else:
                self._later(self._op_done, key, on_ok, result)

        threading.Thread(target=body, name=f"xcinspect-{what}", daemon=True).start()

    def _later(self, fn, *args) -> None:
        try:
            self.call_from_thread(fn, *args)
        except Exception:  # the app is shutting down
            pass

    def _op_done(self, key, on_ok, result) -> None:
        self.ops -= 1
        self._inflight.discard(key)
        on_ok(result)

    def _op_failed(self, key, message: str) -> None:
        self.ops -= 1
        self._inflight.discard(key)
        what = key[0]
        self.last_result = f"{what} failed: {message}"
        self.notify(clean(message), title=f"{what} failed", severity="error", timeout=8, markup=False)
        self.request_tick()

    def _confirm(self, title: str, body: str, yes: str, destructive: bool, then: Callable[[], None]) -> None:
        from xcinspect.tui.modals import ConfirmModal

        def answered(ok: bool | None) -> None:
            if ok:
                then()
            else:
                self.notify("cancelled: nothing was changed", timeout=2, markup=False)

        self.push_screen(ConfirmModal(title, clean(body), yes, destructive=destructive), answered)

    def _done(self, what: str):
        def ok(result) -> None:
            self.last_result = result.message
            self.notify(clean(result.message), title=what, timeout=6, markup=False)
            self.request_tick()
        return ok

    def start_connect(self, r: Row) -> None:
        acts = self.actions

        def planned(plan) -> None:
            if not plan.allowed:
                self.last_result = plan.description
                acts.audit("connect", r.domid, "refused", plan.description)  # refusals are audited too
                self.notify(clean(plan.description), title="cannot connect", severity="warning", markup=False)
                return
            self._confirm(f"Connect the console of dom {r.domid} ({r.name})?", plan.description, "Connect",
                          False, lambda: self.run_blocking(lambda: acts.connect(r.domid), self._done("connect"),
                                                           "connect", r.domid))

        self.run_blocking(lambda: acts.plan_connect(r.domid), planned, "connect", r.domid)

    def start_disconnect(self, r: Row, *, force: bool = False, set_flag: bool = False) -> None:
        if set_flag:
            self.start_flag(r, "disconnected")
            return
        acts = self.actions
        what = "disconnect"

        def planned(plan) -> None:
            if not plan.allowed:
                self.last_result = plan.description
                acts.audit("disconnect", r.domid, "refused", plan.description)
                self.notify(clean(plan.description), title=f"cannot {what}", severity="warning", markup=False)
                return
            self._confirm(f"Force-disconnect dom {r.domid} ({r.name})?", plan.description, "Disconnect",
                          plan.destructive or force,
                          lambda: self.run_blocking(lambda: acts.disconnect(r.domid, force=force),
                                                    self._done(what), what, r.domid))

        self.run_blocking(lambda: acts.plan_disconnect(r.domid, force=force), planned, what, r.domid)

    def start_flag(self, r: Row, state: str) -> None:
        """Set the connection flag to ``state`` (either way: each is the other's undo)."""
        acts = self.actions
        what = f"set flag {state}"

        def planned(plan) -> None:
            if not plan.allowed:
                self.last_result = plan.description
                acts.audit("flag", r.domid, "refused", plan.description, state=state)
                self.notify(clean(plan.description), title=f"cannot {what}", severity="warning", markup=False)
                return
            self._confirm(f"Set the flag of dom {r.domid} ({r.name}) to {state}?", plan.description,
                          f"Set {state}", plan.destructive,
                          lambda: self.run_blocking(lambda: acts.set_flag(r.domid, state),
                                                    self._done(what), what, r.domid))

        self.run_blocking(lambda: acts.plan_flag(r.domid, state), planned, what, r.domid)

    def start_attach(self, r: Row, force: bool = False) -> None:
        if r.qemu:
            self.notify(f"dom {r.domid}: console type {r.console_type} belongs to QEMU; xcinspect will not attach",
                        severity="warning", markup=False)
            return
        if r.action == "connect" and not force:
            key = self.keys_for_hint()["connect"]
            self.notify(f"nobody services the console of dom {r.domid}: press {key} to connect it first",
                        title="cannot attach yet", severity="warning", markup=False)
            return
        if r.attached and r.attached != "this tui" and not force:
            self._offer_force(r, f"The console of dom {r.domid} ({r.name}) is attached by {r.attached}.")
            return
        acts = self.actions

        def opened(session) -> None:
            from xcinspect.tui.screens import AttachScreen

            self.push_screen(AttachScreen(r, session, scrollback=self.config.scrollback,
                                          escape_display=self.escape_display()))

        def attach():
            try:
                return acts.attach(r.domid, force=force, tty_wait=2.0)
            except OperatorError as exc:
                if "use force" in exc.message and not force:
                    return exc
                raise

        def result(value) -> None:
            if isinstance(value, OperatorError):
                self._offer_force(r, value.message)
            else:
                opened(value)

        self.run_blocking(attach, result, "attach", r.domid)

    def _offer_force(self, r: Row, why: str) -> None:
        self._confirm(
            f"Force-attach dom {r.domid} ({r.name})?",
            f"{why} Forcing sends SIGTERM to that client: its session ends, then this TUI attaches. "
            "The guest and xenconsoled are not touched.",
            "Force attach", True, lambda: self.start_attach(r, force=True))

    def detach(self, screen) -> None:
        if screen.io is not None:
            screen.io.stop()
        self.pop_screen()
        self.notify(f"detached from dom {screen.row.domid}", timeout=2, markup=False)
        self.request_tick()


def make_app(monitor, *, actions=None, config: Config | None = None, read_only: bool = False,
             interval: float | None = None, theme: str | None = None, poll: bool = True,
             themes: dict | None = None, open_monitor: bool = False) -> XcApp:
    """The one factory for the CLI, tests and the benchmark."""
    return XcApp(monitor, actions=actions, config=config, read_only=read_only, interval=interval,
                 theme=theme, poll=poll, themes=themes, open_monitor=open_monitor)


def run_tui(platform, options: UiOptions, *, platform_args: list[str] | None = None) -> int:
    """``xcinspect`` / ``xcinspect --sim``: check the config and theme, open the monitor
    (PlatformError here is one line and exit 2 in the CLI), then run the app."""
    from xcinspect.engine.actions import Actions
    from xcinspect.engine.monitor import Monitor

    config = load_config()
    themes = load_themes()
    theme = resolve_theme(options.theme or config.theme, themes)
    interval = options.interval or config.interval
    monitor = Monitor(platform, flag_layout=options.flag_layout)
    platform.check()  # the usual environment problems, before the screen switches
    actions = None
    try:
        actions = Actions(platform, flag_override=options.flag_layout, read_only=options.read_only,
                          platform_args=platform_args or [])
        app = make_app(monitor, actions=actions, config=config, read_only=options.read_only,
                       interval=interval, theme=theme, themes=themes, open_monitor=True)
        app.run()
        if app.open_error is not None:
            raise PlatformError(app.open_error.message, app.open_error.hint)
        return app.return_code or 0
    finally:
        if actions is not None:
            actions.xs.close()
        monitor.close()


__all__ = ["XcApp", "make_app", "run_tui"]
