"""The monitor's fast path: every page's index/flag bytes read and compared in C-level
passes, so a tick costs little more than a bare ``struct.unpack_from`` loop (bench/README.md,
sampling). Only valid between a full loop and the next ``invalidate()``."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import compress, count, repeat
from operator import le, ne

from xcinspect.core import ring
from xcinspect.core.buffer import WritableBuffer
from xcinspect.engine.entry import Entry

INDICES_AND_FLAG = struct.Struct("<5I")  # the four indices and the 32-bit word at the flag offset
INDEX_OFFSET = ring.IDX_OFFSET
RAW_INDICES = struct.Struct("20s")  # the same 20 bytes, as one bytes object (cheap to compare)
NEVER = float("inf")


def positions_changed(new: Sequence[object], old: Sequence[object]) -> list[int]:
    """Positions where two equally long lists differ, in one C-level pass (the benchmark's
    sampling figure at 1,000 consoles: a Python loop doubled the tick)."""
    return list(compress(count(), map(ne, new, old)))


def positions_due(deadlines: list[float], now: float) -> list[int]:
    """Positions whose deadline has passed (one C-level pass, as ``positions_changed``)."""
    return list(compress(count(), map(le, deadlines, repeat(now))))


class FastPath:
    """What the fast path of ``Monitor.tick`` compares against, rebuilt by the full loop.

    Only valid between a full loop and the next ``invalidate()`` (the entry set, a
    mapping or the facts changed). Parallel lists over the *mapped* entries, in entry
    order: their page buffers, the index offset (the same for every page: ``map`` takes
    it as a list), their position in ``entries``, the 20 index/flag bytes last classified
    and their next deadline; plus the positions of the unmapped entries.
    """

    __slots__ = ("valid", "entries", "buffers", "offsets", "mapped", "unmapped", "last_raw",
                 "deadlines", "due_at")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.buffers: list[WritableBuffer] = []
        self.offsets: list[int] = []
        self.mapped: list[int] = []
        self.unmapped: list[int] = []
        self.last_raw: Sequence[tuple[bytes] | None] = []
        self.deadlines: list[float] = []
        self.due_at = 0.0
        self.valid = False

    def invalidate(self) -> None:
        """The next tick runs the full loop (which rebuilds this)."""
        self.valid = False

    def rebuild(self, pairs: list[tuple[Entry, WritableBuffer | None]]) -> None:
        """From the full loop's (entry, buffer or None) list and what it left in the
        entries. A console's previous bytes are its last *classified* indices (e.raw), so
        one that could not be read this round is compared with those."""
        self.mapped = [k for k, (_, buf) in enumerate(pairs) if buf is not None]
        self.unmapped = [k for k, (_, buf) in enumerate(pairs) if buf is None]
        self.buffers = [buf for _, buf in pairs if buf is not None]
        self.offsets = [INDEX_OFFSET] * len(self.buffers)
        self.entries = [e for e, _ in pairs]
        mapped = [pairs[k][0] for k in self.mapped]
        self.last_raw = [(INDICES_AND_FLAG.pack(*e.raw),) if e.raw is not None else None for e in mapped]
        self.deadlines = [e.next_eval for e in mapped]
        self.due_at = min(self.deadlines, default=NEVER)
        self.valid = True

    def read(self) -> list[tuple[bytes]] | None:
        """Every mapped page's 20 index/flag bytes in one C-level pass; None if some page
        is unreadable (the full loop says which)."""
        try:
            return list(map(RAW_INDICES.unpack_from, self.buffers, self.offsets))
        except (ValueError, OSError, IndexError, TypeError):
            return None
