"""The sampling thread: ticks the Monitor and hands the UI immutable frames.

The UI never touches the Monitor (whose entries the thread mutates in place) and never
waits on xenstore. memray's pattern: a dedicated daemon thread waits on an Event with the
refresh interval as timeout, calls ``monitor.tick()`` (every xenstore call inside has its
own timeout), turns the entries into plain ``Row`` tuples and posts one ``Frame`` to the
app through a callback (``App.post_message`` is thread-safe).

No Textual here: the callback is injected, so frames can be built and tested headless.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from xcinspect.core import flags, health, ring
from xcinspect.core.sanitize import Sanitizer
from xcinspect.tui.model import Detail, DetailGone, Frame, OpenFailed, Row, clean

HISTORY = 120  # samples kept per domain for the sparkline
MASK32 = ring.MASK32
_new_row = tuple.__new__  # Row from its fields in order (FrameBuilder.row)


def flag_cell(reading: flags.FlagReading) -> str:
    """The flag as the table shows it: the state under the host's layout, or, on a host
    without a flag, ``byte=1`` when byte 3088 is set (Linux >= 7.1 reads it as disconnected)."""
    if reading.layout == flags.NONE and reading.byte not in (None, 0):
        return f"byte={reading.byte}"
    return reading.state


@dataclass
class PollerState:
    interval: float = 1.0
    paused: bool = False
    selected: int | None = None


_TYPES: dict[str, str] = {}


def name_of_type(con) -> str | None:
    if con is None or not con.type:
        return None
    t = _TYPES.get(con.type)
    if t is None:
        if len(_TYPES) > 64:
            _TYPES.clear()
        t = _TYPES[con.type] = clean(con.type)
    return t


THIS_TUI = "this TUI"


def holder_name(cmd: str) -> str:
    """Who holds a console lock, as an operator says it, from its command line:
    ``xl console`` (xl execs xenconsole), ``xcinspect attach``, ``xcinspect``, else the
    program's name (a script's, for an interpreter)."""
    args = cmd.split()
    if not args:
        return "?"
    if args[0].startswith("["):  # a kernel thread or a zombie: [comm]
        return args[0][:24]
    names = [a.rsplit("/", 1)[-1] for a in args]
    if names[0] == "xenconsole" or names[:2] == ["xl", "console"]:
        return "xl console"
    for i, n in enumerate(names[:4]):
        if n == "xcinspect" or n.startswith("xcinspect."):
            return "xcinspect attach" if "attach" in args[i + 1:] else "xcinspect"  # (after --sim DIR too)
    prog = names[0]
    if prog.startswith("python") and len(names) > 1 and not args[1].startswith("-"):
        prog = names[1]
    return prog[:24] or "?"


def _attached(facts, own_pid: int) -> str:
    """``xl console (pid 14098)``, ``this TUI``, or "" when nobody holds the lock."""
    if facts is None or not facts.lock_holder_pid:
        return ""
    if facts.lock_holder_pid == own_pid:
        return THIS_TUI
    return f"{holder_name(clean(facts.lock_holder_cmd or '?'))} (pid {facts.lock_holder_pid})"


def recent_output(entry, limit: int = ring.OUT_SIZE) -> tuple[bytes, bytes]:
    """(consumed, unread): the newest ``limit`` bytes the guest wrote, split where the
    backend's read position is. Bytes before ``cons`` are output a backend already took
    but that still sits in the ring until the guest wraps over it.

    TODO(monitor): belongs in ``monitor.Entry`` as ``recent_out(limit)``.
    """
    m = entry.mapping
    if m is None or entry.idx is None:
        return b"", b""
    _, _, cons, prod = entry.idx
    fill = (prod - cons) & ring.MASK32
    if fill > ring.OUT_SIZE:
        return b"", b""
    try:
        # what was written before cons, as far back as the ring (and the page's life) goes
        back = min(limit, ring.OUT_SIZE) - fill
        old = b""
        if back > 0:
            old = ring.ring_bytes(m.buf, ring.OUT_OFFSET, ring.OUT_SIZE, (cons - back) & ring.MASK32, cons)
            old = old.lstrip(b"\0")  # never-written part of a fresh page
        new = ring.ring_bytes(m.buf, ring.OUT_OFFSET, ring.OUT_SIZE, cons, prod)
    except (ValueError, OSError, IndexError, TypeError):
        return b"", b""
    return old, new


class FrameBuilder:
    """Turns monitor state into frames; keeps the per-domain history and event memory."""

    def __init__(self, monitor, own_pid: int | None = None) -> None:
        import os

        self.monitor = monitor
        self.own_pid = own_pid if own_pid is not None else os.getpid()
        self.history: dict[int, deque] = {}
        self.sampled: set[int] = set()  # domains seen by at least one tick
        self.seq = 0
        self.names: dict[int, tuple[str, str]] = {}  # domid -> (raw name, sanitized)
        self.reasons: dict[int, tuple[str, str]] = {}  # domid -> (verdict's reason, sanitized)
        self.rows: dict[int, tuple] = {}  # domid -> (what the row shows, Row)
        self.backends: dict[int, tuple] = {}  # domid -> (facts, console, the Row fields from them)

    def row(self, e, now: float) -> Row:
        """The Row for one entry; the previous Row object itself when nothing shown changed
        (the UI skips rows it has already drawn by identity). Run for every console every
        tick (5,000 at 2 Hz): what the row derives from the name, the verdict and the
        backend facts is kept per domain and rebuilt only when that object changes."""
        idx = e.idx
        t = e.track
        if idx is not None:
            moved_at = t.moved_at() if t.last is not None else None
            rate = t.rate_at(now)
        else:
            moved_at = None
            rate = 0.0
        info = e.info
        domid = info.domid
        v = e.verdict
        f = e.facts
        # What the row shows, at the granularity it is shown (whole B/s). The time of the last
        # move, not its age: a ring that does not move keeps its Row (the table ages the rows
        # in view).
        key = (e.raw, v, f, e.flag, info, e.layout, moved_at, round(rate))
        hit = self.rows.get(domid)
        if hit is not None and hit[0] == key:
            return hit[1]
        if idx is not None:
            in_cons, in_prod, out_cons, out_prod = idx
            out_fill = (out_prod - out_cons) & MASK32
            in_fill = (in_prod - in_cons) & MASK32
        else:
            in_cons = in_prod = out_cons = out_prod = out_fill = in_fill = None
        # the name and the verdict's reason, cleaned once per value (a re-classified console
        # gets a new, equal Verdict every few seconds)
        named = self.names.get(domid)
        if named is None or named[0] != info.name:
            named = self.names[domid] = (info.name, clean(info.name))
        reason = self.reasons.get(domid)
        if reason is None or reason[0] != v.reason:
            reason = self.reasons[domid] = (v.reason, clean(v.reason))
        # from the facts and the console keys: objects replaced only when they change
        derived = self.backends.get(domid)
        con = info.console
        if derived is None or derived[0] is not f or derived[1] is not con:
            derived = self.backends[domid] = (
                f, con, _attached(f, self.own_pid), f.serviced_by if f else None,
                health.backend_phrase(f), name_of_type(con), bool(con and con.served_by_qemu))
        # positional: a NamedTuple's keyword constructor costs a third more, 5,000 times a tick
        row = _new_row(Row, (
            domid, named[1], v.state, reason[1], v.action, flag_cell(e.flag), e.layout,
            out_cons, out_prod, out_fill, in_cons, in_prod, in_fill, rate, moved_at,
            derived[2], derived[3], derived[4], derived[5], derived[6], v.flag_effect))
        self.rows[domid] = (key, row)
        return row

    def detail(self, domid: int | None) -> Detail | None:
        if domid is None:
            return None
        e = self.monitor.entries.get(domid)
        if e is None:
            return None
        keys = tuple(sorted((clean(str(k)), clean(str(v))) for k, v in e.info.keys.items()))
        old, new = recent_output(e)
        san = Sanitizer()
        consumed = san.feed(old)
        unread = san.feed(new) + san.flush()
        hist = tuple(self.history.get(domid, ()))
        facts = e.facts.as_dict() if e.facts else {}
        return Detail(domid, keys, consumed, unread, hist, facts)

    def build(self, res, selected: int | None, tick_ms: float = 0.0, error: str | None = None) -> Frame:
        mon = self.monitor
        now = mon.clock()
        views = mon.views()
        rows = tuple(self.row(e, now) for e in views)
        hist = self.history
        for r in rows:
            if r.out_fill is not None:
                h = hist.get(r.domid)
                if h is None:
                    h = hist[r.domid] = deque(maxlen=HISTORY)
                h.append(min(r.out_fill, ring.OUT_SIZE))
        by_id = {r.domid: r for r in rows}
        appeared: tuple = ()
        gone: tuple = ()
        stalled: list = []
        recovered: list = []
        if res is not None:
            appeared = tuple((d, by_id[d].name) for d in res.appeared if d in by_id)
            gone = tuple((d, clean(name)) for d, name in res.gone)
            for d, _ in res.gone:
                hist.pop(d, None)
                self.sampled.discard(d)
                self.names.pop(d, None)
                self.reasons.pop(d, None)
                self.rows.pop(d, None)
                self.backends.pop(d, None)
            born = set(res.appeared) if self.seq else set()
            for d, old, new in res.changed_state:
                r = by_id.get(d)
                if r is None or (d not in self.sampled and d not in born):
                    continue  # first sample at start-up: nothing "became" anything
                if new == health.STALLED and old != health.STALLED:
                    stalled.append((d, r.name))
                elif old == health.STALLED and new != health.STALLED:
                    recovered.append((d, r.name, new))
            self.sampled.update(by_id)
        self.seq += 1
        host = {}
        try:
            host = mon.host_dict()
        except Exception:  # host not opened (tests) -- the header shows less
            host = {}
        return Frame(self.seq, now, rows, host, self.detail(selected), appeared, gone,
                     tuple(stalled), tuple(recovered), tick_ms, error)


class Poller(threading.Thread):
    """Ticks the monitor every ``state.interval`` seconds unless paused."""

    def __init__(self, monitor, deliver: Callable[[Frame], None], state: PollerState,
                 *, builder: FrameBuilder | None = None, opener: Callable[[], None] | None = None) -> None:
        super().__init__(name="xcinspect-poller", daemon=True)
        self.monitor = monitor
        self.deliver = deliver
        self.state = state
        self.builder = builder or FrameBuilder(monitor)
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._tick_now = False
        self._detail_only = False
        self.lock = threading.Lock()  # held while the monitor is touched
        self.ticks = 0
        self.opener = opener  # opens the monitor on this thread, while the UI starts

    # -- requests from the UI thread (cheap, never block) ---------------------------------
    def request_tick(self) -> None:
        self._tick_now = True
        self._wake.set()

    def request_detail(self) -> None:
        self._detail_only = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        if self.opener is not None:
            try:
                with self.lock:
                    self.opener()
            except Exception as exc:
                self.deliver(OpenFailed(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                                        getattr(exc, "hint", None)))
                return
        next_due = 0.0
        while not self._halt.is_set():
            now = time.monotonic()
            timeout = max(0.0, next_due - now) if not self.state.paused else None
            if timeout is None or timeout > 0:
                self._wake.wait(timeout if timeout is not None else 3600)
            self._wake.clear()
            if self._halt.is_set():
                break
            tick = self._tick_now or (not self.state.paused and time.monotonic() >= next_due)
            self._tick_now = False
            detail_only = self._detail_only
            self._detail_only = False
            if tick:
                next_due = time.monotonic() + self.state.interval
                self.once()
            elif detail_only:
                self.detail_once()

    def once(self) -> Frame:
        """One tick and one frame (also called directly by tests and the benchmark)."""
        with self.lock:
            t0 = time.perf_counter()
            error = None
            res = None
            try:
                res = self.monitor.tick()
            except Exception as exc:  # a broken tick must not kill the UI: show it
                error = f"sampling failed: {type(exc).__name__}: {exc}"
            frame = self.builder.build(res, self.state.selected, (time.perf_counter() - t0) * 1000, error)
            if error is None and self.monitor.xs_error:
                frame = _with_error(frame, f"xenstore: {self.monitor.xs_error}")
            self.ticks += 1
        self.deliver(frame)
        return frame

    def detail_once(self) -> None:
        with self.lock:
            detail = self.builder.detail(self.state.selected)
        self.deliver(detail if detail is not None else DetailGone(self.state.selected))


class EarlyOpen(threading.Thread):
    """Opens the monitor while the UI is still being imported and started (issue 15: the
    first full frame came after Textual's import and start-up *plus* the open, which is
    mostly waiting on xenstore). The poller's opener is then ``wait``."""

    def __init__(self, monitor) -> None:
        super().__init__(name="xcinspect-open", daemon=True)
        self.monitor = monitor
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.monitor.open()
        except BaseException as exc:  # handed to the poller, which shows it as OpenFailed
            self.error = exc

    def wait(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _with_error(frame: Frame, error: str) -> Frame:
    from dataclasses import replace

    return replace(frame, error=error)


__all__ = ["EarlyOpen", "FrameBuilder", "Poller", "PollerState", "recent_output"]
