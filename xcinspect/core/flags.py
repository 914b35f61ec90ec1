"""The connection flag at offset 3088 of the console page, in its three layouts.

* ``none``     -- Xen <= 4.20: no field, the byte is padding (always shown as ``n/a``).
* ``rfc-v2``   -- the December 2024 RFC v2: ``uint32_t flag`` (LE), 1 = connected,
  0 = disconnected. Never released; supported for hosts carrying the patch.
* ``xen-4.21`` -- Xen >= 4.21: ``uint8_t connection``, 0 = connected, 1 = disconnected.
  A one-way latch: libxenguest sets 1 at build, xenconsoled sets 0 once bound.

The bytes alone cannot tell the layouts apart, so the layout is chosen per host from the
hypervisor version (``auto``) unless the operator overrides it.

What the byte does is a matter of the *guest kernel*, not of the host: Linux >= 7.1's
hvc_xen checks ``connection == 1`` when a console write starts and throws that write away
(-ENOTCONN, lost, not queued) -- on any host, a Xen 4.20 one included. Older kernels
ignore it. So every reading carries the byte itself (``byte``) whatever the layout, and
``mutes_new_guests`` says whether a Linux >= 7.1 guest is dropping its output now.

On Xen >= 4.21 "connected" only means that xenconsoled connected once since the domain
was built: it never writes 1 again, not even when it dies, so a dead xenconsoled leaves a
full ring and a spinning guest behind a "connected" flag.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from xcinspect.core.buffer import Buffer

FLAG_OFFSET = 3088

NONE = "none"
RFC_V2 = "rfc-v2"
XEN_421 = "xen-4.21"
AUTO = "auto"

LAYOUTS = (NONE, RFC_V2, XEN_421)
CHOICES = (AUTO, *LAYOUTS)

CONNECTED = "connected"
DISCONNECTED = "disconnected"
INVALID = "invalid"
NOT_APPLICABLE = "n/a"

_U32 = struct.Struct("<I")

# What Linux >= 7.1 (drivers/tty/hvc/hvc_xen.c) compares page[3088] with.
GUEST_DISCONNECTED_BYTE = 1
GUEST_CONNECTED_BYTE = 0


@dataclass(frozen=True, slots=True)
class FlagReading:
    """What the flag says under one layout."""

    layout: str
    raw: int | None
    state: str
    byte: int | None = None  # page[3088], under every layout (what Linux >= 7.1 reads)

    def as_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "raw": self.raw, "state": self.state, "byte": self.byte}

    @property
    def mutes_new_guests(self) -> bool:
        """A Linux >= 7.1 guest reads this byte as disconnected and drops its output.
        Not under ``rfc-v2``: a host carrying that patch runs guests built for it, whose
        1 means connected."""
        return self.byte == GUEST_DISCONNECTED_BYTE and self.layout != RFC_V2


def layout_for_version(major: int | None, minor: int | None) -> str:
    """The layout ``auto`` picks for a hypervisor version (None: unknown -> ``none``)."""
    if major is None or minor is None:
        return NONE
    return XEN_421 if (major, minor) >= (4, 21) else NONE


def parse_version(text: str) -> tuple[int, int] | None:
    """``"4.17.7"`` / ``"4.21"`` / ``"4.17.5-pre"`` -> (4, 17); anything else -> None."""
    parts = text.strip().split(".")
    if len(parts) < 2:
        return None
    try:
        minor = ""
        for ch in parts[1]:
            if not ch.isdigit():
                break
            minor += ch
        return int(parts[0]), int(minor)
    except ValueError:
        return None


def resolve_layout(override: str | None, domain_hint: str | None, host_default: str) -> str:
    """Operator override beats a per-domain hint (sim page files) beats the host default."""
    if override and override != AUTO:
        return override
    if domain_hint in LAYOUTS:
        return domain_hint
    return host_default


def decode(page: Buffer, layout: str) -> FlagReading:
    """Decode the flag from a page buffer under ``layout``."""
    byte = page[FLAG_OFFSET]
    if layout == NONE:
        return FlagReading(NONE, None, NOT_APPLICABLE, byte)
    if layout == RFC_V2:
        raw = _U32.unpack_from(page, FLAG_OFFSET)[0]
        state = {1: CONNECTED, 0: DISCONNECTED}.get(raw, INVALID)
        return FlagReading(RFC_V2, raw, state, byte)
    if layout == XEN_421:
        raw = byte
        state = {0: CONNECTED, 1: DISCONNECTED}.get(raw, INVALID)
        return FlagReading(XEN_421, raw, state, byte)
    raise ValueError(f"unknown flag layout {layout!r} (choose from {', '.join(CHOICES)})")


def decode_word(word: int, layout: str) -> FlagReading:
    """The same as ``decode`` from the little-endian 32-bit word at offset 3088."""
    byte = word & 0xFF
    if layout == NONE:
        return FlagReading(NONE, None, NOT_APPLICABLE, byte)
    if layout == RFC_V2:
        return FlagReading(RFC_V2, word, {1: CONNECTED, 0: DISCONNECTED}.get(word, INVALID), byte)
    if layout == XEN_421:
        return FlagReading(XEN_421, byte, {0: CONNECTED, 1: DISCONNECTED}.get(byte, INVALID), byte)
    raise ValueError(f"unknown flag layout {layout!r} (choose from {', '.join(CHOICES)})")


def encode_for_guest(state: str) -> tuple[int, bytes]:
    """(offset, bytes) that a Linux >= 7.1 guest reads as ``state`` (the one byte at 3088).
    Used where the host has no flag (layout ``none``) but the byte mutes a new guest."""
    if state not in (CONNECTED, DISCONNECTED):
        raise ValueError(f"cannot encode flag state {state!r}")
    return FLAG_OFFSET, bytes([GUEST_CONNECTED_BYTE if state == CONNECTED else GUEST_DISCONNECTED_BYTE])


def encode(layout: str, state: str) -> tuple[int, bytes] | None:
    """(offset, bytes) to store ``state`` under ``layout``; None when the layout has no flag."""
    if layout == NONE:
        return None
    if state not in (CONNECTED, DISCONNECTED):
        raise ValueError(f"cannot encode flag state {state!r}")
    if layout == RFC_V2:
        return FLAG_OFFSET, _U32.pack(1 if state == CONNECTED else 0)
    if layout == XEN_421:
        return FLAG_OFFSET, bytes([0 if state == CONNECTED else 1])
    raise ValueError(f"unknown flag layout {layout!r}")
