"""The status line of the main screen: host, counts of problem consoles, filter, delay."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from xcinspect.core import health
from xcinspect.tui import render
from xcinspect.tui.model import Row


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; }
    """

    _shown: tuple | None = None

    def show(self, text: Text) -> None:
        """Update only when the line changed (``update`` repaints it every frame otherwise)."""
        key = render.shown_as(text)
        if key != self._shown:
            self._shown = key
            self.update(text, layout=False)  # one line high whatever it says


def status_text(host: dict, rows: tuple[Row, ...], shown: int, *, interval: float, paused: bool,
                query: str, sort: str, reverse: bool, read_only: bool, error: str | None,
                pal: render.Palette, width: int = 80, under_way: str = "") -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("xcinspect", style=pal["primary"] + Style(bold=True))
    # the modes first: the end of the line is what an 80-column terminal cuts
    if read_only:
        t.append("  READ-ONLY", style=pal["accent"] + Style(bold=True))
    if paused:
        t.append("  PAUSED", style=pal["warning"] + Style(bold=True, reverse=True))
    if under_way:
        t.append(f"  {under_way}", style=pal["accent"] + Style(bold=True))
    kind = host.get("kind")
    if kind:
        ver = host.get("xen_version", "?")
        t.append(f"  {kind}" + ("" if kind == "sim" else f" xen {ver}"))
        layout = host.get("flag_layout")
        if layout and width >= 100:
            t.append(f" · flag layout {layout}")
        if host.get("xenconsoled_pid") is None and kind:
            t.append(" · xenconsoled down", style=pal["warning"])
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    t.append(f"  {len(rows)} dom")
    for state in health.STATES:
        n = counts.get(state)
        if n and state in health.PROBLEM_STATES:
            t.append("  ")
            t.append(f"{n} {state}", style=pal.state(state))
    if query:
        t.append(f"  filter '{query}': {shown}", style=pal["accent"])
    t.append(f"  every {interval:g}s")
    if error:
        t.append(f"  {error}", style=pal["error"])
    return t
