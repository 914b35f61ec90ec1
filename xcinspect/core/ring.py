"""The console ring page (``struct xencons_interface``): layout, index math, ring I/O.

Layout (xen/include/public/io/console.h)::

    in[1024]   @0       dom0 -> guest
    out[2048]  @1024    guest -> dom0
    in_cons    @3072    written by the guest
    in_prod    @3076    written by the backend
    out_cons   @3080    written by the backend
    out_prod   @3084    written by the guest
    flag       @3088    see ``flags``

Indices are free-running uint32 counters; the byte for index ``i`` is ``ring[i & (size-1)]``.
fill = (prod - cons) mod 2^32; a fill above the ring size means the indices are corrupt,
and then nothing is read or written (xenconsoled: "ring is screwed: ignore it").

Pure Python: no Textual, no Xen libraries. Operations that write indices take a
``fence`` callable, which the platform supplies (a real full barrier on dom0).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xcinspect.core import flags
from xcinspect.core.buffer import Buffer, WritableBuffer

PAGE_SIZE = 4096
IN_OFFSET, IN_SIZE = 0, 1024
OUT_OFFSET, OUT_SIZE = 1024, 2048
IDX_OFFSET = 3072
IN_CONS, IN_PROD, OUT_CONS, OUT_PROD = 3072, 3076, 3080, 3084
MASK32 = 0xFFFFFFFF

IDX = struct.Struct("<4I")  # in_cons, in_prod, out_cons, out_prod
U32 = struct.Struct("<I")


class PageError(ValueError):
    """The buffer is not a console page (wrong size)."""


def fill(prod: int, cons: int) -> int:
    """Bytes between ``cons`` and ``prod``, modulo 2^32."""
    return (prod - cons) & MASK32


@dataclass(frozen=True, slots=True)
class RingState:
    """One ring's indices and what follows from them."""

    cons: int
    prod: int
    size: int

    @property
    def fill(self) -> int:
        return (self.prod - self.cons) & MASK32

    @property
    def valid(self) -> bool:
        return self.fill <= self.size

    @property
    def free(self) -> int:
        """Free space; 0 for corrupt indices (nothing may be written then)."""
        f = self.fill
        return self.size - f if f <= self.size else 0

    @property
    def full(self) -> bool:
        return self.fill == self.size

    def as_dict(self) -> dict[str, Any]:
        return {"cons": self.cons, "prod": self.prod, "fill": self.fill, "size": self.size}


@dataclass(frozen=True, slots=True)
class PageSnapshot:
    """A parsed console page."""

    out: RingState
    in_: RingState
    flag: flags.FlagReading

    @property
    def valid(self) -> bool:
        return self.out.valid and self.in_.valid

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out.as_dict(),
            "in": self.in_.as_dict(),
            "valid": self.valid,
            "flag": self.flag.as_dict(),
        }


def check_page(buf: Buffer) -> None:
    if len(buf) != PAGE_SIZE:
        raise PageError(f"a console page is {PAGE_SIZE} bytes, this is {len(buf)}")


def parse_page(buf: Buffer, layout: str = flags.NONE) -> PageSnapshot:
    """Parse a 4096-byte page (bytes, bytearray, mmap or memoryview)."""
    check_page(buf)
    in_cons, in_prod, out_cons, out_prod = IDX.unpack_from(buf, IDX_OFFSET)
    return PageSnapshot(
        out=RingState(out_cons, out_prod, OUT_SIZE),
        in_=RingState(in_cons, in_prod, IN_SIZE),
        flag=flags.decode(buf, layout),
    )


def ring_bytes(buf: Buffer, offset: int, size: int, cons: int, prod: int, limit: int | None = None) -> bytes:
    """Copy the bytes from ``cons`` to ``prod`` out of one ring, across the wrap.

    Corrupt indices (fill > size) yield b"": a hostile guest must never make us read
    outside the ring. ``limit`` keeps only the newest ``limit`` bytes.
    """
    n = (prod - cons) & MASK32
    if n > size:
        return b""
    if limit is not None and n > limit:
        cons = (prod - limit) & MASK32
        n = limit
    start = cons & (size - 1)
    first = min(n, size - start)
    out = bytes(buf[offset + start: offset + start + first])
    if first < n:
        out += bytes(buf[offset: offset + (n - first)])
    return out


def unread_out(buf: Buffer, snap: PageSnapshot | None = None, limit: int | None = None) -> bytes:
    """Bytes the guest wrote that no backend consumed yet."""
    if snap is None:
        _, _, cons, prod = IDX.unpack_from(buf, IDX_OFFSET)
    else:
        cons, prod = snap.out.cons, snap.out.prod
    return ring_bytes(buf, OUT_OFFSET, OUT_SIZE, cons, prod, limit)


def unread_in(buf: Buffer, snap: PageSnapshot | None = None, limit: int | None = None) -> bytes:
    """Bytes the backend queued for the guest that it did not read yet."""
    if snap is None:
        cons, prod, _, _ = IDX.unpack_from(buf, IDX_OFFSET)
    else:
        cons, prod = snap.in_.cons, snap.in_.prod
    return ring_bytes(buf, IN_OFFSET, IN_SIZE, cons, prod, limit)


def _nofence() -> None:
    return None


Fence = Callable[[], None]


