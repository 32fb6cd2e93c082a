"""An independent reading of docs/protocol.md, for forging ring states.

Tests use it to build and corrupt rings byte by byte without going through
the C code, so a disagreement between the documentation and the C ring
shows up as a failing test.
"""

from __future__ import annotations

import struct

import crc32c

HEADER = 256
REC = 24
MAGIC = 0x5253
VERSION = 3  # of the ring header and of every record
PAD, START, MORE, CONT, NOCRC, DESC, CTRL = 1, 2, 4, 8, 16, 32, 64
DESC_SIZE = 32

# Ring header fields: name -> (offset, struct format).
FIELDS = {
    "magic": (0, "<Q"),
    "version": (8, "<I"),
    "header_size": (12, "<I"),
    "capacity": (16, "<Q"),
    "tail": (64, "<Q"),
    "tail_seq": (72, "<Q"),
    "bytes_written": (80, "<Q"),
    "producer_state": (88, "<I"),
    "msgs_written": (96, "<Q"),
    "bulk_written": (104, "<Q"),
    "msgs_dropped": (112, "<Q"),
    "head": (128, "<Q"),
    "head_seq": (136, "<Q"),
    "bytes_read": (144, "<Q"),
    "msgs_read": (152, "<Q"),
    "bulk_released": (160, "<Q"),
    "bulk_read": (168, "<Q"),
    "consumer_waiting": (192, "<I"),
    "producer_waiting": (196, "<I"),
    "bulk_waiting": (200, "<I"),
    "bulk_want": (208, "<Q"),
}
RING_MAGIC = int.from_bytes(b"SHMRING1", "little")
MASK64 = (1 << 64) - 1


def get(region: bytearray, field: str) -> int:
    off, fmt = FIELDS[field]
    return struct.unpack_from(fmt, region, off)[0]


def put(region: bytearray, field: str, value: int) -> None:
    off, fmt = FIELDS[field]
    bits = 8 * struct.calcsize(fmt)
    struct.pack_into(fmt, region, off, value & ((1 << bits) - 1))


def rec_size(length: int) -> int:
    return (REC + length + 7) & ~7


def record_header(flags: int, length: int, seq: int, crc: int = 0, aux: int = 0) -> bytes:
    return struct.pack("<HBBIQII", MAGIC, VERSION, flags, length, seq & MASK64, crc, aux)


def parse_header(raw: bytes) -> dict[str, int]:
    magic, version, flags, length, seq, crc, aux = struct.unpack("<HBBIQII", raw[:REC])
    return dict(magic=magic, version=version, flags=flags, length=length, seq=seq, crc=crc, aux=aux)


def record_offsets(region: bytearray, capacity: int) -> list[tuple[int, dict[str, int]]]:
    """Data-area offsets and headers of the published records (not padding)."""
    head, tail = get(region, "head"), get(region, "tail")
    out = []
    pos = head
    while pos != tail:
        off = pos & (capacity - 1)
        contig = capacity - off
        if contig < REC:
            pos = (pos + contig) & MASK64
            continue
        h = parse_header(bytes(region[HEADER + off : HEADER + off + REC]))
        if h["flags"] & PAD:
            pos = (pos + contig) & MASK64
            continue
        out.append((off, h))
        pos = (pos + rec_size(h["length"])) & MASK64
    return out


def record_crc(payload: bytes, flags: int, length: int, seq: int, aux: int) -> int:
    """A record's crc: CRC32C of the payload, continued over the 17-byte
    little-endian trailer flags (1), length (4), seq (8), aux (4)."""
    trailer = struct.pack("<BIQI", flags, length, seq & MASK64, aux)
    return crc32c.crc32c(trailer, crc32c.crc32c(payload))


def checksummed_header(payload: bytes, flags: int, seq: int, aux: int = 0) -> bytes:
    """The header of a checksummed record carrying *payload*."""
    length = len(payload)
    return record_header(flags, length, seq, record_crc(payload, flags, length, seq, aux), aux)
