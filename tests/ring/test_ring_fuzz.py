"""Fuzzed shared memory (issue #6, case 8).

Each case builds a ring with an honest history (writes of every flag
combination, reads at random, sleepers announced), then damages it: one
to four mutations of header fields, positions, waiter words, record
header fields, payload bytes or random spans, or records forged whole
with a valid CRC (as a hostile writer can).  Then the victim works on
it:

- the C consumer and the reference consumer of ringref.py (written from
  docs/protocol.md alone) read side by side and must agree exactly: same
  records, flags and aux, same error code, same head, same wake-up.  The C
  side must write nothing but its own header line and the waiter word it
  clears, and never advance more than a ring per call;
- with a single mutation on a checksummed ring, every record delivered is
  one the producer wrote, payload, flags and aux, in order and never twice
  (the guarantee the rules above exist for).  The checksum covers flags,
  length, seq and aux as well as the payload, so this holds for a mutated
  record header too: a bit flipped in those fields gives CorruptMessage,
  never a frame with MORE lost or a reply with another aux;
- the producer, facing a damaged consumer line, either works or raises
  CorruptMessage, and writes nothing outside the data area and its own
  words.

Cases are seeded: a failure names its seed.  SHMSOCK_FUZZ_CASES and
SHMSOCK_FUZZ_SEED run more cases, or other ones.  The C driver
(tests/ring/c/ring_fuzz.c) runs many more states at C speed, and under
AddressSanitizer and UBSan in `tox -e asan`.  The last tests corrupt rings
under live connections: the only outcomes are correct data, loss, or
CorruptMessage with the connection closed as broken.
"""

from __future__ import annotations

import collections
import os
import random
import re
import subprocess
from array import array

import trio
from helpers import cbuild, fuzzpeers, seam
from helpers import ringforge as rf
from helpers import ringref as ref
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, PULL, PUSH, CorruptMessage, MessageTooLarge
from shmsock import _ring as R

M64 = 1 << 64
CASES = int(os.environ.get("SHMSOCK_FUZZ_CASES", "10000"))
BASE_SEED = int(os.environ.get("SHMSOCK_FUZZ_SEED", "0"))
C_CASES = int(os.environ.get("SHMSOCK_FUZZ_C_CASES", "100000"))

HEADER_FIELDS = list(rf.FIELDS)
CONSUMER_LINE = range(128, 192)
PRODUCER_LINE = range(64, 128)
CONSUMER_WAITING = range(192, 196)
PRODUCER_WAITING = range(196, 200)
REC_FIELDS = {  # name -> (offset in the record header, size)
    "magic": (0, 2),
    "version": (2, 1),
    "flags": (3, 1),
    "length": (4, 4),
    "seq": (8, 8),
    "crc": (16, 4),
    "aux": (20, 4),
}


