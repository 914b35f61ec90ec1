"""Random and adversarial console pages: every page is classified, nothing raises, and
corrupt indices never make xcinspect read outside a ring or write anything.

A guest owns every byte of its console page, indices included. Each example builds a
page (random, zero or hostile ring bytes; indices drawn from the edges of the index
space: wrap at 2^32, fill exactly at / one past the ring size, both rings corrupt; any
flag word) and runs it through every path that reads a page:

* observation, through the real ``Monitor.tick`` over a platform that hands out the page
  as a *read-only spy*: an immutable buffer (any write raises) that records every slice
  read from it; then everything the front ends derive from an entry (JSON, the CLI
  table, the TUI's row and detail, Prometheus metrics, ``--page``'s ring view);
* the ring readers (``unread_out``/``unread_in`` with limits) against an independent
  reference model of the index math;
* the backend (``Backend.drain`` and ``feed``, i.e. ``RingIO``) over a *writable spy*
  that records every store: a corrupt index pair raises ``PageError`` before a single
  byte is written, and a valid one stores only inside the ring and the one index the
  backend owns.

The fast suite runs ``xci-fast`` (600 examples); ``-m slow`` / ``HYPOTHESIS_PROFILE=slow``
runs 100,000.
"""

from __future__ import annotations

import json
import random
import re

import pytest
from conftest_hypothesis import FAST, SLOW, SLOW_SKIP
from hypothesis import given
from hypothesis import strategies as st

from xcinspect import cli
from xcinspect.core import flags, health
from xcinspect.core.model import BackendFacts, ConsoleInfo, DomainInfo, HostInfo
from xcinspect.core.ring import (
    IDX,
    IDX_OFFSET,
    IN_OFFSET,
    IN_PROD,
    IN_SIZE,
    OUT_CONS,
    OUT_OFFSET,
    OUT_SIZE,
    PAGE_SIZE,
    U32,
    PageError,
    RingIO,
    parse_page,
    unread_in,
    unread_out,
)
from xcinspect.core.sanitize import Sanitizer, is_safe
from xcinspect.engine.monitor import Monitor
from xcinspect.engine.service import Backend
from xcinspect.metrics import exposition
from xcinspect.platform.base import PageMapping, Platform, PlatformError
from xcinspect.tui.poller import FrameBuilder, recent_output

M32 = 2**32
OUT = (OUT_OFFSET, OUT_OFFSET + OUT_SIZE)
IN = (IN_OFFSET, IN_OFFSET + IN_SIZE)
FLAG_BYTES = (flags.FLAG_OFFSET, flags.FLAG_OFFSET + 4)


# -- spies -------------------------------------------------------------------------------------
class ReadSpy(bytes):
    """An immutable page (writes raise TypeError) that records every ``[...]`` read.

    ``struct.unpack_from`` reads through the buffer protocol and is not recorded: every
    caller uses it at the fixed index/flag offsets only, which ``RecordedPage`` checks."""

    def __new__(cls, data):
        self = super().__new__(cls, data)
        self.reads = []
        return self

    def __getitem__(self, key):
        self.reads.append(key)
        return super().__getitem__(key)


class WriteSpy(bytearray):
    """A writable page that records every store (slice or byte)."""

    def __init__(self, data):
        super().__init__(data)
        self.writes = []

    def __setitem__(self, key, value):
        self.writes.append(key)
        super().__setitem__(key, value)


def span(key) -> tuple[int, int]:
    """(start, stop) of an index or a step-1 slice on a 4096-byte buffer."""
    if isinstance(key, int):
        k = key % PAGE_SIZE
        return k, k + 1
    assert isinstance(key, slice) and key.step in (None, 1), key
    start, stop, _ = key.indices(PAGE_SIZE)
    return start, max(start, stop)


def inside(key, *regions) -> bool:
    a, b = span(key)
    return any(lo <= a and b <= hi for lo, hi in regions)


# -- a platform that maps the hostile page -------------------------------------------------------
class SpyMapping(PageMapping):
    def __init__(self, buf) -> None:
        self.buf = buf
        self.writable = False

    def close(self) -> None:
        self.buf = None


