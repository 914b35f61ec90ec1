"""The types of a console page as the core reads and writes it: ``bytes``, ``bytearray``,
``memoryview`` or an ``mmap`` (the dom0 platform's cffi buffer is used as a memoryview)."""

from __future__ import annotations

import mmap

Buffer = bytes | bytearray | memoryview | mmap.mmap  # read
WritableBuffer = bytearray | memoryview | mmap.mmap  # RingIO writes indices and data

__all__ = ["Buffer", "WritableBuffer"]
