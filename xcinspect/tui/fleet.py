"""``xcinspect fleet``: every dom0's problem consoles in one table, through Prometheus.

A worker thread asks Prometheus (``xcinspect.fleet.gather``) every interval and hands the
app a frozen ``FleetSnapshot`` in a message; the snapshot is a reactive, and the table,
the header and the status line follow it through watchers. Filter (``/``), sort (``s``,
``S``), show healthy consoles (``h``), refresh (``r``); Enter suspends the app and runs
the configured command that opens that host's xcinspect on that domain.
"""

from __future__ import annotations

import subprocess
import time

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Input, Static

from xcinspect.core import health
from xcinspect.engine import fleet
from xcinspect.tui.themes import load_themes, resolve_theme, textual_themes

COLUMNS = (("host", "host"), ("dom", "domid"), ("name", "name"), ("verdict", "verdict"),
           ("out fill", "fill"), ("since", "seconds"), ("flag", "flag"))
SORTS = ("urgency", "host", "domid", "name", "fill", "seconds")

VERDICT_STYLE = {health.ERROR: "bold red", health.CORRUPT: "bold red", health.STALLED: "bold red",
                 health.DISCONNECTED: "yellow", health.NO_BACKEND: "yellow", health.BACKLOG: "cyan",
                 health.SERVICED: "green", health.IDLE: "green"}


