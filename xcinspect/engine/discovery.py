"""Domain discovery over xenstore, driven by watches (no periodic re-listing).

Watches: ``@introduceDomain`` and ``@releaseDomain`` (token ``domlist``) trigger a
listing of ``/local/domain``; ``/local/domain/N/console`` (token ``con:N``) re-reads one
domain's console keys. Works unchanged against the sim xenstored and a real one.
"""

from __future__ import annotations

from xcinspect.core.model import ConsoleInfo, DomainInfo
from xcinspect.platform.xenstore import XsClient

CONSOLE_KEYS = ("ring-ref", "port", "tty", "type", "limit", "output", "backend-id", "backend")
_INT_KEYS = {"ring-ref": "ring_ref", "port": "port", "limit": "limit", "backend-id": "backend_id"}


def parse_domain(domid: int, name: str | None, raw: dict[str, str | None]) -> DomainInfo:
    """Build a DomainInfo from raw console keys; malformed values give an error state."""
    keys = {k: v for k, v in raw.items() if v is not None}
    if name is None:
        name = f"dom{domid}"
    if not keys:
        return DomainInfo(domid, name, None, keys, None)
    ints: dict[str, int | None] = {}
    problems = []
    for key, attr in _INT_KEYS.items():
        val = keys.get(key)
        if val is None or val == "":
            ints[attr] = None
            continue
        try:
            n = int(val, 0) if val.lower().startswith("0x") else int(val)
            if n < 0:
                raise ValueError
            ints[attr] = n
        except ValueError:
            ints[attr] = None
            shown = val if len(val) <= 24 else val[:23] + "…"
            problems.append(f"console/{key} is {shown!r}, not a number")
    if ints.get("port") is None and not problems:
        problems.append("console/port is missing")
    console = ConsoleInfo(
        ring_ref=ints["ring_ref"],
        port=ints["port"],
        tty=keys.get("tty") or None,
        type=keys.get("type") or None,
        limit=ints["limit"],
        output=keys.get("output"),
        backend_id=ints["backend_id"],
    )
    return DomainInfo(domid, name, console, keys, "; ".join(problems) or None)


class Discovery:
    """The current set of domains, kept up to date from xenstore watch events."""

    def __init__(self, xs: XsClient, *, include_dom0: bool = False, watch: bool = True) -> None:
        self.xs = xs
        self.include_dom0 = include_dom0
        # watch=False: one look (``--once``, ``check``): no watches registered, so none of
        # their round trips and initial events (2 per domain); poll() then sees no change
        self.watch = watch
        self.domains: dict[int, DomainInfo] = {}
        self._watched: set[int] = set()
        self._skip_first: set[int] = set()
        self.started = False

    # -- reading -----------------------------------------------------------------------
    def read_domains(self, domids: list[int]) -> dict[int, DomainInfo]:
        paths: list[str] = []
        for d in domids:
            base = f"/local/domain/{d}"
            paths.append(f"{base}/name")
            paths.extend(f"{base}/console/{k}" for k in CONSOLE_KEYS)
        values = self.xs.read_many(paths) if paths else []
        out: dict[int, DomainInfo] = {}
        step = 1 + len(CONSOLE_KEYS)
        for i, d in enumerate(domids):
            chunk = values[i * step: (i + 1) * step]
            name = chunk[0]
            raw = dict(zip(CONSOLE_KEYS, chunk[1:]))
            out[d] = parse_domain(d, name, raw)
        return out

    def _list_domids(self) -> list[int]:
        ids = []
        for entry in self.xs.list("/local/domain"):
            if entry.isdigit():
                d = int(entry)
                if d == 0 and not self.include_dom0:
                    continue
                ids.append(d)
        return sorted(ids)

    def _relist(self) -> set[int]:
        current = set(self._list_domids())
        known = set(self.domains)
        gone = known - current
        new = sorted(current - known)
        drop = []
        for d in gone:
            del self.domains[d]
            if d in self._watched:
                self._watched.discard(d)
                drop.append((f"/local/domain/{d}/console", f"con:{d}"))
        if drop:
            self.xs.unwatch_many(drop)
        if new:
            self.domains.update(self.read_domains(new))
        if new and self.watch:
            self._watched.update(new)
            self._skip_first.update(new)
            # one pipelined batch: 1,000 watch round trips took 0.2-0.3 s
            self.xs.watch_many([(f"/local/domain/{d}/console", f"con:{d}") for d in new])
        return gone | set(new)

    # -- public --------------------------------------------------------------------------
    def start(self) -> None:
        """Register the domain-list watches and read every domain once."""
        if self.watch:
            self.xs.watch_many([("@introduceDomain", "domlist"), ("@releaseDomain", "domlist")])
        self._relist()
        if self.watch:
            self.xs.events(0)  # the registrations fire once each: already handled
        self._skip_first.clear()
        self.started = True

    def poll(self, timeout: float = 0.0) -> set[int]:
        """Apply pending watch events; returns the domids that appeared, went or changed."""
        if not self.started:
            self.start()
            return set(self.domains)
        if not self.watch:
            return set()
        events = self.xs.events(timeout)
        if not events:
            return set()
        relist = False
        reread: set[int] = set()
        for _path, token in events:
            if token == "domlist":
                relist = True
            elif token.startswith("con:"):
                try:
                    d = int(token[4:])
                except ValueError:
                    continue
                if d in self._skip_first:
                    self._skip_first.discard(d)
                    continue
                reread.add(d)
        changed: set[int] = set()
        if relist:
            changed |= self._relist()
        reread &= set(self.domains)
        reread -= changed
        if reread:
            fresh = self.read_domains(sorted(reread))
            for d, info in fresh.items():
                if info != self.domains.get(d):
                    self.domains[d] = info
                    changed.add(d)
        return changed

    def resync(self) -> set[int]:
        """Full re-read after a xenstore reconnect (watch events may have been lost)."""
        before = dict(self.domains)
        self.domains.clear()
        for d in list(self._watched):
            self._watched.discard(d)
        self._skip_first.clear()
        self._relist()
        self.xs.events(0)
        self._skip_first.clear()
        return {d for d in set(before) | set(self.domains) if before.get(d) != self.domains.get(d)}
