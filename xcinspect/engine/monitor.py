"""The monitor: discovery + page sampling + backend facts + verdicts, for any platform.

Front ends (CLI, TUI, metrics) drive it with ``tick()`` and read ``views()``. It never
writes: pages are mapped read-only. Nothing here imports Textual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xcinspect.core import flags, health
from xcinspect.core.buffer import WritableBuffer
from xcinspect.core.errors import UsageError
from xcinspect.core.model import HostInfo
from xcinspect.engine import facts
from xcinspect.engine.discovery import Discovery
from xcinspect.engine.entry import QUIET, Entry, RawWords, TickResult
from xcinspect.engine.fast_path import INDEX_OFFSET, INDICES_AND_FLAG, NEVER, FastPath, positions_changed, positions_due
from xcinspect.platform.base import PageMapping, Platform, PlatformError
from xcinspect.platform.xenstore import XenstoreError, XsClient


class Monitor:
    """Watches every console of one platform."""

    def __init__(
        self,
        platform: Platform,
        *,
        flag_layout: str = flags.AUTO,
        clock: Callable[[], float] = time.monotonic,
        stall_after: float = health.STALL_AFTER,
        idle_after: float = health.IDLE_AFTER,
        facts_interval: float = 2.0,
        xs_timeout: float = 2.0,
        watch: bool = True,
    ) -> None:
        if flag_layout not in flags.CHOICES:
            raise UsageError(f"unknown flag layout {flag_layout!r} (choose from {', '.join(flags.CHOICES)})")
        self.platform = platform
        self.flag_override = flag_layout
        self.clock = clock
        self.stall_after = stall_after
        self.idle_after = idle_after
        self.facts_interval = facts_interval
        self.xs_timeout = xs_timeout
        self.watch = watch  # False: one look (--once, check), see Discovery
        self.entries: dict[int, Entry] = {}
        self.xs: XsClient | None = None
        self.discovery: Discovery | None = None
        self.host: HostInfo | None = None
        self.xs_error: str | None = None
        self.consoled_pid: int | None = None
        self.scrape_errors = 0
        self.ticks = 0
        self._facts_due = 0.0
        self._lost: set[int] = set()  # domains whose page became unreadable: mapped again later
        self.fast = FastPath()

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        """Check the environment and read every domain once. Raises PlatformError."""
        self.platform.check()
        self.host = HostInfo(self.platform.kind, self.platform.xen_version(), self.platform.default_flag_layout())
        self.xs = XsClient(self.platform.xenstore_path(), timeout=self.xs_timeout, read_only=True)
        self.discovery = Discovery(self.xs, watch=self.watch)
        self.discovery.start()
        self._sync_entries(set(self.discovery.domains))

    def close(self) -> None:
        self.fast.invalidate()
        for e in self.entries.values():
            if e.mapping is not None:
                e.mapping.close()
                e.mapping = None
        self.entries.clear()
        if self.xs is not None:
            self.xs.close()

    def __enter__(self) -> Monitor:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def host_layout(self) -> str:
        if self.flag_override != flags.AUTO:
            return self.flag_override
        return self.host.default_layout if self.host else flags.NONE

    def host_dict(self) -> dict[str, Any]:
        assert self.host is not None
        d = self.host.as_dict(self.host_layout)
        d["flag_layout_source"] = "override" if self.flag_override != flags.AUTO else "auto"
        d["xenconsoled_pid"] = self.consoled_pid
        d["xenstore_ok"] = self.xs_error is None
        if self.xs_error:
            d["xenstore_error"] = self.xs_error
        return d

    # -- entries --------------------------------------------------------------------------
    def _layout_for(self, domid: int) -> str:
        return flags.resolve_layout(self.flag_override, self.platform.domain_flag_hint(domid), self.host_layout)

    def _map(self, e: Entry) -> None:
        c = e.info.console
        if c is None or e.info.error:
            return
        try:
            e.mapping = self.platform.map_page(e.domid, c.ring_ref, writable=False)
            e.map_error = None
        except PlatformError as exc:
            e.mapping = None
            e.map_error = exc.message

    def _sync_entries(self, changed: set[int]) -> TickResult:
        res = TickResult()
        self.fast.invalidate()
        assert self.discovery is not None
        doms = self.discovery.domains
        for d in sorted(changed):
            old = self.entries.get(d)
            info = doms.get(d)
            if info is None:
                if old is not None:
                    if old.mapping is not None:
                        old.mapping.close()
                    del self.entries[d]
                    res.gone.append((d, old.name))
                continue
            if old is None:
                e = Entry(info, self._layout_for(d))
                e.track.appeared_late = self.ticks > 0
                self._map(e)
                self.entries[d] = e
                res.appeared.append(d)
                self._facts_due = 0.0
            else:
                remap = old.info.console is None or info.console is None or (
                    old.info.console.ring_ref != info.console.ring_ref
                ) or old.mapping is None
                old.info = info
                old.error = info.error
                old.console_type = info.console.type if info.console else None
                old.has_tty = bool(info.console.tty) if info.console else None
                old.next_eval = 0.0
                if remap:
                    if old.mapping is not None:
                        old.mapping.close()
                        old.mapping = None
                    self._map(old)
                self._facts_due = 0.0
        return res

    # -- sampling -------------------------------------------------------------------------
    def _poll_xenstore(self, timeout: float) -> set[int]:
        assert self.discovery is not None
        try:
            was_broken = self.xs_error is not None
            if was_broken:
                changed = self.discovery.resync()
            else:
                changed = self.discovery.poll(timeout)
            self.xs_error = None
            return changed
        except XenstoreError as exc:
            self.xs_error = exc.message
            self.scrape_errors += 1
            return set()

    def _pages_lost(self, lost: list[tuple[PageMapping, str]]) -> None:
        """Pages the platform can no longer read (a sim page file truncated or deleted):
        unmap them, say why, and map them again on the facts cadence."""
        by_mapping = {id(e.mapping): e for e in self.entries.values() if e.mapping is not None}
        for m, why in lost:
            e = by_mapping.get(id(m))
            if e is None or e.mapping is None:
                continue
            e.mapping.close()
            e.mapping = None
            e.map_error = f"cannot read the console page: {why}"
            self._lost.add(e.domid)
        self.fast.invalidate()

    def _remap_lost(self) -> None:
        for d in list(self._lost):
            e = self.entries.get(d)
            if e is None or e.mapping is not None:
                self._lost.discard(d)
                continue
            self._map(e)
            if e.mapping is not None:
                self._lost.discard(d)
                e.raw = None  # sample it afresh
                e.next_eval = 0.0
                self.fast.invalidate()

    def refresh_facts(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if self._lost:
            self._remap_lost()
        self.consoled_pid = self.platform.consoled_pid()
        table = facts.FactsTable(self.platform)
        for e in self.entries.values():
            f = table.facts_for(e.info, self.consoled_pid)
            if f != e.facts:
                e.facts = f
                e.next_eval = 0.0
                self.fast.invalidate()  # the next tick runs the full loop
        self._facts_due = now + self.facts_interval
        if self.xs is not None and self.xs_error is None:
            # Discovery only talks to xenstored when a watch fires: ask something, so a
            # hung or stalled xenstored shows (and the next ticks resync until it answers).
            try:
                self.xs.read("/local/domain/0/domid")
            except XenstoreError as exc:
                self.xs_error = exc.message
                self.scrape_errors += 1

    def tick(self, xs_timeout: float = 0.0) -> TickResult:
        """One sampling round. Never raises for a single broken domain."""
        xs = self.xs
        if xs_timeout <= 0 and self.xs_error is None and xs is not None and xs.idle():
            changed = None  # the common case: no watch event queued, connection alive
        else:
            changed = self._poll_xenstore(xs_timeout)
        res = self._sync_entries(changed) if changed else None
        now = self.clock()
        if now >= self._facts_due:
            self.refresh_facts(now)
        if not self.platform.live_pages:
            lost = self.platform.refresh_pages()
            if lost:
                self._pages_lost(lost)
        fast = self.fast
        if fast.valid:
            # The fast path: every page's 20 index/flag bytes in one C-level pass, compared
            # with the previous pass as a whole; only consoles that moved or whose
            # deadline passed are evaluated, in entry order, as the full loop would.
            raw = fast.read()
            if raw is not None:
                todo = None
                if raw != fast.last_raw:
                    todo = positions_changed(raw, fast.last_raw)
                if now >= fast.due_at:
                    due = positions_due(fast.deadlines, now)
                    todo = sorted(set(todo).union(due)) if todo else due
                if todo or fast.unmapped:
                    if res is None:
                        res = TickResult()
                    self._evaluate_some(todo or [], raw, now, res)
                fast.last_raw = raw
                self.ticks += 1
                return res if res is not None else QUIET
        if res is None:
            res = TickResult()
        self._tick_all(now, res)
        self.ticks += 1
        return res

    def _evaluate_some(self, todo: list[int], raw: list[tuple[bytes]], now: float, res: TickResult) -> None:
        """Evaluate the mapped consoles ``todo`` (positions in the fast path's lists) and
        every unmapped one, in entry order."""
        fast = self.fast
        bufs, mpos, unmapped, ents = fast.buffers, fast.mapped, fast.unmapped, fast.entries
        nexts = fast.deadlines
        changed_state = res.changed_state
        moved = 0
        if unmapped:
            slot = {mpos[i]: i for i in todo}
            order = sorted(set(slot).union(unmapped))
            work = [(ents[pos], slot.get(pos)) for pos in order]
        else:
            work = [(ents[mpos[i]], i) for i in todo]
        for e, i in work:
            if i is None:
                self._unmapped_verdict(e, changed_state)
                continue
            if self._evaluate(e, bufs[i], INDICES_AND_FLAG.unpack(raw[i][0]), now, changed_state):
                moved += 1
            nexts[i] = e.next_eval
        fast.due_at = min(nexts, default=NEVER)
        res.moved = moved

    def _tick_all(self, now: float, res: TickResult) -> None:
        """The full loop (after the entry set or facts changed, or a page was unreadable);
        then the fast path is rebuilt from what it left in the entries."""
        unpack = INDICES_AND_FLAG.unpack_from
        changed_state = res.changed_state
        moved = 0
        pairs = [(e, e.mapping.buf if e.mapping is not None else None) for e in self.entries.values()]
        for e, buf in pairs:
            if buf is None:
                self._unmapped_verdict(e, changed_state)
                continue
            try:
                raw = unpack(buf, INDEX_OFFSET)
            except (ValueError, OSError, IndexError, TypeError) as exc:
                e.verdict = health.Verdict(health.ERROR, f"cannot read console page: {exc}")
                continue
            if raw == e.raw and now < e.next_eval:
                continue  # nothing moved and no deadline passed: the verdict stands
            if self._evaluate(e, buf, raw, now, changed_state):
                moved += 1
        res.moved = moved
        self.fast.rebuild(pairs)

    def _evaluate(self, e: Entry, buf: WritableBuffer, raw: RawWords, now: float,
                  changed_state: list[tuple[int, str, str]]) -> bool:
        """Classify one console from freshly read ``raw``; True if an index moved."""
        moved = False
        idx = raw[:4]
        if raw != e.raw:
            e.raw = raw
            moved = e.track.update(idx, now)
            e.idx = idx
            flag = e.flag
            if flag.byte is None or raw[4] != e.flag_word:
                e.flag = flag = flags.decode_word(raw[4], e.layout)
                e.flag_word = raw[4]
            e.track.note_byte(flag.byte, now)
        stall_after, idle_after = self.stall_after, self.idle_after
        v = health.classify(
            idx, e.flag.state, e.track, e.facts, now,
            console_type=e.console_type, stall_after=stall_after, idle_after=idle_after,
            flag=e.flag, has_tty=e.has_tty,
        )
        if e.error:
            v = health.Verdict(health.ERROR, e.error)
        if v.state != e.verdict.state or e.state_since is None:
            if v.state != e.verdict.state:
                changed_state.append((e.domid, e.verdict.state, v.state))
            e.state_since = now
        e.verdict = v
        e.next_eval = health.next_evaluation(v.state, e.track, now, stall_after, idle_after)
        return moved

    @staticmethod
    def _unmapped_verdict(e: Entry, changed_state: list[tuple[int, str, str]]) -> None:
        if e.info.console is None:
            v = health.Verdict(health.ERROR, "no console in xenstore (no console/ keys)")
        elif e.error:
            v = health.Verdict(health.ERROR, e.error)
        else:
            v = health.Verdict(health.ERROR, e.map_error or "console page not mapped")
        if v.state != e.verdict.state:
            changed_state.append((e.domid, e.verdict.state, v.state))
        e.verdict = v

    def views(self) -> list[Entry]:
        return [self.entries[d] for d in sorted(self.entries)]

    def find(self, ref: str | int) -> Entry:
        """An entry by domid or name; KeyError with a clear message otherwise."""
        text = str(ref)
        if text.isdigit() and int(text) in self.entries:
            return self.entries[int(text)]
        for e in self.entries.values():
            if e.name == text:
                return e
        known = ", ".join(f"{e.domid}:{e.name}" for e in self.views()[:12])
        raise KeyError(f"no domain {text!r} (known: {known or 'none'})")

    def to_json(self) -> dict[str, Any]:
        now = self.clock()
        return {"host": self.host_dict(), "domains": [e.as_dict(now) for e in self.views()]}


def sample_window(monitor: Monitor, window: float, steps: int = 3) -> None:
    """Sample a few times over ``window`` seconds so verdicts see movement (batch mode)."""
    monitor.refresh_facts()
    monitor.tick()
    if window <= 0:
        return
    for _ in range(steps):
        time.sleep(window / steps)
        monitor.tick()
