"""What the monitor knows about one console (``Entry``, mutated in place on the poller
thread) and what one tick changed (``TickResult``)."""

from __future__ import annotations

from typing import Any

from xcinspect.core import flags, health, ring
from xcinspect.core.model import BackendFacts, DomainInfo
from xcinspect.platform.base import PageMapping

RawWords = tuple[int, int, int, int, int]  # in_cons, in_prod, out_cons, out_prod, the flag word


class Entry:
    """Everything the monitor knows about one domain's console. Mutated in place."""

    __slots__ = (
        "info", "mapping", "layout", "track", "facts", "verdict", "idx", "raw", "flag", "error",
        "map_error", "next_eval", "console_type", "flag_word", "has_tty", "state_since",
    )

    def __init__(self, info: DomainInfo, layout: str) -> None:
        self.info = info
        self.mapping: PageMapping | None = None
        self.layout = layout
        self.track = health.Track()
        self.facts: BackendFacts | None = None
        self.verdict = health.Verdict(health.IDLE, "not sampled yet")
        self.idx: health.Indices | None = None
        self.flag = flags.FlagReading(layout, None, flags.NOT_APPLICABLE)
        self.error: str | None = info.error
        self.map_error: str | None = None
        self.raw: RawWords | None = None  # last (indices..., flag word) read from the page
        self.next_eval = 0.0  # re-classify by then even if nothing moved
        self.console_type = info.console.type if info.console else None
        self.flag_word = -1  # the 32-bit word at 3088 that ``flag`` was decoded from
        self.has_tty = bool(info.console.tty) if info.console else None
        self.state_since: float | None = None  # when the verdict last changed state

    # -- views ------------------------------------------------------------------------
    @property
    def domid(self) -> int:
        return self.info.domid

    @property
    def name(self) -> str:
        return self.info.name

    def snapshot(self) -> ring.PageSnapshot | None:
        if self.idx is None:
            return None
        in_cons, in_prod, out_cons, out_prod = self.idx
        return ring.PageSnapshot(
            out=ring.RingState(out_cons, out_prod, ring.OUT_SIZE),
            in_=ring.RingState(in_cons, in_prod, ring.IN_SIZE),
            flag=self.flag,
        )

    def unread_out(self, limit: int | None = None) -> bytes:
        if self.mapping is None:
            return b""
        try:
            return ring.unread_out(self.mapping.buf, limit=limit)
        except (ValueError, OSError):
            return b""

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        snap = self.snapshot()
        console = self.info.console.as_dict() if self.info.console else None
        return {
            "domid": self.info.domid,
            "name": self.info.name,
            "console": console,
            "ring": snap.as_dict() if snap else None,
            "verdict": self.verdict.as_dict(),
            "backend": self.facts.as_dict() if self.facts else None,
            "out_rate": round(self.track.rate_at(self.track.t_last if now is None else now), 1),
        }


class TickResult:
    """What one tick changed (a plain slotted class: it is built on every tick)."""

    __slots__ = ("appeared", "gone", "changed_state", "moved")

    def __init__(self) -> None:
        self.appeared: list[int] = []
        self.gone: list[tuple[int, str]] = []
        self.changed_state: list[tuple[int, str, str]] = []  # domid, old state, new state
        self.moved = 0


class _Quiet(TickResult):
    """The result of a tick that changed nothing (shared, immutable: empty tuples)."""
    __slots__ = ()

    def __init__(self) -> None:
        for name, value in (("appeared", ()), ("gone", ()), ("changed_state", ()), ("moved", 0)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("the quiet TickResult is shared and read-only")


QUIET = _Quiet()
