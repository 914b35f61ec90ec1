"""The main screen: the domain table, the filter line and the detail panel (the attached
console is ``attach_screen``)."""

from __future__ import annotations

from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from xcinspect.tui import bindings
from xcinspect.tui.columns import SORT_LABEL, SORT_ORDER
from xcinspect.tui.detail import DetailPanel
from xcinspect.tui.model import Detail, Row
from xcinspect.tui.status import StatusBar, status_text
from xcinspect.tui.table import DomainTable

_GROUPS: dict[str, Binding.Group] = {}


def make_bindings(specs) -> list[Binding]:
    out = []
    for s in specs:
        group = None
        if s.group:
            group = _GROUPS.setdefault(s.group, Binding.Group(s.group, compact=True))
        out.append(Binding(s.keys, s.action, s.description, show=s.show, priority=s.priority, id=s.id,
                           key_display=s.key_display, tooltip=s.help, group=group))
    return out


class MainScreen(Screen):
    """The domain table, a filter line, the detail panel of the selected domain."""

    BINDINGS = make_bindings(bindings.MAIN) + [
        Binding("escape", "clear_filter", "Clear filter", show=True, id="clear-filter"),
        Binding("enter", "zoom", show=False),
        # Enter in the filter line, before the Input sees it: focus goes back to the table
        # at once, so keys typed ahead ("/stuck⏎c") reach the table, not the filter.
        Binding("enter", "filter_done", show=False, priority=True),
    ]
    AUTO_FOCUS = "DomainTable"

    def __init__(self) -> None:
        super().__init__(id="main")
        self.rows: tuple[Row, ...] = ()
        self.detail: Detail | None = None
        self.host: dict = {}
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Input(placeholder="filter: name, domid or verdict (words must all match; !word excludes)",
                    id="filter")
        yield DomainTable(id="domains")
        yield DetailPanel(id="detail")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def table(self) -> DomainTable:
        return self.query_one(DomainTable)

    def on_mount(self) -> None:
        table = self.table
        # the first sort (problems first by default), quietly: no "sorted by" notice
        table.set_reactive(DomainTable.sorting, (getattr(self.app, "sort_at_start", "domid"), False))
        self.watch(table, "selected", self._selection_changed, init=False)
        self.watch(table, "sorting", self._sorting_changed, init=False)
        self.watch(table, "query_text", self._query_changed, init=False)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self._layout_for(self.app.size.width, self.app.size.height)

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width, event.size.height)

    def _layout_for(self, width: int, height: int) -> None:
        self.set_class(height < 32, "-short")
        self.set_class(width >= 160, "-wide")
        self.set_class(width < 120, "-narrow")  # zoomed: the last output under the rings, full width
        self.table.show_columns_for(width)
        self.call_after_refresh(self.show_detail)

    # -- data -----------------------------------------------------------------------------
    def apply_frame(self, frame) -> None:
        self.rows = frame.rows
        self.host = frame.host or self.host
        self.error = frame.error
        if frame.detail is not None:
            self.detail = frame.detail
        table = self.table
        with self.app.batch_update():
            table.now = frame.time
            table.domains = frame.rows
            self.update_status()
            self.show_detail()
        self.app.poller_state.selected = table.selected
        if table.selected is not None and (self.detail is None or self.detail.domid != table.selected):
            self.app.request_detail()  # the cursor landed on a domain of its own (first frame, a death)

    def apply_detail(self, detail: Detail) -> None:
        self.detail = detail
        self.show_detail()

    def update_status(self) -> None:
        app = self.app
        t = self.table
        self.query_one(StatusBar).show(status_text(
            self.host, self.rows, len(t.order), interval=app.poller_state.interval,
            paused=app.poller_state.paused, query=t.query_text, sort=t.sort_col, reverse=t.sort_reverse,
            read_only=app.read_only, error=self.error, pal=app.pal, width=self.size.width or 80,
            under_way=" ".join(getattr(app, "under_way", {}).values())))

    def show_detail(self) -> None:
        r = self.table.selected_row()
        d = self.detail if (self.detail is not None and r is not None and self.detail.domid == r.domid) else None
        self.query_one(DetailPanel).show(r, d, keys=self.app.keys_for_hint(), read_only=self.app.read_only,
                                         pal=self.app.pal)

    # -- what the table's reactives changed ------------------------------------------------
    def _selection_changed(self, domid: int | None) -> None:
        self.app.poller_state.selected = domid
        self.detail = None
        self.show_detail()
        self.app.request_detail()
        self.refresh_bindings()

    def _sorting_changed(self, sorting: tuple[str, bool]) -> None:
        self.update_status()
        col, reverse = sorting
        direction = "reversed" if reverse else ""
        self.app.notify(f"sorted by {SORT_LABEL.get(col, col)} {direction}".strip(), timeout=2, markup=False,
                        key="sort")

    def _query_changed(self, query: str) -> None:
        self.update_status()
        self.show_detail()

    def _theme_changed(self, theme) -> None:
        self.update_status()
        self.show_detail()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_zoom()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        col = event.column_key.value
        t = self.table
        t.sorting = (col, not t.sort_reverse) if col == t.sort_col else (col, False)

    # -- actions --------------------------------------------------------------------------
    def check_action(self, action: str, parameters) -> bool | None:
        app = self.app
        if action in bindings.WRITE_ACTIONS:
            if app.read_only:
                return False
            return True if self.table.selected is not None else None
        if action == "clear_filter":
            return bool(self.table.query_text) or self.query_one("#filter").has_class("-active")
        return True

    def selected(self) -> Row | None:
        return self.table.selected_row()

    def do(self, action: str) -> None:
        """Run one of this screen's actions by name (palette commands)."""
        if self.check_action(action, ()) is not True:
            self.app.notify(f"{action.replace('_', ' ')} is not available here", severity="warning", markup=False)
            return
        getattr(self, f"action_{action}")()

    def action_connect(self) -> None:
        r = self.selected()
        if r is not None:
            self.app.start_connect(r)

    def action_attach(self) -> None:
        r = self.selected()
        if r is not None:
            self.app.start_attach(r)

    def action_force_disconnect(self) -> None:
        r = self.selected()
        if r is not None:
            self.app.start_disconnect(r, force=True)

    def action_set_flag(self) -> None:
        r = self.selected()
        if r is not None:
            self.app.start_flag(r, "disconnected")

    def action_set_flag_connected(self) -> None:
        r = self.selected()
        if r is not None:
            self.app.start_flag(r, "connected")

    def action_tail(self) -> None:
        from xcinspect.tui.tail_screen import open_tail

        r = self.selected()
        if r is not None:
            open_tail(self.app, r)

    def action_filter(self) -> None:
        f = self.query_one("#filter", Input)
        if self.focused is f:
            raise SkipAction()  # a slash typed in the filter line
        f.add_class("-active")
        # A priority binding, and focus moved now, not after a message round (``focus()``
        # defers): the app routes each key by the focus when it reads it, so the keys typed
        # in the same burst as the slash ("/stuck") go to the filter, not to the table.
        self.set_focus(f)
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        f = self.query_one("#filter", Input)
        f.value = ""
        f.remove_class("-active")
        self.table.query_text = ""
        self.table.focus()
        self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.query_text = event.value.strip()

    def action_filter_done(self) -> None:
        f = self.query_one("#filter", Input)
        if self.focused is not f:
            raise SkipAction()  # enter elsewhere: the table's (zoom), a dialog's, ...
        if not f.value.strip():
            f.remove_class("-active")
        self.set_focus(self.table)  # now, not after a message round (table.focus() defers)
        self.refresh_bindings()

    def on_key(self, event) -> None:
        # esc in the filter line clears it (the Input swallows nothing else we need)
        if event.key == "escape" and self.focused is self.query_one("#filter"):
            event.stop()
            self.action_clear_filter()

    def sort_by(self, col: str, reverse: bool | None = None) -> None:
        t = self.table
        t.sorting = (col, t.sort_reverse if reverse is None else reverse)

    def action_sort_next(self) -> None:
        t = self.table
        order = SORT_ORDER
        i = order.index(t.sort_col) if t.sort_col in order else -1
        t.sorting = (order[(i + 1) % len(order)], False)

    def action_sort_reverse(self) -> None:
        t = self.table
        t.sorting = (t.sort_col, not t.sort_reverse)

    def action_next_problem(self, step: int = 1) -> None:
        t = self.table
        order = t.order
        if not order:
            return
        here = order.index(t.selected) if t.selected in order else (-1 if step > 0 else 0)
        for k in range(1, len(order) + 1):
            r = t.row_for(order[(here + step * k) % len(order)])
            if r is not None and r.problem:
                t.selected = r.domid
                return
        self.app.notify("no console has a problem", timeout=2, markup=False, key="problem")

    def action_prev_problem(self) -> None:
        self.action_next_problem(-1)

    def action_toggle_pause(self) -> None:
        self.app.toggle_pause()

    def action_faster(self) -> None:
        self.app.change_interval(-1)

    def action_slower(self) -> None:
        self.app.change_interval(+1)

    def action_refresh(self) -> None:
        self.app.request_tick()

    def action_zoom(self) -> None:
        self.toggle_class("-zoom")
        if not self.has_class("-zoom"):
            self.table.focus()  # hidden while zoomed, it lost the focus: the arrows move it again
        self.call_after_refresh(self.show_detail)

    def action_help(self) -> None:
        self.app.action_help()

    def action_quit(self) -> None:
        self.app.exit(0)
