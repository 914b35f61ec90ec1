"""The detail panel: everything about the selected domain (verdict sentence, ring
pictures, fill history, flag and lock facts, last output, the xenstore keys)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from xcinspect.core import health, ring
from xcinspect.tui import bindings, render
from xcinspect.tui.model import Detail, Row


def sentence(r: Row, keys: dict[str, str], read_only: bool) -> str:
    """The verdict as a sentence with the suggested key (as the operator has it bound)."""
    return bindings.verdict_sentence(health.Verdict(r.state, r.reason, r.action), keys, read_only)


FLAG_MEANING = {
    "drops-output": "a Linux >= 7.1 guest throws its output away",
    "ignored": "this guest ignores it",
    "qemu-console": "QEMU's console: always 1",
}


def facts_text(r: Row, pal: render.Palette) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    # who holds the console first: the flag's explanation may be cut at the panel's edge
    t.append("attached ", style=Style(bold=True))
    t.append(r.attached or "nobody", style=pal["accent"] if r.attached else Style())
    t.append(" · flag ", style=Style(bold=True))
    t.append(f"{r.flag} ({r.flag_layout})",
             style=pal["warning"] if r.flag in render.WARN_FLAGS and r.flag_effect != "ignored" else Style())
    meaning = FLAG_MEANING.get(r.flag_effect or "")
    if meaning is None and r.flag_layout == "xen-4.21" and r.flag == "connected":
        meaning = "xenconsoled connected once; says nothing about now"
    if meaning:
        t.append(f": {meaning}", style=Style(italic=True))
    return t


def keys_text(d: Detail | None, pal: render.Palette) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if d is None or not d.keys:
        t.append("no console keys", style=pal["foreground-muted"])
        return t
    width = max(len(k) for k, _ in d.keys)
    for i, (k, v) in enumerate(d.keys):
        if i:
            t.append("\n")
        t.append(k.ljust(width) + " ", style=pal["foreground-muted"])
        t.append(v)
    return t


def output_text(d: Detail | None, lines: int, width: int, pal: render.Palette) -> Text:
    """The last ``lines`` lines of output: what a backend already read in the muted colour,
    what is still unread in the normal one."""
    if d is None or (not d.consumed and not d.unread):
        return Text("(no output in the ring)", style=pal["foreground-muted"])
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(d.consumed.expandtabs(8), style=pal["foreground-muted"])
    t.append(d.unread.expandtabs(8))
    # blank lines left out: the panel has a few rows, each should carry output
    parts = [p for p in t.split("\n", allow_blank=True) if p.plain.strip()]
    parts = parts[-lines:] if lines > 0 else []
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, p in enumerate(parts):
        if i:
            out.append("\n")
        p.truncate(max(1, width), overflow="ellipsis")
        out.append_text(p)
    return out


FIXED_HEIGHT = ("#history", "#output")  # their height is set in xcinspect.tcss, not by content


class DetailPanel(Vertical):
    """Everything about the selected domain. A part is updated only when what it shows
    changed: ``Static.update`` and setting ``border_title`` repaint unconditionally, and
    a frame twice a second would otherwise redraw the whole panel to the terminal."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._shown: dict[str, object] = {}  # part -> what it shows now

    def _put(self, part: str, content) -> None:
        key = render.shown_as(content)
        if self._shown.get(part) == key:
            return
        self._shown[part] = key
        if part == "title":
            self.border_title = content
        else:
            # A part of fixed height needs no layout pass: one re-lays the whole screen out,
            # and Textual repaints the table's scrollbar column on every one.
            self.query_one(part, Static).update(content, layout=part not in FIXED_HEIGHT)

    def compose(self):
        yield Static(id="verdict")
        with Horizontal(id="detail-body"):
            with Vertical(id="detail-left"):
                yield Static(id="rings")
                yield Static(id="history")
                yield Static(id="facts")
            with Vertical(id="detail-right"):
                yield Static(id="output")
                yield Static(id="keys")

    def on_mount(self) -> None:
        self.query_one("#output").border_title = "last output"
        self.query_one("#keys").border_title = "xenstore console/"
        self._put("title", "no domain selected")

    def show(self, r: Row | None, d: Detail | None, *, keys: dict[str, str], read_only: bool,
             pal: render.Palette) -> None:
        if r is None:
            self._put("title", "no domain selected")
            for w in ("#verdict", "#rings", "#history", "#facts", "#output", "#keys"):
                self._put(w, "")
            return
        if d is not None and d.domid != r.domid:
            d = None
        title = Text()
        title.append(f"dom {r.domid} ")
        title.append(render.truncate(r.name, 32), style=Style(bold=True))
        title.append(" · ")
        title.append(r.state, style=pal.state(r.state))
        self._put("title", title)
        verdict = Text(sentence(r, keys, read_only), style=pal.state(r.state) if r.problem else Style())
        self._put("#verdict", verdict)
        left = self.query_one("#detail-left")
        lw = left.content_region.width or 40
        ring_w = max(12, min(64, lw - 12))
        rings = Text(no_wrap=True)
        rings.append_text(render.ring_picture("out", r.out_cons, r.out_prod, ring.OUT_SIZE, ring_w, pal))
        rings.append("\n")
        rings.append_text(render.ring_picture("in ", r.in_cons, r.in_prod, ring.IN_SIZE, ring_w, pal))
        rings.append("\n")
        rings.append_text(render.ring_numbers("out", r.out_cons, r.out_prod, ring.OUT_SIZE, pal))
        rings.append("\n")
        rings.append_text(render.ring_numbers("in ", r.in_cons, r.in_prod, ring.IN_SIZE, pal))
        self._put("#rings", rings)
        hist = Text(no_wrap=True)
        hist.append("out fill history ", style=Style(bold=True))
        values = d.history if d is not None else ()
        hist.append_text(render.history_text(values, ring.OUT_SIZE, max(4, lw - 18), pal))
        self._put("#history", hist)
        self._put("#facts", facts_text(r, pal))
        out = self.query_one("#output", Static)
        h = max(1, out.content_region.height or out.size.height - 2 or 4)
        w = max(10, out.content_region.width or 40)
        self._put("#output", output_text(d, h, w, pal))
        self._put("#keys", keys_text(d, pal))