class PagePlatform(Platform):
    kind = "sim"

    def __init__(self, page: bytes, bound, consoled: bool) -> None:
        self.page = ReadSpy(page)
        self.bound = bound
        self.consoled = consoled

    def check(self, *, need_write=False):
        return None

    def xenstore_path(self):
        return "/nonexistent"

    def xen_version(self):
        return "sim"

    def default_flag_layout(self):
        return flags.NONE

    def map_page(self, domid, ring_ref, *, writable=False):
        if writable:
            raise PlatformError("observation never maps writable")
        return SpyMapping(self.page)

    def bind_evtchn(self, domid, remote_port):
        raise PlatformError("observation never binds")

    def port_bound(self, domid, port):
        return self.bound

    def consoled_pid(self):
        return 1 if self.consoled else None

    def lock_dir(self):
        return "/nonexistent/lock"

    def state_dir(self):
        return "/nonexistent/state"

    def log_dir(self):
        return "/nonexistent/logs"

    def audit_log_path(self):
        return "/nonexistent/audit.log"


class OneDomain:
    """Discovery stand-in: one domain, no xenstore traffic."""

    def __init__(self, info: DomainInfo) -> None:
        self.domains = {info.domid: info}

    def poll(self, timeout=0.0):
        return set()

    def resync(self):
        return set()


class Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


class NullJournal:
    def __init__(self) -> None:
        self.data = bytearray()
        self.segments = []

    def append(self, data: bytes) -> None:
        self.data += data

    def start_segment(self, index: int, reason: str) -> None:
        self.segments.append((index, reason))


# -- strategies ----------------------------------------------------------------------------------
# Hypothesis' engine costs ~0.5 ms per example and ~0.1 ms per extra draw, so an example
# draws two numbers: a seed and a "shape" (what kind of index pairs, ring bytes, flag word,
# backend facts); the page is built from them with ``random.Random(seed)``. A failure is
# reported (and replayed) as those two numbers.
EDGES = (0, 1, 2, 3, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 2**31 - 1, 2**31, 2**31 + 1,
         M32 - 4096, M32 - 2049, M32 - 2048, M32 - 2047, M32 - 1025, M32 - 1024, M32 - 3, M32 - 2, M32 - 1)
FLAG_WORDS = (0, 1, 2, 0xFF, 0x100, 0x101, 0x01000000, M32 - 1)
HOSTILE_RING = (b"\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[6n\x9b6n\x1bP$q\x1b\\\x00\x07\xff\xfe\xc3(\xe2\x80\xae"
                b"\x1b[201~\x1b]0;pwned\x1b\\\r\n\x1b_Gf=1;AAAA\x1b\\\x1b[?1049h\x9d8;;x\x9c")
INPUTS = (b"", b"echo hi\r", b"\x1b[6n\x00\xff" * 40, b"y" * 1500)
STEPS = (0.0, 0.4, 3.0, 7.0, 60.0)


def _u32(rng: random.Random) -> int:
    return rng.choice(EDGES) if rng.random() < 0.4 else rng.getrandbits(32)


def _pair(rng: random.Random, size: int, kind: int) -> tuple[int, int]:
    """kind 0: valid fill; 1: fill at an edge (0, 1, size-1, size, size+1, ...); 2: corrupt
    fill; 3: two unrelated indices."""
    cons = _u32(rng)
    if kind == 0:
        fill = rng.randint(0, size)
    elif kind == 1:
        fill = rng.choice((0, 1, size - 1, size, size + 1, 2 * size, M32 - size, M32 - 1))
    elif kind == 2:
        fill = rng.randint(size + 1, M32 - 1)
    else:
        return cons, _u32(rng)
    return cons, (cons + fill) % M32