class RingIO:
    """Producer and consumer operations on a writable page, in xenconsoled's barrier order.

    Backend side:  ``peek_out`` / ``commit_out`` (drain guest output; persist the bytes
    between the two calls), ``write_in`` (feed guest input).
    Guest side:    ``write_out`` (produce output), ``read_in`` (consume input).
    """

    __slots__ = ("buf", "fence")

    def __init__(self, buf: WritableBuffer, fence: Fence | None = None) -> None:
        check_page(buf)
        self.buf = buf
        self.fence = fence or _nofence

    def _load(self, off: int) -> int:
        value: int = U32.unpack_from(self.buf, off)[0]
        return value

    def _store(self, off: int, value: int) -> None:
        # One 4-byte copy. Not ``U32.pack_into``: CPython's pack_into memsets the target to
        # zero before packing, so a concurrent reader (the guest) could see an index of 0.
        self.buf[off: off + 4] = U32.pack(value & MASK32)

    # -- backend: consume guest output ------------------------------------------------
    def peek_out(self, max_bytes: int | None = None) -> tuple[bytes, int]:
        """(unread out bytes, the out_cons value that acknowledges them).

        Raises PageError on corrupt indices. Does not move ``out_cons``: the caller
        persists the bytes first, then calls ``commit_out``.
        """
        cons = self._load(OUT_CONS)
        prod = self._load(OUT_PROD)
        self.fence()  # xen_mb(): read indices before the data
        n = (prod - cons) & MASK32
        if n > OUT_SIZE:
            raise PageError(f"corrupt out indices: cons={cons} prod={prod}")
        if max_bytes is not None and n > max_bytes:
            n = max_bytes
            prod = (cons + n) & MASK32
        return ring_bytes(self.buf, OUT_OFFSET, OUT_SIZE, cons, prod), prod

    def commit_out(self, new_cons: int) -> None:
        self.fence()  # xen_mb(): finish reading data before releasing the space
        self._store(OUT_CONS, new_cons)

    # -- backend: produce guest input ---------------------------------------------------
    def write_in(self, data: bytes) -> int:
        """Queue as much of ``data`` as fits; returns the count written."""
        cons = self._load(IN_CONS)
        prod = self._load(IN_PROD)
        self.fence()
        used = (prod - cons) & MASK32
        if used > IN_SIZE:
            raise PageError(f"corrupt in indices: cons={cons} prod={prod}")
        n = min(len(data), IN_SIZE - used)
        for i in range(n):  # at most 1024 bytes
            self.buf[IN_OFFSET + ((prod + i) & (IN_SIZE - 1))] = data[i]
        if n:
            self.fence()  # xen_wmb(): data before index
            self._store(IN_PROD, prod + n)
        return n

    # -- guest: produce output ----------------------------------------------------------
    def write_out(self, data: bytes) -> int:
        cons = self._load(OUT_CONS)
        prod = self._load(OUT_PROD)
        self.fence()  # mb()
        used = (prod - cons) & MASK32
        if used > OUT_SIZE:
            raise PageError(f"corrupt out indices: cons={cons} prod={prod}")
        n = min(len(data), OUT_SIZE - used)
        if n:
            start = prod & (OUT_SIZE - 1)
            first = min(n, OUT_SIZE - start)
            self.buf[OUT_OFFSET + start: OUT_OFFSET + start + first] = data[:first]
            if first < n:
                self.buf[OUT_OFFSET: OUT_OFFSET + n - first] = data[first:n]
            self.fence()  # wmb(): data before index
            self._store(OUT_PROD, prod + n)
        return n

    # -- guest: consume input -----------------------------------------------------------
    def read_in(self) -> bytes:
        cons = self._load(IN_CONS)
        prod = self._load(IN_PROD)
        self.fence()
        n = (prod - cons) & MASK32
        if n > IN_SIZE:
            raise PageError(f"corrupt in indices: cons={cons} prod={prod}")
        if not n:
            return b""
        data = ring_bytes(self.buf, IN_OFFSET, IN_SIZE, cons, prod)
        self.fence()
        self._store(IN_CONS, prod)
        return data

    # -- flag ---------------------------------------------------------------------------
    def set_flag(self, layout: str, state: str) -> bool:
        enc = flags.encode(layout, state)
        if enc is None:
            return False
        off, raw = enc
        self.fence()
        self.buf[off: off + len(raw)] = raw
        self.fence()
        return True

    def set_guest_byte(self, state: str) -> None:
        """Byte 3088 as Linux >= 7.1 reads it, where the host has no flag (layout none)."""
        off, raw = flags.encode_for_guest(state)
        self.fence()
        self.buf[off: off + 1] = raw
        self.fence()


def blank_page(
    layout: str = flags.NONE,
    flag_state: str | None = None,
    out_cons: int = 0,
    out_prod: int = 0,
    in_cons: int = 0,
    in_prod: int = 0,
) -> bytearray:
    """A fresh page (all zero, as libxenguest leaves it) with optional indices and flag."""
    page = bytearray(PAGE_SIZE)
    IDX.pack_into(page, IDX_OFFSET, in_cons & MASK32, in_prod & MASK32, out_cons & MASK32, out_prod & MASK32)
    if flag_state is not None:
        enc = flags.encode(layout, flag_state)
        if enc is not None:
            off, raw = enc
            page[off: off + len(raw)] = raw
    return page