def interesting(rnd: random.Random, old: int, bits: int, cap: int) -> int:
    """A value for a field of *bits* bits that was *old*: edges, near misses, noise."""
    top = (1 << bits) - 1
    pick = rnd.randrange(12)
    if pick == 0:
        return 0
    if pick == 1:
        return top
    if pick == 2:
        return old ^ (1 << rnd.randrange(bits))
    if pick == 3:
        return (old + rnd.choice([1, -1, 8, -8, 24, -24])) & top
    if pick == 4:
        return (old + rnd.choice([cap, -cap, cap // 2, 2 * cap, cap + 8])) & top
    if pick == 5:
        return rnd.choice([1, 2, 3, 0x10, 0x20, 0x80]) & top
    if pick == 6:
        return (old + (rnd.randrange(1, 64) << rnd.randrange(bits))) & top
    if pick == 7:
        return (1 << (bits - 1)) & top
    return rnd.getrandbits(bits)


ALL_DAMAGE = (
    "positions",
    "header",
    "record",
    "record",
    "record",
    "record bit",
    "payload",
    "span",
    "garbage",
    "producer_state",
    "forged length",
    "forged padding",
    "forged next record",
)


class Damage:
    """Mutations of a ring region: what a crash, a stray write or a hostile peer does."""

    def __init__(self, region: bytearray | memoryview, cap: int, rnd: random.Random) -> None:
        self.region = region
        self.cap = cap
        self.maxp = cap // 2 - rf.REC
        self.rnd = rnd
        self.count = 0
        self.forged = False  # a record was forged whole (valid CRC): it is data
        self.unread: list[int] | None = None

    def mutate(self, kinds: tuple[str, ...] = ALL_DAMAGE) -> str:
        """Apply one mutation of a kind drawn from *kinds*; return its name."""
        rnd, reg, cap = self.rnd, self.region, self.cap
        if self.unread is None:
            self.record_offset()
        self.count += 1
        kind = rnd.choice(kinds)
        if kind.startswith("forged"):
            return self.forge(kind)
        if kind == "producer_state":  # closed, what older builds wrote, nonsense: all ignored
            rf.put(reg, "producer_state", rnd.choice([1, 2, 2, 3, rnd.getrandbits(32)]))
            return "header producer_state"
        if kind in ("positions", "tail", "header"):
            names = {"positions": ["head", "tail"], "tail": ["tail"]}.get(kind, HEADER_FIELDS)
            name = rnd.choice(names)
            bits = 64 if rf.FIELDS[name][1] == "<Q" else 32
            rf.put(reg, name, interesting(rnd, rf.get(reg, name), bits, cap))
            return f"header {name}"
        if kind == "record":  # a field of a record header, unread or stale
            off = rf.HEADER + self.record_offset()
            name = rnd.choice(list(REC_FIELDS))
            at, size = REC_FIELDS[name]
            old = int.from_bytes(reg[off + at : off + at + size], "little")
            new = interesting(rnd, old, 8 * size, cap)
            reg[off + at : off + at + size] = new.to_bytes(size, "little")
            return f"record {name}"
        if kind == "record bit":  # one bit of what the checksum now covers, or of crc
            off = rf.HEADER + self.record_offset()
            name = rnd.choice(["flags", "length", "seq", "aux", "crc"])
            at, size = REC_FIELDS[name]
            reg[off + at + rnd.randrange(size)] ^= 1 << rnd.randrange(8)
            return f"record {name} bit"
        if kind == "payload":
            off = rf.HEADER + self.record_offset() + rf.REC + rnd.randrange(64)
            if off < len(reg):
                reg[off] ^= 1 << rnd.randrange(8)
            return "payload"
        if kind in ("span", "data span"):  # random bytes anywhere (or in the data area)
            k = rnd.randrange(1, 17)
            low = rf.HEADER if kind == "data span" else 0
            pos = rnd.randrange(low, len(reg) - k + 1)
            reg[pos : pos + k] = rnd.randbytes(k)
            return kind
        assert kind == "garbage", kind  # a record header of garbage where the next one goes
        off = rf.HEADER + rf.get(reg, "tail") % cap
        if off + rf.REC <= len(reg):
            reg[off : off + rf.REC] = rnd.randbytes(rf.REC)
        return "garbage record"

    def forge(self, kind: str) -> str:
        """A record that passes the checks that come before the one under test.

        A hostile writer can write records with the right magic, sequence
        number and CRC; such records are data, so the payload guarantee
        does not apply to these cases (``forged``).
        """
        rnd, reg, cap = self.rnd, self.region, self.cap
        self.forged = True
        if kind == "forged length":  # an unread record gets another length, CRC to match
            off = self.record_offset()
            base = rf.HEADER + off
            h = rf.parse_header(bytes(reg[base : base + rf.REC]))
            length = rnd.choice(
                [
                    self.maxp,
                    self.maxp + 1,
                    self.maxp + 8,
                    cap - off - rf.REC,
                    cap - off - rf.REC + 1,
                    cap,
                    h["length"] + 8,
                    0xFFFFFFFF,
                ]
            )
            length %= 1 << 32
            body = bytes(reg[base + rf.REC : base + rf.REC + length])
            flags, seq, aux = h["flags"] & ~rf.NOCRC, h["seq"], h["aux"]
            crc = rf.record_crc(body, flags, length, seq, aux)
            reg[base : base + rf.REC] = rf.record_header(flags, length, seq, crc, aux)
            return kind
        if kind == "forged padding":  # at any offset, 0 included
            off = self.record_offset() if rnd.random() < 0.5 else 0
            base = rf.HEADER + off
            h = rf.parse_header(bytes(reg[base : base + rf.REC]))
            length = cap - off - rf.REC + rnd.choice([0, 0, 0, 8, -8])
            reg[base : base + rf.REC] = rf.record_header(rf.PAD, length % (1 << 32), h["seq"])
            return kind
        # a valid-looking next record, published with a tail of our choosing
        tail = rf.get(reg, "tail")
        off = tail % cap
        contig = cap - off
        length = rnd.choice(
            [
                0,
                8,
                self.maxp,
                self.maxp + 8,
                max(contig - rf.REC, 0),
                contig - rf.REC + 8,
                rnd.randrange(cap),
            ]
        )
        length %= 1 << 32
        if contig >= rf.REC:
            body = bytes(reg[rf.HEADER + off + rf.REC : rf.HEADER + off + rf.REC + length])
            seq = rf.get(reg, "tail_seq")
            crc = rf.record_crc(body, rf.START, length, seq, 0)
            reg[rf.HEADER + off : rf.HEADER + off + rf.REC] = rf.record_header(
                rf.START, length, seq, crc
            )
        size = rf.rec_size(length)
        rf.put(reg, "tail", tail + rnd.choice([size, size - 8, size + 8, contig, cap]))
        return kind

    def unread_records(self) -> list[tuple[int, dict[str, int]]]:
        """Offsets and headers of the records between head and tail, as far as
        they make sense (the walk stops at the first one that does not)."""
        reg, cap = self.region, self.cap
        head, tail = rf.get(reg, "head"), rf.get(reg, "tail")
        out = []
        pos = head
        while (pos - head) % M64 < (tail - head) % M64 <= cap and len(out) < cap:
            off = pos % cap
            contig = cap - off
            if contig < rf.REC:
                pos += contig
                continue
            h = rf.parse_header(bytes(reg[rf.HEADER + off : rf.HEADER + off + rf.REC]))
            if h["magic"] != rf.MAGIC or rf.rec_size(h["length"]) > contig:
                break
            if h["flags"] & rf.PAD:
                pos += contig
                continue
            out.append((off, h))
            pos += rf.rec_size(h["length"])
        return out

    def flip_unread_payload(self) -> bool:
        """Flip a bit of the first payload byte of an unread record that has one.

        False when the walk from head stops before finding one: a record
        there no longer makes sense, which is damage the reader will find.
        """
        self.count += 1
        for off, h in self.unread_records():
            if h["length"]:
                self.region[rf.HEADER + off + rf.REC] ^= 1 << self.rnd.randrange(8)
                return True
        return False

    def record_offset(self) -> int:
        """Data-area offset of a record header: an unread one if any, else anywhere."""
        if self.unread is None:  # walk the records before the positions are damaged
            self.unread = [off for off, _h in self.unread_records()]
        if self.unread and self.rnd.random() < 0.8:
            return self.rnd.choice(self.unread)
        return 8 * self.rnd.randrange((self.cap - rf.REC) // 8 + 1)


class Case:
    """One fuzz case: an honest ring, then damage, then the victim at work."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rnd = rnd = random.Random(seed)
        self.cap = cap = rnd.choice([256, 512, 1024, 4096])
        self.maxp = cap // 2 - rf.REC
        self.checksum = rnd.random() < 0.85
        self.region = bytearray(R.region_size(cap))
        start = (M64 - 8 * rnd.randrange(3 * cap // 8)) % M64
        R.init_ring(self.region, cap, start, (M64 - rnd.randrange(40)) % M64)
        self.prod = R.Producer(self.region, cap, checksum=self.checksum)
        resync = rnd.random() < 0.5  # a binder attaches with resync
        self.cons = R.Consumer(self.region, cap, resync=resync)
        self.ref = ref.RefConsumer(self.region, cap, resync)
        self.buf = R.ReadBuffer(rnd.choice([cap, cap, cap // 4, 40]), rnd.choice([1, 2, 5, 64]))
        self.sent: list[bytes] = []  # payloads in writing order
        self.meta: list[tuple[int, int]] = []  # their (flags, aux), as the reader reports them
        self.next: int | None = 0  # index in self.sent of the next payload due
        self.damage = Damage(self.region, cap, rnd)

    # -- honest history ---------------------------------------------------

    def payload(self, size: int, i: int = 0) -> bytes:
        """The payload of the *i*-th record of the next batch: unique among them."""
        n = (len(self.sent) + i).to_bytes(4, "little") + self.seed.to_bytes(4, "little")
        return (n * (size // 8 + 1))[:size]

    def write(self) -> None:
        rnd = self.rnd
        count = rnd.randrange(1, 5)
        flags = bytes(
            rnd.choice(
                [R.START, R.START, R.START | R.MORE, R.CONT, R.MORE, 0, R.START | R.DESC, R.DESC]
            )
            for _ in range(count)
        )
        # A DESC record's payload is one descriptor (to the ring, 32 bytes).
        sizes = [
            rf.DESC_SIZE
            if f & R.DESC
            else rnd.choice([0, rnd.randrange(self.maxp // 4 + 1), self.maxp])
            for f in flags
        ]
        payloads = [self.payload(n, i) for i, n in enumerate(sizes)]
        aux = rnd.choice([0, 0, 7, 0xFFFFFFFF])
        try:
            n, _wake = self.prod.write_records(
                b"".join(payloads),
                array("I", sizes),
                flags,
                aux,
                atomic=rnd.random() < 0.5,
            )
        except MessageTooLarge:
            return  # an atomic batch larger than the ring
        self.sent += payloads[:n]
        # The ring stores aux only in START records (docs/protocol.md).
        self.meta += [(f, aux if f & R.START else 0) for f in flags[:n]]

    def history(self) -> None:
        for _ in range(self.rnd.randrange(1, 10)):
            step = self.rnd.randrange(10)
            if step < 5:
                self.write()
            elif step < 8:
                self.read()
            elif step == 8:
                self.prepare_wait()
            else:
                self.prod.prepare_wait(self.rnd.randrange(self.maxp + 1))
        if self.rnd.random() < 0.5:
            self.available()  # the consumer has seen the latest tail

    # -- damage -----------------------------------------------------------

    # -- the victim at work -------------------------------------------------

    def check_writes(self, before: bytes, allowed: list[range], what: str) -> None:
        """Only the *allowed* byte ranges of the region differ from *before*."""
        pos = 0
        for r in [*sorted(allowed, key=lambda r: r.start), range(len(before), len(before))]:
            if before[pos : r.start] != self.region[pos : r.start]:
                bad = next(i for i in range(pos, r.start) if before[i] != self.region[i])
                raise AssertionError(f"seed {self.seed}: {what} wrote at offset {bad}")
            pos = max(pos, r.stop)

    def read(self, max_count: int = 0) -> int:
        """One read by both consumers, compared; returns the error code, or 0."""
        max_count = max_count or self.rnd.randrange(1, self.buf.max_count + 1)
        before = bytes(self.region)
        head0 = self.ref.head
        try:
            exp = self.ref.read(self.region, self.buf.size, max_count)
            exp_err = 0
        except ref.RefError as exc:
            exp, exp_err = None, exc.code
        got_err = 0
        try:
            payloads, flags, aux, wake = self.cons.read(self.buf, max_count)
        except CorruptMessage as exc:
            got_err = exc.code
        except BufferError:
            got_err = ref.ENOBUFS
        where = f"seed {self.seed}"
        assert got_err == exp_err, f"{where}: C gave {got_err}, the protocol says {exp_err}"
        self.check_writes(before, [CONSUMER_LINE, PRODUCER_WAITING], "the consumer")
        if self.ref.head != head0:
            assert rf.get(self.region, "head") == self.ref.head, where
            assert (self.ref.head - head0) % M64 <= self.cap, where
        if exp is None:
            return exp_err
        assert payloads == [r.payload for r in exp.records], where
        if flags is None:
            assert all(r.flags == R.START and r.aux == 0 for r in exp.records), where
        else:
            assert flags == [r.flags for r in exp.records], where
            assert aux == [r.aux for r in exp.records], where
        assert wake == exp.wake, where
        for r in exp.records:
            self.delivered(r.payload, r.flags, r.aux)
        return 0

    def delivered(self, payload: bytes, flags: int, aux: int) -> None:
        """The guarantee: a single mutation never gets a false record through.

        Undamaged, the reader delivers what was written, in order: payload,
        flags and aux.  After one mutation of a checksummed ring (its record
        headers included) it still does; a new consumer that attached after
        the damage may start elsewhere (it trusts the head it finds), but
        from there it too delivers written records in order.
        """
        d = self.damage
        if d.count > 1 or (d.count and not self.checksum) or d.forged:
            return
        where = f"seed {self.seed}"
        if self.next is None:  # a new consumer's first record: where did it start?
            if payload:
                starts = [
                    i
                    for i, (p, m) in enumerate(zip(self.sent, self.meta, strict=True))
                    if p == payload and m == (flags, aux)
                ]
                assert starts, f"{where}: delivered a record never written"
                self.next = starts[0] + 1
            return
        assert self.next < len(self.sent), f"{where}: delivered more than was written"
        assert payload == self.sent[self.next], (
            f"{where}: payload {self.next} is not what was written"
        )
        assert (flags, aux) == self.meta[self.next], (
            f"{where}: record {self.next} has flags/aux {(flags, aux)},"
            f" written {self.meta[self.next]}"
        )
        self.next += 1

    def available(self) -> None:
        before = bytes(self.region)
        try:
            exp: int | None = self.ref.available(self.region)
        except ref.RefError:
            exp = None
        try:
            got: int | None = self.cons.available()
        except CorruptMessage:
            got = None
        assert got == exp, f"seed {self.seed}: available() {got}, expected {exp}"
        self.check_writes(before, [], "available()")

    def prepare_wait(self) -> None:
        before = bytes(self.region)
        try:
            exp: bool | None = self.ref.prepare_wait(self.region)
        except ref.RefError:
            exp = None
        try:
            got: bool | None = self.cons.prepare_wait()
        except CorruptMessage:
            got = None
        assert got == exp, f"seed {self.seed}: prepare_wait() {got}, expected {exp}"
        self.check_writes(before, [CONSUMER_WAITING], "prepare_wait")

    def reattach(self) -> bool:
        """A new consumer takes over the damaged ring, as a restarted binder does."""
        resync = self.rnd.random() < 0.7
        try:
            exp = ref.RefConsumer(self.region, self.cap, resync)
            exp_err = 0
        except ref.RefError as exc:
            exp_err = exc.code
        try:
            cons = R.Consumer(self.region, self.cap, resync=resync)
            got_err = 0
        except CorruptMessage as exc:
            got_err = exc.code
        assert got_err == exp_err, f"seed {self.seed}: attach gave {got_err}, not {exp_err}"
        if got_err:
            return False
        self.cons.release()
        self.cons, self.ref, self.next = cons, exp, None
        return True

    def producer_at_work(self) -> None:
        """The producer facing a damaged consumer line: works or reports, never strays."""
        allowed = [
            range(rf.HEADER, len(self.region)),
            PRODUCER_LINE,
            CONSUMER_WAITING,
            PRODUCER_WAITING,
        ]
        for _ in range(self.rnd.randrange(1, 4)):
            before = bytes(self.region)
            op = self.rnd.randrange(5)
            size = self.rnd.randrange(self.maxp + 2)
            try:
                if op == 0:
                    self.prod.write(self.payload(size))
                elif op == 1:
                    self.prod.can_write(size)
                elif op == 2:
                    self.prod.prepare_wait(size)
                elif op == 3:
                    self.prod.prepare_drain()
                else:
                    self.write()
            except (CorruptMessage, MessageTooLarge):
                pass
            self.check_writes(before, allowed, "the producer")

    def producer_unread(self) -> None:
        """unread() against the rule: the head moves forward, at most to our tail."""
        self.prod.unread()  # the producer's view of the head is now the header's
        seen = rf.get(self.region, "head")
        tail = rf.get(self.region, "tail")
        self.mutate_consumer_line()
        head = rf.get(self.region, "head")
        ok = (head - seen) % M64 <= (tail - seen) % M64 and not head & 7
        try:
            got: int | None = self.prod.unread()
        except CorruptMessage:
            got = None
        assert got == ((tail - head) % M64 if ok else None), f"seed {self.seed}"

    def mutate_consumer_line(self) -> None:
        self.damage.count += 1
        name = self.rnd.choice(["head", "head", "head_seq", "bytes_read", "producer_waiting"])
        bits = 64 if rf.FIELDS[name][1] == "<Q" else 32
        rf.put(self.region, name, interesting(self.rnd, rf.get(self.region, name), bits, self.cap))

    def release(self) -> None:
        self.prod.release()
        self.cons.release()


VERDICTS = {0: "readable", ref.ENOBUFS: "buffer too small"}


def run_case(seed: int, outcomes: collections.Counter[str]) -> None:
    case = Case(seed)
    rnd = case.rnd
    try:
        case.history()
        if rnd.random() < 0.15:
            case.producer_unread()
            outcomes["producer unread"] += 1
            return
        for _ in range(1 if rnd.random() < 0.6 else rnd.randrange(2, 5)):
            case.damage.mutate()
        if rnd.random() < 0.25 and not case.reattach():
            outcomes["refused at attach"] += 1
            return
        for _ in range(rnd.randrange(1, 7)):
            step = rnd.randrange(6)
            if step < 4:
                case.read()
            elif step == 4:
                case.available()
            else:
                case.prepare_wait()
        verdict = case.read(1)  # what a read says now
        outcomes[VERDICTS.get(verdict, f"CorruptMessage {verdict}")] += 1
        if rnd.random() < 0.3:
            case.producer_at_work()
    finally:
        case.release()


def test_fuzzed_rings_match_the_protocol_and_never_deliver_false_data():
    outcomes: collections.Counter[str] = collections.Counter()
    for i in range(CASES):
        run_case(BASE_SEED * 10**7 + i, outcomes)
    assert sum(outcomes.values()) == CASES  # every case ran to a verdict
    # Every check of the reader fired somewhere, so no check is dead.
    codes = {
        f"CorruptMessage {c}"
        for c in (
            ref.EPOSITION,
            ref.EMAGIC,
            ref.EVERSION,
            ref.EFLAGS,
            ref.ELENGTH,
            ref.ESEQUENCE,
            ref.ECRC,
            ref.EPAD,
        )
    }
    assert codes <= set(outcomes), sorted(outcomes)
    assert {"readable", "refused at attach", "producer unread"} <= set(outcomes)


# ---------------------------------------------------------------- C driver


def test_c_fuzz_driver(tmp_path):
    """Many more hostile states at C speed (sanitized under tox -e asan)."""
    exe = cbuild.compile_c(tmp_path / "ring_fuzz", "ring_fuzz.c")
    out = subprocess.run(
        [str(exe), str(C_CASES), str(BASE_SEED + 1)],
        capture_output=True,
        text=True,
        timeout=600,
        env=cbuild.clean_env(),
    )
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(r"ok cases=(\d+) reads=(\d+) records=(\d+) errors=(\d+)\n", out.stdout)
    assert m, out.stdout
    cases, _reads, records, errors = map(int, m.groups())
    assert cases == C_CASES
    assert records > cases and errors > cases // 10  # both outcomes, plenty of each


# ---------------------------------------------------------------- live connections


def message(i: int, rnd: random.Random) -> bytes:
    return b"%d|" % i + rnd.randbytes(rnd.choice([0, 10, 300, 1500]))


def in_order_subsequence(got: list[bytes], sent: list[bytes]) -> bool:
    it = iter(sent)
    return all(any(m == s for s in it) for m in got)


def send_some(
    tx: shmsock.Socket, sent: list[bytes], rnd: random.Random, outcomes: collections.Counter[str]
) -> None:
    """Send a few messages now, as many as fit; record them in *sent*."""
    for _ in range(rnd.randrange(1, 8)):
        msg = message(len(sent), rnd)
        try:
            tx.send_nowait(msg)
        except trio.WouldBlock:
            return
        except trio.BrokenResourceError:
            # The damage was to the reader's own line (its position): the
            # sender closed that connection as broken, never raising
            # CorruptMessage (a PAIR then has no peer; a PUSH just waits).
            outcomes["sender dropped the peer"] += 1
            return
        sent.append(msg)


LIVE_CASES = 60
LIVE_DAMAGE = tuple(k for k in ALL_DAMAGE if not k.startswith("forged"))


async def test_corrupted_ring_under_a_live_connection():
    """Damage the ring a live Peer reads: correct data, loss, or a broken connection."""
    outcomes: collections.Counter[str] = collections.Counter()
    for i in range(LIVE_CASES):
        rnd = random.Random(BASE_SEED * 10**7 + 5 * 10**6 + i)
        binder_writes = i % 2 == 1  # the binder's ring, or a connector's
        kinds = (PAIR, PAIR) if binder_writes else (PULL, PUSH)
        name = f"shm://live{i}"
        async with (
            shmsock.socket(kinds[0], ring_size=4096) as binder,
            shmsock.socket(kinds[1], ring_size=4096) as connector,
        ):
            binder.bind(name)
            connector.connect(name)
            await wait_peers(binder, 1)
            await wait_peers(connector, 1)
            tx, rx = (binder, connector) if binder_writes else (connector, binder)
            peer = seam.connections(rx)[0]
            sent: list[bytes] = []
            got: list[bytes] = []
            send_some(tx, sent, rnd, outcomes)
            for _ in range(rnd.randrange(3)):
                try:
                    got.append(rx.recv_nowait())
                except trio.WouldBlock:
                    break
            damage = Damage(peer.rx_seg.ring, peer.rx.capacity, rnd)
            for _ in range(rnd.choice([1, 1, 1, 2, 3])):
                damage.mutate(LIVE_DAMAGE)
            send_some(tx, sent, rnd, outcomes)
            verdict = "read all"
            for _ in range(100):
                try:
                    got.append(rx.recv_nowait())
                except trio.WouldBlock:
                    break
                except (CorruptMessage, trio.BrokenResourceError) as exc:
                    verdict = type(exc).__name__
                    break
            if verdict == "CorruptMessage":
                assert not peer.alive and peer.corrupt >= 1, f"case {i}: not closed as broken"
            elif len(got) < len(sent):
                verdict = "lost"
            outcomes[verdict] += 1
            assert len(set(got)) == len(got), f"case {i}: a message delivered twice"
            assert in_order_subsequence(got, sent), f"case {i}: delivered what was not sent"
    assert outcomes["CorruptMessage"] and outcomes["read all"], outcomes


async def test_corrupted_ring_of_a_writer_process():
    """A PUSH in another process keeps sending while its ring is damaged again and again.

    Each round damages what the reader checks (records, payloads, the
    tail, the data area).  The reader delivers only messages the writer
    sent, in order and once each; a damaged ring closes the connection as
    broken, and the writer reconnects with a fresh ring by itself.
    """
    rounds = 12
    rnd = random.Random(BASE_SEED * 10**7 + 6 * 10**6)
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://fuzzx")
        with spawn(fuzzpeers.push_forever, "shm://fuzzx", 4096) as child:
            await child.expect("ready")
            last = -1
            corrupt = flips = 0
            for r in range(rounds):
                await wait_peers(pull, 1)
                # The last round's broken connection may not be retired yet.
                peer = next(p for p in seam.connections(pull) if p.alive)
                # Damage the connection once the writer uses it (it has
                # attached at its end too), unless an earlier round's damage
                # is still there to be found.
                with trio.fail_after(10):
                    try:
                        while not peer.rx.available():  # noqa: ASYNC110 - shared memory
                            await trio.sleep(0.001)
                        damaged = False
                    except CorruptMessage:
                        damaged = True
                damage = Damage(peer.rx_seg.ring, peer.rx.capacity, rnd)
                flipped = False
                if damaged:
                    pass
                elif r % 2:
                    damage.mutate(("record", "record", "payload", "tail", "data span", "garbage"))
                else:
                    # False when an earlier round's damage lies between head
                    # and the writer's records (30 messages a round need not
                    # reach it): the reader finds that, or, for a damaged
                    # tail, the writer's next publish repairs it.
                    flipped = damage.flip_unread_payload()
                flips += flipped
                # An unread record the writer cannot overwrite is read up to:
                # the ring holds a few dozen messages, far below the cap.
                # Other damage may be overwritten or repaired unread.
                must_find = flipped
                found = False
                with trio.fail_after(10):
                    for _ in range(2000 if must_find else 30):
                        try:
                            msg = await pull.recv()
                        except CorruptMessage:
                            corrupt += 1
                            found = True
                            assert not peer.alive
                            break
                        i = fuzzpeers.check(msg)  # raises if the content is not what was sent
                        assert i > last, f"message {i} after {last}"
                        last = i
                assert found or not must_find, f"round {r}: a flipped payload was delivered"
            assert flips >= rounds // 6, "too few rounds damaged a record"
            assert corrupt >= flips
            assert last > rounds * 10
            child.send("stop")
            assert await child.join() == 0
