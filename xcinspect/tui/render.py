"""Pure rendering helpers for the TUI: numbers, gauges, ring pictures, sparklines.

No Textual here and no I/O: every function takes plain values (indices, byte counts,
sanitized strings) and returns ``str`` or ``rich.text.Text``. Colours come in through a
``Palette``, which the app builds from the current theme's variables, so nothing in this
module names a colour.

Guest-controlled strings reach this module only after ``Sanitizer``; they are put into
``Text`` objects verbatim (never parsed as markup).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.style import Style
from rich.text import Text

# Verdict state -> the theme token it is drawn in (see core/health.py for the states).
STATE_TOKEN = {
    "error": "error",
    "corrupt": "error",
    "stalled": "error",
    "disconnected": "warning",
    "no-backend": "warning",
    "backlog": "accent",
    "serviced": "success",
    "idle": "foreground-muted",
}
STATE_BOLD = frozenset({"error", "corrupt", "stalled"})

FLAG_SHORT = {"connected": "conn", "disconnected": "DISC", "invalid": "inval", "n/a": "n/a", "byte=1": "byte1"}
WARN_FLAGS = frozenset({"disconnected", "invalid", "byte=1"})

_EIGHTHS = " ▏▎▍▌▋▊▉█"
_SPARK = "▁▂▃▄▅▆▇█"


class Palette:
    """Rich styles resolved from theme variables (``{"error": "#f0605a", ...}``)."""

    TOKENS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground",
              "foreground-muted", "text-muted", "panel", "ring-unread", "ring-empty")

    def __init__(self, variables: Mapping[str, str] | None = None, *, to_rich=None) -> None:
        self.styles: dict[str, Style] = {}
        variables = variables or {}
        for token in self.TOKENS:
            value = variables.get(token)
            color = None
            if value:
                color = to_rich(value) if to_rich else value
            self.styles[token] = Style(color=color) if color else Style()

    def __getitem__(self, token: str) -> Style:
        return self.styles.get(token) or Style()

    def state(self, state: str) -> Style:
        style = self[STATE_TOKEN.get(state, "foreground")]
        if state in STATE_BOLD:
            style = style + Style(bold=True)
        return style


PLAIN = Palette()


# -- numbers ------------------------------------------------------------------------------
def fmt_rate(bps: float) -> str:
    """Bytes per second, 5 characters at most: ``0``, ``512``, ``1.2K``, ``15K``, ``3.4M``."""
    if bps < 0.5:
        return "0"
    if bps < 1000:
        return f"{bps:.0f}"
    if bps < 9950:
        return f"{bps / 1000:.1f}K"
    if bps < 999_500:
        return f"{bps / 1000:.0f}K"
    if bps < 9.95e6:
        return f"{bps / 1e6:.1f}M"
    if bps < 999.5e6:
        return f"{bps / 1e6:.0f}M"
    return f"{bps / 1e9:.1f}G"


def fmt_age(seconds: float | None) -> str:
    """How long ago, coarse so the cell changes at most once a second: ``4s``, ``12m``."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 100:
        return f"{s}s"
    if s < 6000:
        return f"{s // 60}m"
    if s < 360000:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def truncate(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


# -- gauge --------------------------------------------------------------------------------
def fill_token(fill: int, size: int) -> str:
    if size <= 0 or fill > size:
        return "error"
    if fill >= size:
        return "error"
    if fill * 4 >= size * 3:
        return "warning"
    return "primary"


def bar(fill: int, size: int, width: int) -> str:
    """A horizontal bar of ``width`` cells in eighths of a cell."""
    if width <= 0:
        return ""
    if size <= 0:
        return " " * width
    frac = min(max(fill, 0), size) / size
    eighths = round(frac * width * 8)
    if fill > 0 and eighths == 0:
        eighths = 1  # a non-empty ring never looks empty
    full, part = divmod(eighths, 8)
    s = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return s.ljust(width)


def gauge(fill: int | None, size: int, width: int = 8, palette: Palette = PLAIN, digits: int = 4) -> Text:
    """``████▌    2048``: a bar plus the fill in bytes, coloured by how full it is."""
    if fill is None:
        return Text("-".rjust(width + 1 + digits), style=palette["foreground-muted"])
    if fill > size:
        return Text("CORRUPT".ljust(width) + " " + "?".rjust(digits), style=palette.state("corrupt"))
    t = Text()
    t.append(bar(fill, size, width), style=palette[fill_token(fill, size)])
    t.append(" ")
    t.append(str(fill).rjust(digits), style=palette["error"] if fill >= size else Style())
    return t


# -- ring picture -------------------------------------------------------------------------
def ring_cells(cons: int, prod: int, size: int, width: int) -> tuple[list[bool], int, int, bool]:
    """Which of ``width`` cells hold unread bytes, and where cons and prod fall.

    Returns ``(unread, cons_cell, prod_cell, wraps)``. A cell is unread when any byte it
    covers lies in the unread span ``[cons, prod)`` (positions modulo ``size``); ``wraps``
    is True when that span runs past the end of the ring back to its start.
    """
    mask32 = 0xFFFFFFFF
    fill = (prod - cons) & mask32
    width = max(1, width)
    if fill > size:
        return [False] * width, 0, 0, False
    start = cons % size
    end = start + fill  # may exceed size: the span wraps
    unread = []
    for i in range(width):
        lo = i * size // width
        hi = max(lo + 1, (i + 1) * size // width)
        hit = (lo < end and hi > start) or (end > size and lo < end - size)
        unread.append(bool(fill) and hit)
    cons_cell = start * width // size
    prod_cell = (prod % size) * width // size
    return unread, cons_cell, prod_cell, end > size


def ring_picture(label: str, cons: int | None, prod: int | None, size: int, width: int,
                 palette: Palette = PLAIN) -> Text:
    """Two lines: the ring as ``width`` cells plus its state, then the cons/prod markers.

    ``█`` cells hold unread bytes, ``·`` cells are free. The left edge is offset 0 of the
    ring, so a span that wraps shows at both ends (and is marked ``↺``). ``c`` marks
    where the backend reads next, ``p`` where the guest writes next; ``↕`` means both
    fall in one cell (an empty or a full ring).
    """
    pad = " " * (len(label) + 1)
    t = Text(no_wrap=True)
    t.append(label + " ", style=Style(bold=True))
    if cons is None or prod is None:
        t.append("not sampled", style=palette["foreground-muted"])
        t.append("\n")
        return t
    fill = (prod - cons) & 0xFFFFFFFF
    if fill > size:
        t.append("▏" + "?" * width + "▕", style=palette.state("corrupt"))
        t.append(" CORRUPT", style=palette.state("corrupt"))
        t.append("\n" + pad + f" fill {fill} > {size}: nothing is read", style=palette.state("corrupt"))
        return t
    unread, cc, pc, wraps = ring_cells(cons, prod, size, width)
    t.append("▏", style=palette["ring-empty"])
    for u in unread:
        if u:
            t.append("█", style=palette["ring-unread"])
        else:
            t.append("·", style=palette["ring-empty"])
    t.append("▕", style=palette["ring-empty"])
    if fill == size:
        t.append(" full", style=palette["error"] + Style(bold=True))
    elif fill == 0:
        t.append(" empty", style=palette["foreground-muted"])
    else:
        t.append(f" {fill * 100 // size}%", style=palette[fill_token(fill, size)])
    marks = [" "] * width
    if cc == pc:
        marks[cc] = "↕"
    else:
        marks[cc] = "c"
        marks[pc] = "p"
    t.append("\n" + pad + " ")
    for m in marks:
        if m == "c":
            t.append(m, style=palette["accent"] + Style(bold=True))
        elif m == "p":
            t.append(m, style=palette["primary"] + Style(bold=True))
        elif m == "↕":
            t.append(m, style=palette["secondary"] + Style(bold=True))
        else:
            t.append(m)
    if wraps:
        t.append(" ↺", style=palette["accent"])
    return t


def ring_numbers(label: str, cons: int | None, prod: int | None, size: int, palette: Palette = PLAIN) -> Text:
    """``out c=1000000 p=1002048 2048/2048``: the raw indices and the fill."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(label + " ", style=Style(bold=True))
    if cons is None or prod is None:
        t.append("-", style=palette["foreground-muted"])
        return t
    fill = (prod - cons) & 0xFFFFFFFF
    t.append("c", style=palette["accent"] + Style(bold=True))
    t.append(f"={cons} ")
    t.append("p", style=palette["primary"] + Style(bold=True))
    t.append(f"={prod} ")
    t.append(f"{fill}/{size}", style=palette[fill_token(fill, size)] if fill else Style())
    return t


# -- sparkline ----------------------------------------------------------------------------
def sparkline(values: Sequence[int], top: int, width: int) -> str:
    """The last ``width`` values as block characters, scaled to ``top``."""
    if width <= 0 or not values:
        return ""
    vals = list(values)[-width:]
    out = []
    for v in vals:
        if top <= 0:
            out.append(_SPARK[0])
            continue
        v = min(max(v, 0), top)
        out.append(_SPARK[min(len(_SPARK) - 1, v * (len(_SPARK) - 1) // top)] if v else _SPARK[0])
    return "".join(out)


def history_text(values: Sequence[int], top: int, width: int, palette: Palette = PLAIN) -> Text:
    t = Text()
    for ch, v in zip(sparkline(values, top, width), list(values)[-width:]):
        t.append(ch, style=palette[fill_token(v, top)])
    return t


# -- guest text ---------------------------------------------------------------------------
def guest_lines(text: str, last: int, width: int | None = None) -> list[str]:
    """The last ``last`` lines of sanitized text, tabs expanded, optionally cut to ``width``."""
    lines = text.expandtabs(8).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = lines[-last:] if last > 0 else []
    if width:
        lines = [truncate(line, width) for line in lines]
    return lines


def guest_text(text: str, style: Style | None = None) -> Text:
    """Sanitized guest output as a Text object (never markup)."""
    return Text(text.expandtabs(8), style=style or Style(), no_wrap=True, end="")


def shown_as(content: Text | str) -> tuple:
    """What a Static shows, comparable: ``Text ==`` ignores the base style and the
    wrapping options (a new theme changes only the style)."""
    if isinstance(content, Text):
        return (content.plain, tuple(content.spans), content.style, content.justify, content.overflow,
                content.no_wrap, content.end)
    return (content,)
