"""Hostile ring states: the consumer must report corruption, never misbehave.

Every case builds a valid ring holding known records, then forges one of
the states a buggy or hostile peer (or a crash) could leave behind, using
the byte layout of docs/protocol.md.  The reader must deliver exactly the
original records that come before the damage, then raise CorruptMessage on
that and every later read.  It must never deliver a damaged or invented
record, crash, or loop.  Random byte-level fuzz runs on top.

Each case is reproducible from its seed, which failure messages name.
"""

from __future__ import annotations

import random

import pytest
from helpers import ringforge as rf

from shmsock import CorruptMessage
from shmsock import _ring as R

M64 = 1 << 64
TARGETED_CASES = 10_000
FUZZ_CASES = 5_000


class Scene:
    """A ring with known records, some already consumed."""

    def __init__(self, rnd: random.Random) -> None:
        self.cap = rnd.choice([256, 512, 1024, 4096])
        self.maxp = self.cap // 2 - 24
        start = (M64 - 8 * rnd.randrange(0, self.cap)) % M64
        self.region = bytearray(R.region_size(self.cap))
        R.init_ring(self.region, self.cap, start, (M64 - rnd.randrange(100)) % M64)
        self.prod = R.Producer(self.region, self.cap)
        self.cons = R.Consumer(self.region, self.cap)
        self.buf = R.ReadBuffer(self.cap, 64)
        # Move the positions somewhere random, leaving stale records behind.
        for _ in range(rnd.randrange(0, 12)):
            self.prod.write(bytes([rnd.randrange(256)]) * rnd.randrange(self.maxp // 2))
            self.cons.read(self.buf)
        self.sent: list[bytes] = []
        for _ in range(rnd.randrange(1, 8)):
            msg = rnd.randbytes(rnd.randrange(0, self.maxp // 3))
            if self.prod.write(msg) < 0:
                break
            self.sent.append(msg)
        self.records = rf.record_offsets(self.region, self.cap)
        assert len(self.records) == len(self.sent)
        # The consumer has seen the current tail, as a live reader would have.
        self.cons.available()

    def drain(self, cons: R.Consumer) -> tuple[list[bytes], CorruptMessage | None]:
        got: list[bytes] = []
        for _ in range(100):
            try:
                batch = cons.read(self.buf, 3)[0]
            except CorruptMessage as exc:
                return got, exc
            if not batch:
                return got, None
            got.extend(batch)
        raise AssertionError("reader never stops")

    def rec(self, i: int) -> int:
        """Absolute offset in the region of record i's header."""
        return R.HEADER_SIZE + self.records[i][0]


def forge(scene: Scene, rnd: random.Random) -> tuple[str, int, bool]:
    """Damage the ring.

    Returns what was done, the index of the first damaged record, and
    whether the damage is one that a consumer attaching afresh must see
    (a tail inside a record); the others are seen by the live consumer.
    """
    s, reg = scene, scene.region
    n = len(s.records)
    i = rnd.randrange(n)
    off = s.rec(i)
    kind = rnd.randrange(13)
    head, tail = rf.get(reg, "head"), rf.get(reg, "tail")
    if kind == 0:
        rf.put(reg, "tail", head + s.cap + 8 * rnd.randrange(1, 1 << 20))
        return "tail leaps ahead", n, False
    if kind == 1:
        rf.put(reg, "tail", tail - 8 * rnd.randrange(1, 1 << 20))
        return "tail runs backwards", n, False
    if kind == 2:
        rf.put(reg, "tail", tail + rnd.randrange(1, 8))
        return "tail misaligned", n, False
    if kind == 3:
        bad = rnd.choice(
            [s.maxp + 1, s.cap, s.cap * 2, 0xFFFFFFFF, rnd.randrange(s.maxp + 1, M64 >> 32)]
        )
        reg[off + 4 : off + 8] = bad.to_bytes(4, "little")
        return "length beyond capacity", i, False
    if kind == 4:
        # Longer than what was published: the record runs past the tail.
        length = int.from_bytes(reg[off + 4 : off + 8], "little")
        bad = length + 8 * rnd.randrange(1, 4) + s.cap // 4
        reg[off + 4 : off + 8] = min(bad, s.maxp).to_bytes(4, "little")
        if min(bad, s.maxp) == length:
            reg[off] ^= 0xFF  # nothing to lengthen: damage the magic instead
        return "length past the tail", i, False
    if kind == 5:
        reg[off + rnd.randrange(2)] ^= 1 << rnd.randrange(8)
        return "bad magic", i, False
    if kind == 6:
        # Any other version, the one before this format's included.
        reg[off + 2] = rnd.choice([v for v in (0, 1, 2, 3, 255) if v != rf.VERSION])
        return "bad version", i, False
    if kind == 7:
        reg[off + 3] |= rnd.choice([0x40, 0x80])
        return "unknown flags", i, False
    if kind == 8:
        seq = int.from_bytes(reg[off + 8 : off + 16], "little")
        delta = rnd.choice([1, -1, 2, 1 << 40, -(1 << 63)])
        reg[off + 8 : off + 16] = ((seq + delta) % M64).to_bytes(8, "little")
        return "wrong sequence", i, False
    if kind == 9:
        length = int.from_bytes(reg[off + 4 : off + 8], "little")
        if length == 0:
            reg[off + 16] ^= 1  # no payload to flip: damage the CRC
        else:
            reg[off + 24 + rnd.randrange(length)] ^= 1 << rnd.randrange(8)
        return "payload bit flip", i, False
    if kind == 10:
        # Torn: the published tail stops inside the last record.
        size = rf.rec_size(s.records[-1][1]["length"])
        rf.put(reg, "tail", tail - size + 8 * rnd.randrange(1, size // 8))
        return "torn record", n - 1, True
    if kind == 11:
        reg[off + 3] = rf.PAD | rnd.choice([0, rf.START, rf.MORE])
        return "forged padding", i, False
    # kind == 12
    flags = reg[off + 3] & ~rf.START
    reg[off + 3] = flags
    reg[off + 20 : off + 24] = rnd.randrange(1, 1 << 32).to_bytes(4, "little")
    return "aux without START", i, False


def test_targeted_forgeries_are_reported_and_never_delivered():
    seen: dict[str, int] = {}
    for case in range(TARGETED_CASES):
        rnd = random.Random(case)
        scene = Scene(rnd)
        what, first_bad, fresh = forge(scene, rnd)
        seen[what] = seen.get(what, 0) + 1
        cons = R.Consumer(scene.region, scene.cap) if fresh else scene.cons
        got, exc = scene.drain(cons)
        assert exc is not None, f"case {case} ({what}): corruption not reported"
        assert got == scene.sent[:first_bad], f"case {case} ({what}): wrong records delivered"
        for _ in range(2):  # it stays reported; the bad record is never skipped
            with pytest.raises(CorruptMessage):
                cons.read(scene.buf)
    assert len(seen) >= 13  # every kind of forgery was exercised


def test_random_byte_fuzz_delivers_a_true_prefix_or_reports():
    reported = 0
    for case in range(FUZZ_CASES):
        rnd = random.Random(10**6 + case)
        scene = Scene(rnd)
        attach_after = rnd.random() < 0.3
        for _ in range(rnd.randrange(1, 6)):
            k = rnd.randrange(1, 9)
            pos = rnd.randrange(len(scene.region) - k + 1)
            scene.region[pos : pos + k] = rnd.randbytes(k)
        cons = scene.cons
        if attach_after:
            try:
                cons = R.Consumer(scene.region, scene.cap)
            except CorruptMessage:
                reported += 1
                continue
        got, exc = scene.drain(cons)
        if attach_after and got and got[0] != scene.sent[0]:
            # A fresh consumer trusts head and head_seq from the header; the
            # fuzz may have moved head onto a later record, never a false one.
            assert got == scene.sent[scene.sent.index(got[0]) :][: len(got)], f"case {case}"
        else:
            assert got == scene.sent[: len(got)], f"case {case}: delivered data that was not sent"
        if exc is not None:
            reported += 1
        else:
            assert attach_after or len(got) == len(scene.sent), f"case {case}: records vanished"
    assert reported > FUZZ_CASES // 4


def test_producer_rejects_impossible_consumer_positions():
    for case in range(2000):
        rnd = random.Random(-case)
        scene = Scene(rnd)
        tail = rf.get(scene.region, "tail")
        # Beyond anything the producer can have published by the time it
        # looks (a head merely ahead of today's tail may be legitimate then),
        # behind the oldest possible position, or misaligned.
        bad = rnd.choice(
            [
                tail + scene.cap + 8 * rnd.randrange(1, 100),
                tail - scene.cap - 8 * rnd.randrange(1, 100),
                tail - 3,
            ]
        )
        rf.put(scene.region, "head", bad)
        with pytest.raises(CorruptMessage):
            # Fill until the producer has to look at the consumer's position.
            for _ in range(scene.cap):
                scene.prod.write(bytes(scene.maxp))
        with pytest.raises(CorruptMessage):
            R.Producer(scene.region, scene.cap)


def test_corrupt_ring_header_is_refused_at_attach():
    for case in range(1000):
        rnd = random.Random(5 * 10**6 + case)
        scene = Scene(rnd)
        field = rnd.choice(["magic", "version", "header_size", "capacity"])
        rf.put(scene.region, field, rf.get(scene.region, field) ^ (1 << rnd.randrange(16)))
        with pytest.raises(CorruptMessage, match="header"):
            R.Consumer(scene.region, scene.cap)
        with pytest.raises(CorruptMessage, match="header"):
            R.Producer(scene.region, scene.cap)


# -- the checksum covers the header fields a reader acts on ---------------------

FRAMES = [(b"first frame", rf.START | rf.MORE, 5), (b"B", rf.MORE, 0), (b"the end", 0, 0)]


def multipart_ring(resync: bool = False) -> tuple[bytearray, R.Consumer, R.ReadBuffer]:
    """A checksummed ring holding one three-frame message, aux 5 on its first frame."""
    region = bytearray(R.region_size(256))
    R.init_ring(region, 256, start_seq=41)
    prod = R.Producer(region, 256)
    for payload, flags, aux in FRAMES:
        prod.write(payload, flags, aux)
    prod.release()
    return region, R.Consumer(region, 256, resync=resync), R.ReadBuffer(256, 64)


def read_frames(cons: R.Consumer, buf: R.ReadBuffer) -> list[tuple[bytes, int, int]]:
    """Everything readable, as (payload, flags, aux); CorruptMessage propagates."""
    payloads, flags, aux, _wake = cons.read(buf)
    if flags is None or aux is None:
        return [(p, R.START, 0) for p in payloads]
    return list(zip(payloads, flags, aux, strict=True))


def test_clearing_more_on_a_middle_frame_is_caught_not_delivered_short():
    # Payload-only checksums delivered [A, B] for [A, B, C] here: B, its
    # MORE cleared, looked like the message's last frame.
    region, cons, buf = multipart_ring()
    b = R.HEADER_SIZE + rf.record_offsets(region, 256)[1][0]
    region[b + 3] &= ~rf.MORE
    # The frame before it is good and delivered; B never is, read after read.
    assert read_frames(cons, buf) == FRAMES[:1]
    for _ in range(2):
        with pytest.raises(CorruptMessage, match="CRC32C"):
            read_frames(cons, buf)


def test_setting_nocrc_on_a_checksummed_record_does_not_switch_its_check_off():
    region, cons, buf = multipart_ring()
    a = R.HEADER_SIZE + rf.record_offsets(region, 256)[0][0]
    region[a + 3] |= rf.NOCRC
    region[a + rf.REC] ^= 1  # and the payload it would no longer check
    for _ in range(2):
        with pytest.raises(CorruptMessage, match="flags"):
            read_frames(cons, buf)


@pytest.mark.parametrize("resync", [False, True])
def test_every_bit_flip_in_a_checksummed_record_header_is_caught(resync):
    """flags, length, seq, crc and aux: no single flipped bit gets a record through.

    The reader delivers the frames before the damaged one, exactly as
    written (flags and aux included), then reports corruption; a resyncing
    reader, which takes any seq, relies on the checksum for it.
    """
    region, _cons, _buf = multipart_ring()
    offsets = [R.HEADER_SIZE + off for off, _h in rf.record_offsets(region, 256)]
    pristine = bytes(region)
    flips = 0
    for i, base in enumerate(offsets):
        for byte in range(3, rf.REC):  # everything after magic and version
            for bit in range(8):
                region[:] = pristine
                region[base + byte] ^= 1 << bit
                cons = R.Consumer(region, 256, resync=resync)
                buf = R.ReadBuffer(256, 64)
                got: list[tuple[bytes, int, int]] = []
                with pytest.raises(CorruptMessage):
                    for _ in range(len(FRAMES)):
                        got += read_frames(cons, buf)
                assert got == FRAMES[:i], (i, byte, bit)
                cons.release()
                flips += 1
    assert flips == len(FRAMES) * (rf.REC - 3) * 8