def build_page(rng: random.Random, out_kind: int, in_kind: int, body: int) -> bytes:
    if body == 0:
        page = bytearray(rng.randbytes(PAGE_SIZE))
    elif body == 1:
        page = bytearray(PAGE_SIZE)
    elif body == 2:
        page = bytearray(b"\xff" * PAGE_SIZE)
    else:
        rot = rng.randrange(len(HOSTILE_RING))
        ring = HOSTILE_RING[rot:] + HOSTILE_RING[:rot]
        page = bytearray((ring * (PAGE_SIZE // len(ring) + 1))[:PAGE_SIZE])
    out_cons, out_prod = _pair(rng, OUT_SIZE, out_kind)
    in_cons, in_prod = _pair(rng, IN_SIZE, in_kind)
    IDX.pack_into(page, IDX_OFFSET, in_cons, in_prod, out_cons, out_prod)
    flag = rng.choice(FLAG_WORDS) if rng.random() < 0.7 else rng.getrandbits(32)
    U32.pack_into(page, flags.FLAG_OFFSET, flag)
    return bytes(page)


def build_scenario(seed: int, shape: int) -> dict:
    """shape bits: 0-1 out pair kind, 2-3 in pair kind, 4-5 ring bytes; the rest (layout,
    backend facts, how the page changes between samples) comes from the seed."""
    rng = random.Random(seed)
    out_kind, in_kind, body = shape & 3, (shape >> 2) & 3, (shape >> 4) & 3
    first = build_page(rng, out_kind, in_kind, body)
    pages = [first]
    for _ in range(rng.randint(0, 2)):  # the guest rewrites its page between samples
        if rng.random() < 0.5:
            pages.append(build_page(rng, rng.randrange(4), rng.randrange(4), body))
        else:  # only the indices move
            p = bytearray(pages[-1])
            IDX.pack_into(p, IDX_OFFSET, *(_u32(rng) if rng.random() < 0.5 else v
                                                for v in IDX.unpack_from(p, IDX_OFFSET)))
            pages.append(bytes(p))
    return {
        "pages": pages,
        "layout": rng.choice(flags.LAYOUTS),
        "bound": rng.choice((True, False, None)),
        "consoled": rng.random() < 0.5,
        "ctype": rng.choice((None, "xenconsoled", "ioemu")),
        "step": rng.choice(STEPS),
        "limit": None if rng.random() < 0.3 else rng.randint(0, 3000),
        "max_bytes": None if rng.random() < 0.3 else rng.randint(1, 3000),
        "input": rng.choice(INPUTS),
        "slow_views": rng.random() < 0.25,
    }


scenario = st.builds(build_scenario, st.integers(0, 2**64 - 1), st.integers(0, 63))


# -- reference model ----------------------------------------------------------------------------
def ref_ring(page: bytes, off: int, size: int, cons: int, prod: int, limit=None) -> bytes:
    """The model: the ring laid out twice in a row, read from ``cons % size``."""
    n = (prod - cons) % M32
    if n > size:
        return b""
    if limit is not None and n > limit:
        cons, n = (prod - limit) % M32, limit
    twice = bytes(page[off:off + size]) * 2
    return twice[cons % size: cons % size + n]


_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u202a-\u202e"
                     "\u2066-\u2069\ufeff\u061c]")


def safe(text: str) -> bool:
    """``sanitize.is_safe``, as a regex (fast enough for 100k examples, and independent)."""
    return _UNSAFE.search(text) is None


def indices(page: bytes):
    return IDX.unpack_from(page, IDX_OFFSET)


# -- the property ----------------------------------------------------------------------------------
def check_scenario(s) -> None:
    layout = s["layout"]
    clock = Clock()
    plat = PagePlatform(s["pages"][0], s["bound"], s["consoled"])
    info = DomainInfo(7, "hostile", ConsoleInfo(ring_ref=0x9F000, port=2, tty=None, type=s["ctype"]),
                      {"port": "2"}, None)
    mon = Monitor(plat, flag_layout=layout, clock=clock, facts_interval=1.0)
    mon.host = HostInfo("sim", "sim", flags.NONE)
    mon.discovery = OneDomain(info)
    mon._sync_entries({7})
    builder = FrameBuilder(mon, own_pid=1)
    for n, page in enumerate(s["pages"]):
        if n:
            clock.t += s["step"]
            plat.page = ReadSpy(page)
            mon.entries[7].mapping = SpyMapping(plat.page)
            mon.fast.invalidate()
        spy = plat.page
        res = mon.tick()
        e = mon.entries[7]
        in_cons, in_prod, out_cons, out_prod = indices(page)
        out_fill, in_fill = (out_prod - out_cons) % M32, (in_prod - in_cons) % M32
        corrupt = out_fill > OUT_SIZE or in_fill > IN_SIZE

        # every page is classified, and corrupt indices are called corrupt
        assert e.verdict.state in health.STATES
        assert (e.verdict.state == health.CORRUPT) == corrupt, (e.verdict, out_fill, in_fill)
        assert e.idx == (in_cons, in_prod, out_cons, out_prod)
        assert e.flag.state in (flags.CONNECTED, flags.DISCONNECTED, flags.INVALID, flags.NOT_APPLICABLE)
        assert res.moved in (0, 1)

        # what the front ends make of it
        doc = json.loads(json.dumps(mon.to_json()))
        assert doc["domains"][0]["ring"]["valid"] is (not corrupt)
        unread = e.unread_out(limit=s["limit"])
        expect = ref_ring(page, OUT_OFFSET, OUT_SIZE, out_cons, out_prod, s["limit"])
        assert unread == expect
        old, new = recent_output(e)
        if out_fill > OUT_SIZE:
            assert old == new == b""
        else:
            assert new == ref_ring(page, OUT_OFFSET, OUT_SIZE, out_cons, out_prod)
        row = builder.row(e, clock.t)
        for text in (row.name, row.reason, row.backend, cli._table(mon)):
            assert safe(text), repr(text)
        if s["slow_views"]:  # sanitizing 2 KiB and prometheus formatting are slow: 1 in 4
            detail = builder.detail(7)
            assert safe(detail.consumed) and safe(detail.unread)
            assert is_safe(detail.consumed + detail.unread)
            assert b"xcinspect_console_verdict" in exposition(mon)

        # observation read nothing outside the out ring but the flag byte, and wrote nothing
        for key in spy.reads:
            assert inside(key, OUT, FLAG_BYTES), key
        if corrupt and out_fill > OUT_SIZE:
            assert not any(inside(k, OUT) and span(k)[1] > span(k)[0] for k in spy.reads), spy.reads
        assert bytes(spy) == page

        # --page's view: a read-only copy, each ring read against the model and its reads
        # confined to that ring
        view = ReadSpy(page)
        snap = parse_page(view, layout)
        assert snap.valid is (not corrupt)
        assert all(inside(k, FLAG_BYTES) for k in view.reads), view.reads
        view.reads.clear()
        got_in = unread_in(view, limit=s["limit"])
        assert got_in == ref_ring(page, IN_OFFSET, IN_SIZE, in_cons, in_prod, s["limit"])
        assert all(inside(k, IN) for k in view.reads), view.reads
        view.reads.clear()
        if snap.out.valid and snap.out.fill:
            got = unread_out(view, snap, limit=64)
            assert got == ref_ring(page, OUT_OFFSET, OUT_SIZE, out_cons, out_prod, 64)
            assert safe(Sanitizer().feed(got))
        assert all(inside(k, OUT) for k in view.reads), view.reads

        check_backend(page, s["max_bytes"], s["input"], layout)
    mon.close()


def check_backend(page: bytes, max_bytes, data: bytes, layout: str) -> None:
    """The backend's ring operations on a writable copy of the page."""
    in_cons, in_prod, out_cons, out_prod = indices(page)
    out_ok = (out_prod - out_cons) % M32 <= OUT_SIZE
    in_ok = (in_prod - in_cons) % M32 <= IN_SIZE

    buf = WriteSpy(page)
    ring = RingIO(buf)
    b = Backend.__new__(Backend)  # only the drain/feed logic, no platform
    b.expected_cons = out_cons
    b.drained = 0
    b.clients = {}
    b.inbuf = bytearray(data)
    journal = NullJournal()
    if not out_ok:
        with pytest.raises(PageError):
            b.drain(ring, journal)
        assert buf.writes == [] and bytes(buf) == page and not journal.data
    else:
        n = b.drain(ring, journal)
        assert bytes(journal.data) == ref_ring(page, OUT_OFFSET, OUT_SIZE, out_cons, out_prod)
        assert n == len(journal.data)
        assert set(map(span, buf.writes)) <= {(OUT_CONS, OUT_CONS + 4)}
        assert indices(buf)[2] == out_prod
        buf.writes.clear()
    if not in_ok:
        if data:
            with pytest.raises(PageError):
                b.feed(ring)
        assert buf.writes == []
    else:
        fed = b.feed(ring)
        free = IN_SIZE - (in_prod - in_cons) % M32
        assert fed == min(len(data), IN_SIZE, free)
        for key in buf.writes:
            assert inside(key, IN, (IN_PROD, IN_PROD + 4)), key
        assert indices(buf)[1] == (in_prod + fed) % M32
    # the flag: written only under a layout that has one, only at its offset
    buf.writes.clear()
    assert RingIO(buf).set_flag(layout, flags.CONNECTED) is (layout != flags.NONE)
    assert all(inside(k, FLAG_BYTES) for k in buf.writes)
    # a bounded peek (oldest bytes first) on a fresh copy
    pbuf = WriteSpy(page)
    if not out_ok:
        with pytest.raises(PageError):
            RingIO(pbuf).peek_out(max_bytes)
    else:
        got, new_cons = RingIO(pbuf).peek_out(max_bytes)
        whole = ref_ring(page, OUT_OFFSET, OUT_SIZE, out_cons, out_prod)
        assert got == (whole if max_bytes is None else whole[:max_bytes])
        assert new_cons == (out_cons + len(got)) % M32
    assert pbuf.writes == []
    # the guest side refuses corrupt pages too, writing nothing
    if not out_ok:
        gbuf = WriteSpy(page)
        with pytest.raises(PageError):
            RingIO(gbuf).write_out(b"x" * 10)
        assert gbuf.writes == [] and bytes(gbuf) == page
    if not in_ok:
        gbuf = WriteSpy(page)
        with pytest.raises(PageError):
            RingIO(gbuf).read_in()
        assert gbuf.writes == [] and bytes(gbuf) == page


@FAST
@given(scenario)
def test_every_page_is_classified_nothing_escapes_the_ring(s):
    check_scenario(s)


@pytest.mark.slow
@SLOW_SKIP
@SLOW
@given(scenario)
def test_every_page_is_classified_100k(s):
    check_scenario(s)


# -- hand-picked pages the strategies must reach, checked by name -----------------------------
def _page(out_cons, out_prod, in_cons=0, in_prod=0, fill=b"\x1b]52;c;QQ==\x07"):
    p = bytearray((fill * (PAGE_SIZE // len(fill) + 1))[:PAGE_SIZE])
    IDX.pack_into(p, IDX_OFFSET, in_cons, in_prod, out_cons, out_prod)
    return bytes(p)


@pytest.mark.parametrize("name,page,corrupt", [
    ("full-at-wrap", _page(M32 - 1000, 1048), False),
    ("one-past-full", _page(0, OUT_SIZE + 1), True),
    ("prod-behind-cons", _page(10, 9), True),
    ("max-distance", _page(0, M32 - 1), True),
    ("in-one-past-full", _page(0, 0, 5, 5 + IN_SIZE + 1), True),
    ("both-corrupt", _page(7, 7 + 99999, 1, 1 + 5000), True),
    ("empty-at-2^32-1", _page(M32 - 1, M32 - 1), False),
])
def test_named_edge_pages(name, page, corrupt):
    s = {"pages": [page, page], "layout": flags.XEN_421, "bound": False, "consoled": False, "ctype": None,
         "step": 7.0, "limit": None, "max_bytes": None, "input": b"echo hi\r", "slow_views": True}
    check_scenario(s)
    in_cons, in_prod, out_cons, out_prod = indices(page)
    facts = BackendFacts(consoled_alive=False, port_bound=False)
    tr = health.Track()
    tr.update((in_cons, in_prod, out_cons, out_prod), 0.0)
    v = health.classify((in_cons, in_prod, out_cons, out_prod), flags.DISCONNECTED, tr, facts, 10.0)
    assert (v.state == health.CORRUPT) == corrupt
