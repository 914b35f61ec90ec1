"""The three flag layouts at offset 3088 and the auto choice by Xen version."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xcinspect.core import flags as F
from xcinspect.core import ring as R


def page_flag(raw4: bytes) -> bytearray:
    p = R.blank_page()
    p[3088:3092] = raw4
    return p


def test_none_layout_is_not_applicable_whatever_the_byte():
    for raw in (b"\0\0\0\0", b"\1\0\0\0", b"\xff\xff\xff\xff"):
        r = F.decode(page_flag(raw), F.NONE)
        assert r.state == F.NOT_APPLICABLE and r.raw is None


def test_rfc_v2_values():
    assert F.decode(page_flag(struct.pack("<I", 1)), F.RFC_V2).state == F.CONNECTED
    assert F.decode(page_flag(struct.pack("<I", 0)), F.RFC_V2).state == F.DISCONNECTED
    assert F.decode(page_flag(struct.pack("<I", 2)), F.RFC_V2).state == F.INVALID
    # a u32: the upper bytes count
    assert F.decode(page_flag(struct.pack("<I", 0x101)), F.RFC_V2).state == F.INVALID


def test_xen_421_values_are_inverted():
    assert F.decode(page_flag(b"\0\0\0\0"), F.XEN_421).state == F.CONNECTED
    assert F.decode(page_flag(b"\1\0\0\0"), F.XEN_421).state == F.DISCONNECTED
    assert F.decode(page_flag(b"\2\0\0\0"), F.XEN_421).state == F.INVALID
    # a u8: bytes after it are tail padding
    assert F.decode(page_flag(b"\0\xff\xff\xff"), F.XEN_421).state == F.CONNECTED


def test_zero_page_means_opposite_things():
    p = R.blank_page()
    assert F.decode(p, F.RFC_V2).state == F.DISCONNECTED
    assert F.decode(p, F.XEN_421).state == F.CONNECTED


@given(st.sampled_from([F.RFC_V2, F.XEN_421]), st.sampled_from([F.CONNECTED, F.DISCONNECTED]))
def test_encode_decode_roundtrip(layout, state):
    p = R.blank_page()
    off, raw = F.encode(layout, state)
    p[off:off + len(raw)] = raw
    assert F.decode(p, layout).state == state


@pytest.mark.parametrize("version,layout", [
    ("4.17.7", F.NONE), ("4.20.0", F.NONE), ("4.21.0", F.XEN_421), ("4.22-rc", F.XEN_421),
    ("5.0", F.XEN_421), ("garbage", F.NONE),
])
def test_auto_by_version(version, layout):
    v = F.parse_version(version)
    assert F.layout_for_version(*(v or (None, None))) == layout


def test_resolution_order():
    assert F.resolve_layout(F.RFC_V2, F.XEN_421, F.NONE) == F.RFC_V2
    assert F.resolve_layout(F.AUTO, F.XEN_421, F.NONE) == F.XEN_421
    assert F.resolve_layout(F.AUTO, None, F.NONE) == F.NONE
    assert F.resolve_layout(None, "bogus", F.XEN_421) == F.XEN_421


def test_unknown_layout():
    with pytest.raises(ValueError):
        F.decode(R.blank_page(), "xen-9")
