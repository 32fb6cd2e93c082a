"""A reference bulk reader written from docs/protocol.md ("Bulk regions") alone.

It follows "What a reader checks, for each descriptor" step by step in
plain Python, so a fuzz test can run it beside the C reader
(csrc/shmbulk.c) on the same descriptors and require the same verdict and
the same extent.  Descriptors are forged with :func:`pack`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

M64 = 1 << 64
M63 = 1 << 63
HEADER = 4096
ALIGN = 64
DESC = struct.Struct("<QQIIII")  # pos, length, crc, generation, flags, reserved
CRC_FLAG = 1

OK = 0
ENEWREGION = -6
EEXTENT = -19


def pack(pos: int, length: int, crc: int, gen: int, flags: int = 0, reserved: int = 0) -> bytes:
    return DESC.pack(pos % M64, length % M64, crc, gen, flags, reserved)


def unpack(desc: bytes) -> tuple[int, int, int, int, int, int]:
    pos, length, crc, gen, flags, reserved = DESC.unpack(desc)
    return pos, length, crc, gen, flags, reserved


def align(x: int) -> int:
    return (x + ALIGN - 1) & ~(ALIGN - 1) & (M64 - 1)


def behind(a: int, b: int) -> bool:
    """Whether position a is before b (modulo 2^64)."""
    return (a - b) % M64 >= M63


@dataclass
class Extent:
    pos: int
    offset: int  # from the start of the mapping
    length: int
    crc: int
    checked: bool


class RefReader:
    """The reader's private state for one region."""

    def __init__(
        self,
        capacity: int,
        gen: int,
        released: int,
        *,
        prev: RefReader | None = None,
        resync: bool = False,
    ) -> None:
        self.cap = capacity
        self.gen = gen
        self.fresh = True
        if prev is not None:
            self.expect, self.released, self.resync = prev.expect, prev.released, prev.resync
        else:
            self.expect = self.released = released
            self.resync = resync
        self.base = self.expect

    def accept(self, desc: bytes) -> tuple[int, Extent | None]:
        pos, length, crc, gen, flags, reserved = unpack(desc)
        cap = self.cap
        if gen != self.gen:  # step 1
            return (EEXTENT if gen < self.gen else ENEWREGION), None
        off = pos % cap
        if (  # step 2
            not 1 <= length <= cap // 2
            or pos % ALIGN
            or flags & ~CRC_FLAG
            or reserved
            or (not flags & CRC_FLAG and crc)
            or off + length > cap
        ):
            return EEXTENT, None
        if self.resync:  # step 3
            if behind(pos, self.released):
                return EEXTENT, None
            base = pos
        elif self.fresh:
            if off or behind(pos, self.expect):
                return EEXTENT, None
            base = pos
        else:
            e = self.expect
            start = e if e % cap + length <= cap else (e + cap - e % cap) % M64
            if pos != start:
                return EEXTENT, None
            base = self.base
        end = (pos + length) % M64
        floor = base if behind(self.released, base) else self.released  # step 4
        if (end - floor) % M64 > cap:
            return EEXTENT, None
        self.base, self.fresh, self.resync = base, False, False
        self.expect = align(end)
        return OK, Extent(pos, HEADER + off, length, crc, bool(flags & CRC_FLAG))

    def release(self, pos: int) -> None:
        assert (pos - self.released) % M64 <= (self.expect - self.released) % M64
        self.released = pos
