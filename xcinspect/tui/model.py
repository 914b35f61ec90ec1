"""What the poller thread hands the UI: immutable rows, details and frames (no Textual).

Every guest string in them has been through ``clean`` (one safe line) or the sanitizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from xcinspect.core import health
from xcinspect.core.sanitize import one_line


class Row(NamedTuple):
    """One domain as the table shows it (all guest strings sanitized). A NamedTuple:
    immutable, and built 5,000 times a second at 5,000 domains (a frozen dataclass took
    half as long again)."""

    domid: int
    name: str
    state: str
    reason: str
    action: str | None
    flag: str  # connected / disconnected / invalid / n/a
    flag_layout: str
    out_cons: int | None
    out_prod: int | None
    out_fill: int | None
    in_cons: int | None
    in_prod: int | None
    in_fill: int | None
    rate: float
    moved_at: float | None  # monitor clock when an index last moved (the table shows the age)
    attached: str  # who holds the console lock ("" when nobody)
    serviced_by: str | None
    backend: str  # health.backend_phrase
    console_type: str | None
    qemu: bool
    flag_effect: str | None = None  # what byte 3088 == 1 does here (health.DROPS_OUTPUT, ...)

    @property
    def problem(self) -> bool:
        return self.state in health.PROBLEM_STATES

    def quiet_at(self, now: float) -> float | None:
        """Seconds since an index moved, at ``now`` (monitor clock); None before any sample.
        Not a field: an age would change every Row every second, a time changes it only
        when the ring moves."""
        return None if self.moved_at is None else now - self.moved_at


@dataclass(frozen=True, slots=True)
class Detail:
    """Extra data for the selected domain."""

    domid: int
    keys: tuple[tuple[str, str], ...]  # console/* xenstore keys (sanitized)
    consumed: str  # the newest output a backend already read (sanitized)
    unread: str  # output still in the ring (sanitized)
    history: tuple[int, ...]  # out fill per sample
    facts: dict


@dataclass(frozen=True)
class Frame:
    seq: int
    time: float  # monitor clock
    rows: tuple[Row, ...]
    host: dict
    detail: Detail | None
    appeared: tuple[tuple[int, str], ...] = ()
    gone: tuple[tuple[int, str], ...] = ()
    stalled: tuple[tuple[int, str], ...] = ()
    recovered: tuple[tuple[int, str, str], ...] = ()  # domid, name, new state
    tick_ms: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class DetailGone:
    domid: int | None


@dataclass(frozen=True)
class OpenFailed:
    message: str
    hint: str | None = None


def clean(text: str) -> str:
    """A xenstore string (name, key value) as one safe line."""
    return one_line(text)
