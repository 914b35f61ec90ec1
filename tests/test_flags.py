"""The three flag layouts at offset 3088 and the auto choice by Xen version."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xcinspect.core import flags, ring


def page_flag(raw4: bytes) -> bytearray:
    p = ring.blank_page()
    p[3088:3092] = raw4
    return p


def test_none_layout_is_not_applicable_whatever_the_byte():
    for raw in (b"\0\0\0\0", b"\1\0\0\0", b"\xff\xff\xff\xff"):
        r = flags.decode(page_flag(raw), flags.NONE)
        assert r.state == flags.NOT_APPLICABLE and r.raw is None


def test_rfc_v2_values():
    assert flags.decode(page_flag(struct.pack("<I", 1)), flags.RFC_V2).state == flags.CONNECTED
    assert flags.decode(page_flag(struct.pack("<I", 0)), flags.RFC_V2).state == flags.DISCONNECTED
    assert flags.decode(page_flag(struct.pack("<I", 2)), flags.RFC_V2).state == flags.INVALID
    # a u32: the upper bytes count
    assert flags.decode(page_flag(struct.pack("<I", 0x101)), flags.RFC_V2).state == flags.INVALID


def test_xen_421_values_are_inverted():
    assert flags.decode(page_flag(b"\0\0\0\0"), flags.XEN_421).state == flags.CONNECTED
    assert flags.decode(page_flag(b"\1\0\0\0"), flags.XEN_421).state == flags.DISCONNECTED
    assert flags.decode(page_flag(b"\2\0\0\0"), flags.XEN_421).state == flags.INVALID
    # a u8: bytes after it are tail padding
    assert flags.decode(page_flag(b"\0\xff\xff\xff"), flags.XEN_421).state == flags.CONNECTED


def test_zero_page_means_opposite_things():
    p = ring.blank_page()
    assert flags.decode(p, flags.RFC_V2).state == flags.DISCONNECTED
    assert flags.decode(p, flags.XEN_421).state == flags.CONNECTED


@given(st.sampled_from([flags.RFC_V2, flags.XEN_421]), st.sampled_from([flags.CONNECTED, flags.DISCONNECTED]))
def test_encode_decode_roundtrip(layout, state):
    p = ring.blank_page()
    off, raw = flags.encode(layout, state)
    p[off:off + len(raw)] = raw
    assert flags.decode(p, layout).state == state


@pytest.mark.parametrize("version,layout", [
    ("4.17.7", flags.NONE), ("4.20.0", flags.NONE), ("4.21.0", flags.XEN_421), ("4.22-rc", flags.XEN_421),
    ("5.0", flags.XEN_421), ("garbage", flags.NONE),
])
def test_auto_by_version(version, layout):
    v = flags.parse_version(version)
    assert flags.layout_for_version(*(v or (None, None))) == layout


def test_resolution_order():
    assert flags.resolve_layout(flags.RFC_V2, flags.XEN_421, flags.NONE) == flags.RFC_V2
    assert flags.resolve_layout(flags.AUTO, flags.XEN_421, flags.NONE) == flags.XEN_421
    assert flags.resolve_layout(flags.AUTO, None, flags.NONE) == flags.NONE
    assert flags.resolve_layout(None, "bogus", flags.XEN_421) == flags.XEN_421


def test_unknown_layout():
    with pytest.raises(ValueError):
        flags.decode(ring.blank_page(), "xen-9")
