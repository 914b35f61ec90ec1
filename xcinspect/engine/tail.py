"""A view-only tail of a console's output: follow the ``out`` ring without consuming it.

xcinspect never moves ``out_cons``, never binds the event channel and never writes the
page here: it maps the page read-only and samples it. Whatever a backend already drained
is still in the ring until the guest writes over it, so a tail sees the bytes of indices
``[out_prod - 2048, out_prod)`` -- the unread ones and the consumed-but-not-yet-overwritten
ones. When the guest writes more than the ring holds between two samples, the oldest of
the new bytes are gone: the tail reports a gap ("missed N bytes"), never invented bytes.

One sample (``ConsoleTail.read``): the indices, a copy of ``out``, the indices again, each
read from the page as it is now (``PageMapping.read_at``). A
byte of index ``i`` in the copy is trusted when no write the guest could have made by the
second read can have reused its slot: ``i >= prod_after - 2048 + guard``, or
``i >= cons_after`` (a slot is reused only once the backend consumed it). ``guard`` covers
a write the guest has made but not yet published with ``out_prod``.

``RingTail`` is the arithmetic on such samples (pure); ``ConsoleTail`` reads them from a
platform mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

from xcinspect.core.errors import OperatorError
from xcinspect.core.ring import IDX, IDX_OFFSET, MASK32, OUT_OFFSET, OUT_SIZE, ring_bytes
from xcinspect.platform.base import PageMapping, Platform, PlatformError
from xcinspect.platform.xenstore import XenstoreError, XsClient

GUARD = 64  # bytes at the old end of the ring not trusted (an unpublished guest write)
HEADER = "tail (read-only): may miss bytes when the backend drains faster than xcinspect samples"


class TailError(OperatorError):
    """The console cannot be tailed (no such domain, no console, the page is gone)."""


def ahead(a: int, b: int) -> int:
    """How far index ``a`` is after ``b``, as a signed distance modulo 2^32."""
    d = (a - b) & MASK32
    return d - (1 << 32) if d >= 1 << 31 else d


@dataclass(frozen=True, slots=True)
class TailSample:
    """One read of the page: the out indices before and after copying ``ring``."""

    cons: int
    prod: int
    ring: bytes  # the 2048 bytes of ``out``
    cons_after: int
    prod_after: int


@dataclass(frozen=True, slots=True)
class TailChunk:
    """What one sample adds: ``missed`` bytes lost, then ``data``; or a ``problem``."""

    data: bytes = b""
    missed: int = 0
    problem: str | None = None
    cons: int = 0
    prod: int = 0


def gap_line(missed: int) -> str:
    return f"[xcinspect tail: missed {missed} byte{'s' if missed != 1 else ''}: the guest wrote faster than xcinspect samples]"


class RingTail:
    """New bytes from successive samples, with gaps reported as gaps.

    ``history``: the first sample yields what the ring still holds, from the first whole
    line of the already-consumed part (else nothing: only bytes written from then on)."""

    def __init__(self, *, history: bool = True, guard: int = GUARD) -> None:
        self.history = history
        self.guard = guard
        self.seen: int | None = None  # the index up to which everything was reported
        self.total = 0  # bytes reported
        self.total_missed = 0

    def feed(self, s: TailSample) -> TailChunk:
        size = OUT_SIZE
        for cons, prod in ((s.cons, s.prod), (s.cons_after, s.prod_after)):
            f = (prod - cons) & MASK32
            if f > size:
                return TailChunk(problem=f"corrupt out indices (out_cons {cons}, out_prod {prod}: {f} bytes "
                                 f"unread, more than the {size}-byte ring): nothing read",
                                 cons=s.cons, prod=s.prod)
        # The oldest index whose byte the copy surely holds.
        keep = max(size - self.guard, (s.prod_after - s.cons_after) & MASK32)
        oldest = (s.prod_after - keep) & MASK32
        first = self.seen is None
        if self.seen is None:
            if not self.history:
                self.seen = s.prod
            elif 0 <= ahead(s.prod, 0) < ahead(s.prod, oldest):
                self.seen = 0  # a ring that never wrapped: nothing before index 0
            else:
                self.seen = oldest
        if ahead(s.prod, self.seen) < 0:
            back = self.seen
            self.seen = s.prod
            return TailChunk(problem=f"out_prod moved backwards ({back} -> {s.prod}): the ring was reset; "
                             "following from here", cons=s.cons, prod=s.prod)
        start = self.seen
        if ahead(oldest, start) > 0:
            start = oldest
        if ahead(start, s.prod) > 0:
            start = s.prod
        missed = ahead(start, self.seen)
        data = ring_bytes(s.ring, 0, size, start, s.prod)
        consumed = ahead(s.cons, start)
        if first and start != 0 and consumed > 0:
            # History that begins where older output was overwritten starts mid-line (or
            # mid escape sequence): begin at the next line. Unread bytes are all kept.
            cut = data.find(b"\n", 0, consumed)
            data = data[cut + 1:] if cut >= 0 else data[consumed:]
        self.seen = s.prod
        self.total += len(data)
        self.total_missed += missed
        return TailChunk(data=data, missed=missed, cons=s.cons, prod=s.prod)


def resolve(xs: XsClient, ref: str | int) -> int:
    """A domid from a domid or a domain name (TailError when there is no such domain)."""
    text = str(ref)
    try:
        if text.isdigit():
            d = int(text)
            if xs.read(f"/local/domain/{d}/name") is None and xs.read(f"/local/domain/{d}/domid") is None:
                raise TailError(f"no domain {d} in xenstore")
            return d
        for entry in xs.list("/local/domain"):
            if entry.isdigit() and xs.read(f"/local/domain/{entry}/name") == text:
                return int(entry)
    except XenstoreError as exc:
        raise TailError(exc.message) from None
    raise TailError(f"no domain named {text!r}")


class ConsoleTail:
    """Samples one console's page, read-only, into ``RingTail``.

    ``open`` finds the console in xenstore and maps its page read-only (TailError when it
    cannot); ``sample`` reads it once; ``alive`` asks xenstore whether the domain still
    exists. Nothing here writes: not the page, not xenstore, not an event channel."""

    def __init__(self, platform: Platform, domid: int, *, xs: XsClient | None = None, history: bool = True,
                 guard: int = GUARD) -> None:
        self.platform = platform
        self.domid = domid
        self._own_xs = xs is None
        self.xs = xs if xs is not None else XsClient(platform.xenstore_path(), read_only=True)
        self.ring = RingTail(history=history, guard=guard)
        self.mapping: PageMapping | None = None
        self.name = str(domid)

    def open(self) -> None:
        from xcinspect.engine.discovery import Discovery

        d = self.domid
        try:
            if self.xs.read(f"/local/domain/{d}/domid") is None and self.xs.read(f"/local/domain/{d}/name") is None:
                raise TailError(f"no domain {d} in xenstore")
            info = Discovery(self.xs).read_domains([d])[d]
        except XenstoreError as exc:
            raise TailError(f"cannot read the console keys of domain {d}: {exc.message}") from None
        self.name = info.name
        if info.console is None or info.error:
            raise TailError(f"domain {d} has no usable console ({info.error or 'no console keys'})")
        try:
            self.mapping = self.platform.map_page(d, info.console.ring_ref)
        except PlatformError as exc:
            raise TailError(exc.message, exc.hint) from None

    def read(self) -> TailSample:
        m = self.mapping
        if m is None:
            raise TailError(f"the console of domain {self.domid} is not open")
        try:
            _, _, cons, prod = IDX.unpack(m.read_at(IDX_OFFSET, IDX.size))
            ring = m.read_at(OUT_OFFSET, OUT_SIZE)
            _, _, cons2, prod2 = IDX.unpack(m.read_at(IDX_OFFSET, IDX.size))
        except OSError as exc:
            raise TailError(f"the console page of domain {self.domid} is gone: {exc.strerror or exc}") from None
        return TailSample(cons, prod, ring, cons2, prod2)

    def sample(self) -> TailChunk:
        return self.ring.feed(self.read())

    def alive(self) -> bool:
        """The domain is still in xenstore (True too when xenstore cannot be asked)."""
        try:
            return self.xs.read(f"/local/domain/{self.domid}/domid") is not None or \
                self.xs.read(f"/local/domain/{self.domid}/name") is not None
        except XenstoreError:
            return True

    def close(self) -> None:
        if self.mapping is not None:
            self.mapping.close()
            self.mapping = None
        if self._own_xs:
            self.xs.close()

    def __enter__(self) -> ConsoleTail:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
