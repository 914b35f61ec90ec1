"""Hat notation for control keys (``^]``, ``^X``): the one parser, for the CLI's attach
escape byte and the TUI's detach key."""

from __future__ import annotations


def hat_char(spec: str) -> str | None:
    """``"^]"`` -> ``"]"``; anything that is not ``^`` and one character -> None."""
    if len(spec) == 2 and spec[0] == "^":
        return spec[1]
    return None


def control_byte(spec: str) -> int:
    """The byte a key sends: ``^X`` (X xor 0x40, as a terminal does) or a single character.
    ValueError for anything else."""
    c = hat_char(spec)
    if c is not None:
        return ord(c.upper()) ^ 0x40
    if len(spec) == 1:
        return ord(spec)
    raise ValueError(f"bad escape key {spec!r} (use ^X or a single character)")
