"""The connection flag at offset 3088 of the console page, in its three layouts.

* ``none``     -- Xen <= 4.20: no field, the byte is padding (always shown as ``n/a``).
* ``rfc-v2``   -- the December 2024 RFC v2: ``uint32_t flag`` (LE), 1 = connected,
  0 = disconnected. Never released; supported for hosts carrying the patch.
* ``xen-4.21`` -- Xen >= 4.21: ``uint8_t connection``, 0 = connected, 1 = disconnected.
  A one-way latch: libxenguest sets 1 at build, xenconsoled sets 0 once bound.

The bytes alone cannot tell the layouts apart, so the layout is chosen per host from the
hypervisor version (``auto``) unless the operator overrides it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class FlagReading:
    """What the flag says under one layout."""

    layout: str
    raw: int | None
    state: str

    def as_dict(self) -> dict:
        return {"layout": self.layout, "raw": self.raw, "state": self.state}


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
        return domain_hint  # type: ignore[return-value]
    return host_default


def decode(page, layout: str) -> FlagReading:
    """Decode the flag from a page buffer under ``layout``."""
    if layout == NONE:
        return FlagReading(NONE, None, NOT_APPLICABLE)
    if layout == RFC_V2:
        raw = _U32.unpack_from(page, FLAG_OFFSET)[0]
        state = {1: CONNECTED, 0: DISCONNECTED}.get(raw, INVALID)
        return FlagReading(RFC_V2, raw, state)
    if layout == XEN_421:
        raw = page[FLAG_OFFSET]
        state = {0: CONNECTED, 1: DISCONNECTED}.get(raw, INVALID)
        return FlagReading(XEN_421, raw, state)
    raise ValueError(f"unknown flag layout {layout!r} (choose from {', '.join(CHOICES)})")


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
