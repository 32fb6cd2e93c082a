"""A reference consumer written from docs/protocol.md alone.

It follows "What a consumer checks, in order" and the position rules step
by step, in plain Python, so a fuzz test can run it beside the C consumer
on the same hostile ring and require the same answer: the same records,
the same error code, the same head.  It never writes to the ring; the
test compares what the C side wrote with what this model expects.
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers import ringforge as rf

M64 = 1 << 64
KNOWN_FLAGS = rf.PAD | rf.START | rf.MORE | rf.CONT | rf.NOCRC | rf.DESC | rf.CTRL

# Return codes of csrc/shmring.h.
ENOBUFS = -4
EHEADER = -10
EPOSITION = -11
EMAGIC = -12
EVERSION = -13
EFLAGS = -14
ELENGTH = -15
ESEQUENCE = -16
ECRC = -17
EPAD = -18


class RefError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Rec:
    payload: bytes
    flags: int  # without NOCRC, as the consumer reports them
    aux: int
    seq: int
    checked: bool  # the CRC was verified


@dataclass
class ReadResult:
    records: list[Rec]
    wake: bool
    head: int  # the head published (unchanged when nothing was consumed)


class RefConsumer:
    """The consumer's private state and its reading rules."""

    def __init__(self, region: bytearray, cap: int, resync: bool) -> None:
        if (
            rf.get(region, "magic") != rf.RING_MAGIC
            or rf.get(region, "version") != rf.VERSION
            or rf.get(region, "header_size") != rf.HEADER
            or rf.get(region, "capacity") != cap
        ):
            raise RefError(EHEADER)
        head, tail = rf.get(region, "head"), rf.get(region, "tail")
        if (tail - head) % M64 > cap or (head | tail) & 7:
            raise RefError(EPOSITION)
        self.cap = cap
        self.head = head
        self.tail_cache = tail
        self.seq = rf.get(region, "head_seq")
        self.resync = resync

    def _reload_tail(self, region: bytearray) -> None:
        """The producer's position may only move forward, by at most a ring."""
        tail = rf.get(region, "tail")
        ahead = (tail - self.head) % M64
        if ahead > self.cap or ahead < (self.tail_cache - self.head) % M64 or tail & 7:
            raise RefError(EPOSITION)
        self.tail_cache = tail

    def available(self, region: bytearray) -> int:
        self._reload_tail(region)
        return (self.tail_cache - self.head) % M64

    def prepare_wait(self, region: bytearray) -> bool:
        """True: the caller may sleep."""
        self._reload_tail(region)
        return self.tail_cache == self.head

    def read(self, region: bytearray, out_cap: int, max_count: int) -> ReadResult:
        """One read call; raises RefError when it returns an error code."""
        cap, mask = self.cap, self.cap - 1
        maxp = cap // 2 - rf.REC
        start = head = self.head
        records: list[Rec] = []
        used = 0
        err = 0
        while len(records) < max_count:
            if head == self.tail_cache:
                try:
                    self._reload_tail(region)
                except RefError as exc:
                    err = exc.code
                    break
                if head == self.tail_cache:
                    break
            avail = (self.tail_cache - head) % M64
            off = head & mask
            contig = cap - off
            if contig < rf.REC:  # a gap too small for a padding record
                if avail <= contig:
                    err = EPOSITION
                    break
                if (head + contig - start) % M64 > cap:
                    break
                head = (head + contig) % M64
                continue
            if avail < rf.REC:
                err = EPOSITION
                break
            base = rf.HEADER + off
            h = rf.parse_header(bytes(region[base : base + rf.REC]))
            flags, length = h["flags"], h["length"]
            if h["magic"] != rf.MAGIC:
                err = EMAGIC
            elif h["version"] != rf.VERSION:
                err = EVERSION
            elif (
                flags & ~KNOWN_FLAGS
                or (not flags & rf.START and h["aux"] != 0)
                or (flags & rf.NOCRC and h["crc"] != 0)
                or (flags & rf.DESC and flags & rf.CONT)
            ):
                err = EFLAGS
            elif not self.resync and h["seq"] != self.seq:
                err = ESEQUENCE
            if err:
                break
            if flags & rf.PAD:
                if flags != rf.PAD or length != contig - rf.REC or off == 0 or h["crc"] != 0:
                    err = EPAD
                    break
                if avail <= contig:
                    err = EPOSITION
                    break
                if (head + contig - start) % M64 > cap:
                    break
                head = (head + contig) % M64
                continue
            size = rf.rec_size(length)
            if length > maxp or size > contig or (flags & rf.DESC and length != rf.DESC_SIZE):
                err = ELENGTH
                break
            if size > avail:
                err = EPOSITION
                break
            if (head + size - start) % M64 > cap:
                break
            if length > out_cap - used:
                if not records:
                    err = ENOBUFS
                break
            payload = bytes(region[base + rf.REC : base + rf.REC + length])
            checked = not flags & rf.NOCRC
            if checked and rf.record_crc(payload, flags, length, h["seq"], h["aux"]) != h["crc"]:
                err = ECRC
                break
            if self.resync:
                self.seq = h["seq"]
                self.resync = False
            records.append(Rec(payload, flags & ~rf.NOCRC, h["aux"], h["seq"], checked))
            used += length
            head = (head + size) % M64
            self.seq = (self.seq + 1) % M64
        wake = False
        if head != start:
            self.head = head
            # The producer announces the free space it waits for.
            want = rf.get(region, "producer_waiting")
            wake = want != 0 and cap - (self.tail_cache - head) % M64 >= want
        if not records and err:
            raise RefError(err)
        return ReadResult(records, wake, self.head)