class FleetApp(App[int]):
    """The fleet view: one row per problem console across all hosts."""

    TITLE = "xcinspect fleet"
    CSS = """
    #fleet-header { height: 1; padding: 0 1; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    #fleet-status { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    #fleet-filter { display: none; height: 1; border: none; padding: 0 1; }
    #fleet-filter.-active { display: block; }
    DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("enter", "open", "Open", id="fleet-open"),
        Binding("slash", "filter", "Filter", id="fleet-filter"),
        Binding("escape", "clear_filter", "Clear", show=False, id="fleet-clear-filter"),
        Binding("s", "sort_next", "Sort", id="fleet-sort"),
        Binding("S", "sort_reverse", "Reverse", show=False, id="fleet-sort-reverse"),
        Binding("h", "toggle_healthy", "Healthy", id="fleet-healthy"),
        Binding("r", "refresh", "Refresh", id="fleet-refresh"),
        Binding("q", "quit", "Quit", id="fleet-quit"),
    ]

    snapshot: reactive[fleet.FleetSnapshot | None] = reactive(None)
    error: reactive[str] = reactive("")
    query_text: reactive[str] = reactive("")
    sort_key: reactive[str] = reactive("urgency")
    sort_reverse: reactive[bool] = reactive(False)
    show_healthy: reactive[bool] = reactive(False)

    class Gathered(Message):
        def __init__(self, snapshot: fleet.FleetSnapshot | None, error: str) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.error = error

    def __init__(self, prometheus: fleet.Prometheus, *, host_label: str = fleet.DEFAULT_HOST_LABEL,
                 lookback: str = fleet.DEFAULT_LOOKBACK, interval: float = 15.0,
                 command: str = fleet.DEFAULT_COMMAND, theme: str | None = None) -> None:
        super().__init__()
        self.prometheus = prometheus
        self.host_label = host_label
        self.lookback = lookback
        self.interval = interval
        self.command = command
        self.theme_specs = load_themes()
        self.start_theme = resolve_theme(theme, self.theme_specs)
        self.last_result = ""
        self.gathered = 0  # snapshots received (tests wait on it)
        self._row_consoles: dict[str, fleet.FleetConsole] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="fleet-header")
        yield Input(placeholder="filter: host, name, domid or verdict words; !word excludes",
                    id="fleet-filter")
        table: DataTable = DataTable(id="fleet-table", cursor_type="row", zebra_stripes=False)
        yield table
        yield Static(id="fleet-status")
        yield Footer()

    def on_mount(self) -> None:
        for t in textual_themes(self.theme_specs):
            self.register_theme(t)
        self.theme = self.start_theme
        table = self.query_one(DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self.gather_loop()

    # -- data ---------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="gather")
    def gather_loop(self) -> None:
        """Ask Prometheus now and every ``interval`` seconds until the app ends."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                snap, err = fleet.gather(self.prometheus, self.host_label, self.lookback), ""
            except fleet.FleetError as exc:
                snap, err = None, exc.message
            self.post_message(self.Gathered(snap, err))
            deadline = time.monotonic() + self.interval
            while not worker.is_cancelled and time.monotonic() < deadline:
                if self._kick:
                    self._kick = False
                    break
                time.sleep(0.05)

    _kick = False

    def on_fleet_app_gathered(self, message: Gathered) -> None:
        self.error = message.error
        if message.snapshot is not None:
            self.snapshot = message.snapshot
        self.gathered += 1

    # -- watchers -----------------------------------------------------------------------
    def watch_snapshot(self) -> None:
        self.refresh_table()
        self.refresh_header()

    def watch_error(self) -> None:
        self.refresh_header()

    def watch_query_text(self) -> None:
        self.refresh_table()

    def watch_sort_key(self) -> None:
        self.refresh_table()

    def watch_sort_reverse(self) -> None:
        self.refresh_table()

    def watch_show_healthy(self) -> None:
        self.refresh_table()

    def shown(self) -> list[fleet.FleetConsole]:
        snap = self.snapshot
        if snap is None:
            return []
        rows = list(snap.consoles if self.show_healthy else snap.problems)
        words = self.query_text.lower().split()
        if words:
            def hit(c: fleet.FleetConsole) -> bool:
                hay = f"{c.host} {c.domid} {c.name} {c.verdict} {c.flag}".lower()
                return all((w[1:] not in hay) if w.startswith("!") and len(w) > 1 else (w in hay) for w in words)
            rows = [c for c in rows if hit(c)]
        if self.sort_key == "urgency":
            rows.sort(key=fleet.urgency, reverse=self.sort_reverse)
        else:
            k = self.sort_key
            rows.sort(key=lambda c: (getattr(c, k) is None, getattr(c, k) or 0, fleet.urgency(c)),
                      reverse=self.sort_reverse)
        return rows

    def refresh_table(self) -> None:
        try:
            table = self.query_one(DataTable)
        except Exception:
            return  # not mounted (or being torn down)
        keep = None
        if table.row_count and table.cursor_row < table.row_count:
            try:
                keep = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            except Exception:
                keep = None
        table.clear()
        self._row_consoles = {}
        for c in self.shown():
            key = f"{c.host}\0{c.domid}"
            self._row_consoles[key] = c
            fill = "-" if c.fill is None else f"{c.fill}/2048"
            flag = f"byte={c.flag_byte}" if c.flag == "n/a" and c.flag_byte else c.flag
            table.add_row(Text(c.host), str(c.domid), Text(c.name),
                          Text(c.verdict, style=VERDICT_STYLE.get(c.verdict, "")), fill, fleet.age_text(c.seconds),
                          Text(flag, style="yellow" if flag in ("disconnected", "byte=1") else ""), key=key)
        if keep in self._row_consoles:
            table.move_cursor(row=table.get_row_index(keep))

    def refresh_header(self) -> None:
        try:
            header = self.query_one("#fleet-header", Static)
            status = self.query_one("#fleet-status", Static)
        except Exception:
            return
        snap = self.snapshot
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("xcinspect fleet", style="bold")
        if snap is not None:
            down = snap.hosts_down
            t.append(f" · {len(snap.hosts)} hosts, ")
            t.append(f"{len(down)} down", style="bold red" if down else "")
            t.append(" ·")
            for state, n in snap.counts().items():
                if state in health.PROBLEM_STATES:
                    t.append(f" {n} {state}", style=VERDICT_STYLE.get(state, ""))
            t.append(f" · {snap.healthy} healthy" + (" (shown)" if self.show_healthy else ""))
        else:
            t.append(f" · asking {self.prometheus.base}")
        header.update(t)
        s = Text()
        if self.error:
            s.append(self.error, style="bold red")
        elif snap is not None and snap.hosts_down:
            s.append("down: " + ", ".join(f"{h.host} ({h.why})" for h in snap.hosts_down), style="red")
        elif self.last_result:
            s.append(self.last_result)
        else:
            s.append(f"Prometheus {self.prometheus.base}; every {self.interval:g} s")
        status.update(s)

    # -- actions ------------------------------------------------------------------------
    def selected(self) -> fleet.FleetConsole | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        except Exception:
            return None
        return self._row_consoles.get(key)

    def action_open(self) -> None:
        c = self.selected()
        if c is None:
            return
        try:
            argv = fleet.open_command(self.command, c)
        except fleet.FleetError as exc:
            self.last_result = exc.message
            self.notify(exc.message, severity="error", markup=False)
            self.refresh_header()
            return
        from textual.app import SuspendNotSupported

        try:
            with self.suspend():
                self.last_result = self._run(argv)
        except SuspendNotSupported:  # e.g. served in a browser: run it without the terminal
            self.last_result = self._run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        self.refresh_header()
        self.action_refresh()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # the table takes Enter itself (select_cursor): that is the open key too
        event.stop()
        self.action_open()

    @staticmethod
    def _run(argv: list[str], **kw) -> str:
        try:
            rc = subprocess.call(argv, **kw)
        except OSError as exc:
            return f"cannot run {argv[0]}: {exc.strerror}"
        return f"{argv[0]} exited {rc}"

    def action_filter(self) -> None:
        f = self.query_one("#fleet-filter", Input)
        f.add_class("-active")
        # now, not after a message round: keys typed right after the slash are the filter's
        self.screen.set_focus(f)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_clear_filter(self) -> None:
        f = self.query_one("#fleet-filter", Input)
        f.value = ""
        f.remove_class("-active")
        self.query_text = ""
        self.query_one(DataTable).focus()

    def action_sort_next(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.last_result = f"sorted by {self.sort_key}"
        self.refresh_header()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def action_toggle_healthy(self) -> None:
        self.show_healthy = not self.show_healthy
        self.refresh_header()

    def action_refresh(self) -> None:
        self._kick = True
