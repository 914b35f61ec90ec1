"""Ring model: index math (wrap at 2^32, corrupt indices), parsing, ring I/O."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcinspect.core import flags, ring

u32 = st.integers(min_value=0, max_value=2**32 - 1)


def page_with(in_cons=0, in_prod=0, out_cons=0, out_prod=0, out=b"", inp=b""):
    p = ring.blank_page(in_cons=in_cons, in_prod=in_prod, out_cons=out_cons, out_prod=out_prod)
    p[ring.OUT_OFFSET:ring.OUT_OFFSET + len(out)] = out
    p[ring.IN_OFFSET:ring.IN_OFFSET + len(inp)] = inp
    return p


def test_offsets_match_the_public_header():
    p = page_with(1, 2, 3, 4)
    assert struct.unpack_from("<4I", p, 3072) == (1, 2, 3, 4)
    snap = ring.parse_page(p)
    assert (snap.in_.cons, snap.in_.prod, snap.out.cons, snap.out.prod) == (1, 2, 3, 4)
    assert snap.out.size == 2048 and snap.in_.size == 1024


@given(cons=u32, n=st.integers(min_value=0, max_value=2048))
def test_fill_wraps_modulo_2_32(cons, n):
    prod = (cons + n) % 2**32
    snap = ring.parse_page(page_with(out_cons=cons, out_prod=prod))
    assert snap.out.fill == n
    assert snap.out.valid
    assert snap.out.free == 2048 - n
    assert snap.valid


@given(cons=u32, n=st.integers(min_value=2049, max_value=2**32 - 1))
def test_fill_above_size_is_corrupt(cons, n):
    prod = (cons + n) % 2**32
    snap = ring.parse_page(page_with(out_cons=cons, out_prod=prod))
    assert not snap.out.valid
    assert not snap.valid
    assert snap.out.free == 0
    assert ring.unread_out(page_with(out_cons=cons, out_prod=prod)) == b""


@given(cons=u32, n=st.integers(min_value=1025, max_value=2**32 - 1))
def test_in_ring_corrupt(cons, n):
    snap = ring.parse_page(page_with(in_cons=cons, in_prod=(cons + n) % 2**32))
    assert not snap.in_.valid and not snap.valid


@given(start=u32, data=st.binary(min_size=0, max_size=2048))
def test_unread_bytes_cross_the_wrap(start, data):
    page = ring.blank_page(out_cons=start, out_prod=start)
    io = ring.RingIO(page)
    assert io.write_out(data) == len(data)
    snap = ring.parse_page(page)
    assert snap.out.fill == len(data)
    assert ring.unread_out(page) == data
    got, new_cons = io.peek_out()
    assert got == data
    assert new_cons == (start + len(data)) % 2**32
    io.commit_out(new_cons)
    assert ring.parse_page(page).out.fill == 0


@given(start=u32, chunks=st.lists(st.binary(min_size=1, max_size=700), max_size=12))
@settings(max_examples=200)
def test_producer_consumer_roundtrip_in_ring(start, chunks):
    page = ring.blank_page(in_cons=start, in_prod=start)
    io = ring.RingIO(page)
    sent = b"".join(chunks)
    received = b""
    pending = sent
    while pending or ring.parse_page(page).in_.fill:
        n = io.write_in(pending)
        pending = pending[n:]
        received += io.read_in()
    assert received == sent


def test_write_out_stops_when_full_and_never_overwrites():
    page = ring.blank_page(out_cons=2**32 - 10, out_prod=2**32 - 10)
    io = ring.RingIO(page)
    assert io.write_out(b"x" * 3000) == 2048
    assert io.write_out(b"y") == 0
    snap = ring.parse_page(page)
    assert snap.out.full and snap.out.prod == 2038


def test_corrupt_indices_refuse_io():
    page = ring.blank_page(out_cons=0, out_prod=5000, in_cons=0, in_prod=4000)
    io = ring.RingIO(page)
    with pytest.raises(ring.PageError):
        io.peek_out()
    with pytest.raises(ring.PageError):
        io.write_out(b"x")
    with pytest.raises(ring.PageError):
        io.write_in(b"x")
    with pytest.raises(ring.PageError):
        io.read_in()
    assert bytes(page[:3072]) == bytes(3072)  # nothing was written


def test_limit_keeps_newest_bytes():
    page = ring.blank_page()
    io = ring.RingIO(page)
    io.write_out(b"0123456789")
    assert ring.unread_out(page, limit=4) == b"6789"


def test_page_size_checked():
    with pytest.raises(ring.PageError):
        ring.parse_page(b"\0" * 100)


def test_peek_out_max_bytes():
    page = ring.blank_page()
    io = ring.RingIO(page)
    io.write_out(b"abcdef")
    data, cons = io.peek_out(max_bytes=4)
    assert data == b"abcd" and cons == 4


def test_fence_called_in_barrier_order():
    calls = []
    page = ring.blank_page()

    class Spy(bytearray):
        pass

    io = ring.RingIO(page, fence=lambda: calls.append(bytes(page[3080:3088])))
    io.write_out(b"hi")
    # write_out: fence after reading indices, fence after data before index store
    assert len(calls) == 2
    assert calls[1] == bytes(8)  # out_prod not yet stored when the second fence runs
    calls.clear()
    data, cons = io.peek_out()
    io.commit_out(cons)
    assert len(calls) == 2
    assert struct.unpack_from("<I", calls[1], 0)[0] == 0  # out_cons stored after the fence


def test_set_flag_layouts():
    page = ring.blank_page()
    io = ring.RingIO(page)
    assert io.set_flag(flags.NONE, flags.CONNECTED) is False
    assert bytes(page[3088:3092]) == bytes(4)
    io.set_flag(flags.RFC_V2, flags.CONNECTED)
    assert struct.unpack_from("<I", page, 3088)[0] == 1
    io.set_flag(flags.XEN_421, flags.DISCONNECTED)
    assert page[3088] == 1
