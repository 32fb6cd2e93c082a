"""A writer SIGKILLed at any point of a write (issue #6, case 1).

A killed writer leaves its ring as it was at the instant it died: the
state before the write it was in, plus a prefix of that write's stores
(see crashforge.py).  The first test enumerates every such state, byte by
byte, for single records, batches of messages, multipart messages,
fragmented messages and records that wrap with padding or a gap, and reads
each one with the transport's own message assembly: the reader delivers
exactly the messages whose every record was published, drops an incomplete
one, and never reports corruption (a crash is not corruption).

The socket tests then stop a real writer process at each named point: the
ring is forged into the state the crash leaves under a live connection,
then the writer process is SIGKILLed.  The reader delivers what was
complete, drops the rest, notices the death through the doorbell without
hanging, and the dead writer's files and slot are reclaimed.
"""

from __future__ import annotations

import collections
import os
import random
from array import array

import pytest
import trio
from helpers import crashforge as cf
from helpers import peers, seam
from helpers import ringforge as rf
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, PULL, PUSH
from shmsock import _ring as R
from shmsock._options import Options
from shmsock._transport import Message
from shmsock._transport.shm._assembly import Assembler

M64 = 1 << 64
SCENARIOS = 100

# ---------------------------------------------------------------- ring level


def _unspared(userdir) -> list[str]:
    """The files under the user directory, less a binder's spare ring."""
    return sorted(n for n in os.listdir(userdir) if "@spare." not in n)


def frames_of(item: bytes | Message) -> list[bytes]:
    return [item] if isinstance(item, bytes) else item.frames


class Reader:
    """The receiving end of one connection: a consumer and the transport's assembler."""

    def __init__(self, region: bytearray, cap: int, buf: R.ReadBuffer) -> None:
        self.cons = R.Consumer(region, cap)
        self.buf = buf
        self.asm = Assembler(max_msg=1 << 30)

    def adopt(self, other: Reader) -> None:
        """Continue from *other*'s message assembly (our consumer starts where that one stopped)."""
        p, q = self.asm, other.asm
        p.partial = None if q.partial is None else list(q.partial)
        p.frame = list(q.frame)
        p.partial_aux, p.partial_size, p.skipping = q.partial_aux, q.partial_size, q.skipping
        p.dropped = q.dropped

    def drain(self) -> list[list[bytes]]:
        """Every complete message readable now."""
        for _ in range(10_000):
            payloads, flags, aux, _wake = self.cons.read(self.buf)
            if not payloads:
                break
            self.asm.add(payloads, flags, aux)
        else:
            raise AssertionError("the reader never ran out of records")
        out = [frames_of(item) for item in self.asm.inbox]
        self.asm.inbox.clear()
        return out


Batches = list[list[cf.Record]]


class Scenario:
    """An honest writer and a reader that lags at random, on one ring."""

    def __init__(self, seed: int) -> None:
        self.rnd = rnd = random.Random(seed)
        self.cap = cap = rnd.choice([256, 512, 1024])
        self.maxp = cap // 2 - rf.REC
        self.fragment = cap // 4 - rf.REC  # what a sender with this ring uses
        self.buf = R.ReadBuffer(cap, rnd.choice([1, 3, 64]))
        self.region = bytearray(R.region_size(cap))
        R.init_ring(
            self.region,
            cap,
            (M64 - 8 * rnd.randrange(4 * cap)) % M64,
            (M64 - rnd.randrange(50)) % M64,
        )
        self.reader = Reader(self.region, cap, self.buf)
        self.sent: list[list[bytes]] = []
        self.delivered: list[list[bytes]] = []
        self.counter = 0

    def payload(self, size: int) -> bytes:
        self.counter += 1
        return (self.counter.to_bytes(4, "little") * (size // 4 + 1))[:size]

    def message(self) -> tuple[str, list[list[bytes]], Batches]:
        """A random message, or batch of messages, as a sender writes it."""
        rnd, frag = self.rnd, self.fragment
        kind = rnd.choice(["plain", "batch", "multipart", "fragmented", "streamed-multipart"])
        if kind == "plain":
            frames = [self.payload(rnd.randrange(self.maxp // 2))]
            return kind, [frames], cf.encode(frames, fragment=None)
        if kind == "batch":  # send_many: several one-frame messages in one write
            msgs = [self.payload(rnd.randrange(self.maxp // 8)) for _ in range(rnd.randrange(2, 5))]
            return kind, [[m] for m in msgs], [[(m, rf.START) for m in msgs]]
        if kind == "multipart":  # every frame fits: one write
            frames = [
                self.payload(rnd.randrange(self.maxp // 6)) for _ in range(rnd.randrange(2, 5))
            ]
            return kind, [frames], cf.encode(frames, fragment=None)
        if kind == "fragmented":  # a frame larger than a record: one write per fragment
            frames = [self.payload(rnd.randrange(frag + 1, 3 * frag + 2))]
            return kind, [frames], cf.encode(frames, fragment=frag)
        sizes = [0, frag // 2, frag, 2 * frag + 3]
        frames = [self.payload(rnd.choice(sizes)) for _ in range(rnd.randrange(2, 4))]
        return kind, [frames], cf.encode(frames, fragment=frag)

    def room_for(self, batch: list[cf.Record]) -> bool:
        prod = R.Producer(bytearray(self.region), self.cap)
        try:
            return prod.write_records(
                b"".join(p for p, _ in batch),
                array("I", [len(p) for p, _ in batch]),
                bytes(f for _, f in batch),
                0,
                atomic=True,
            )[0] == len(batch)
        finally:
            prod.release()

    def make_room(self, batch: list[cf.Record]) -> None:
        """Wait, as a sender does, until the reader has made room for *batch*."""
        if not self.room_for(batch):
            self.read()
            assert self.room_for(batch)

    def write(self, msgs: list[list[bytes]], batches: Batches) -> None:
        for batch in batches:
            self.make_room(batch)
            cf.apply(self.region, cf.plan(self.region, self.cap, batch))
            if self.rnd.random() < 0.3:
                self.read()
        self.sent += msgs

    def read(self) -> None:
        self.delivered += self.reader.drain()
        if self.rnd.random() < 0.5:
            # The reader goes to sleep: the writer's next publish must wake it.
            self.reader.cons.prepare_wait()

    def move_tail_to(self, target: int) -> None:
        """Write plain messages until the next record goes at offset *target*.

        No record ends at offsets 8 or 16 (one would have to start before
        0), so those targets become 24.
        """
        if 0 < target < rf.REC:
            target = rf.REC
        for _ in range(8):
            off = rf.get(self.region, "tail") % self.cap
            if off == target:
                return
            step = (target - off) % self.cap
            if step < rf.REC or step > min(self.cap - off, self.cap // 2):
                step = max(min(self.cap - off, self.cap // 2), rf.REC)  # get closer first
            frames = [self.payload(step - rf.REC)]
            self.write([frames], cf.encode(frames, fragment=None))
        raise AssertionError(f"could not move the tail to {target}")


def message_ends(batches: Batches) -> list[tuple[int, int]]:
    """(first batch, last batch) of each message in *batches*."""
    out = []
    first = None
    for b, batch in enumerate(batches):
        for _payload, flags in batch:
            if flags & rf.START:
                first = b
            if not flags & (rf.MORE | rf.CONT):
                assert first is not None
                out.append((first, b))
    return out


def labels(
    kind: str, b: int, whole: list[cf.Store], pieces: list[cf.Store], tail_off: int
) -> set[str]:
    """Names for a crash point, to show that every kind the issue lists is covered."""
    out = {kind}
    nxt = whole[len(pieces)].what if len(pieces) < len(whole) else "done"
    done_whats = collections.Counter(p.what for p in pieces)
    if nxt == "header" and whole[len(pieces) - 1].what == "header":
        out.add("header partly written")
    if nxt == "payload" and done_whats["payload"]:
        out.add("payload partly copied")
    if nxt == "tail":
        out.add("records written, tail not published")
    if done_whats["pad"] and not cf.published(pieces):
        out.add("padding written, not published")
    first_header = next(s.offset - rf.HEADER for s in whole if s.what == "header")
    if first_header < tail_off and "pad" not in {s.what for s in whole} and pieces:
        out.add("record wraps over a gap too small for padding")
    if cf.published(pieces) and nxt != "done":
        out.add("published, killed before the statistics or the wake-up")
    if b > 0 and not cf.published(pieces):
        if kind == "streamed-multipart":
            out.add("multipart, some frames published")
        if kind in ("fragmented", "streamed-multipart"):
            out.add("fragmented, some fragments published")
    return out


def test_every_crash_point_of_a_write_delivers_only_complete_messages():
    points = 0
    seen: collections.Counter[str] = collections.Counter()
    for seed in range(SCENARIOS):
        sc = Scenario(seed)
        for _ in range(sc.rnd.randrange(4)):
            sc.write(*sc.message()[1:])
        cap = sc.cap
        sc.move_tail_to(
            sc.rnd.choice(
                [
                    cap - 8,
                    cap - 16,
                    cap - 24,
                    cap - 8 * sc.rnd.randrange(4, 12),
                    0,
                    8 * sc.rnd.randrange(cap // 8),
                ]
            )
        )
        kind, msgs, batches = sc.message()
        ends = message_ends(batches)
        assert len(ends) == len(msgs)
        for b, batch in enumerate(batches):
            sc.make_room(batch)
            tail_off = rf.get(sc.region, "tail") % cap
            whole = cf.units(cf.plan(sc.region, cap, batch))
            for k in range(len(whole) + 1):
                pieces = whole[:k]
                region = bytearray(sc.region)
                cf.apply(region, pieces)
                # The writer is dead: what can the reader get out of it?
                reader = Reader(region, cap, sc.buf)
                reader.adopt(sc.reader)
                got = reader.drain()
                reader.asm.abandon()  # the doorbell's end-of-file
                n_pub = b + cf.published(pieces)  # batches published
                complete = [m for m, (_f, last) in zip(msgs, ends, strict=True) if last < n_pub]
                partial = sum(first < n_pub <= last for first, last in ends)
                where = f"seed {seed} ({kind}) batch {b} crash after {k}/{len(whole)} stores"
                assert sc.delivered + got == sc.sent + complete, where
                assert reader.asm.dropped == sc.reader.asm.dropped + partial, where
                # Everything published was read; nothing beyond it.
                assert rf.get(region, "head") == rf.get(region, "tail"), where
                reader.cons.release()
                points += 1
                seen.update(labels(kind, b, whole, pieces, tail_off))
            cf.apply(sc.region, whole)  # this time the writer lives on
            if sc.rnd.random() < 0.3:
                sc.read()
        sc.reader.cons.release()
    named = [
        "header partly written",
        "payload partly copied",
        "records written, tail not published",
        "padding written, not published",
        "record wraps over a gap too small for padding",
        "published, killed before the statistics or the wake-up",
        "multipart, some frames published",
        "fragmented, some fragments published",
        "plain",
        "batch",
        "multipart",
    ]
    missing = [name for name in named if seen[name] < 10]
    assert not missing, f"crash points not exercised: {missing} ({dict(seen)})"
    assert points > 10_000


# ---------------------------------------------------------------- socket level


def crash_stores(region: memoryview, cap: int, point: str) -> tuple[list[bytes], int, int]:
    """Forge *point* into the live ring *region*: the writer is killed there.

    Returns the message it was writing, 1 if the reader must deliver it
    (else 0), and 1 if the reader must drop part of it (else 0).
    """
    maxp = cap // 2 - rf.REC
    fragment = cap // 4 - rf.REC
    wait_for_space = False
    if point == "padding written, not published":
        contig = cap - rf.get(region, "tail") % cap
        assert rf.REC <= contig <= maxp, "the messages before must fill half the ring"
        frames = [os.urandom(contig)]  # its record is longer than what is left: it wraps
    elif point == "multipart, some frames published":
        frames = [b"head", os.urandom(cap // 2 + 1000), b"end"]  # streamed
    elif point == "fragmented, some fragments published":
        frames = [os.urandom(2 * fragment + 5)]
        wait_for_space = True  # it was waiting for room for the next fragment
    else:
        frames = [os.urandom(300)]
    streamed = len(frames) > 1 or len(frames[0]) > maxp
    batches = cf.encode(frames, fragment=fragment if streamed else None)
    first_unpublished = 2 if streamed else 0
    for batch in batches[:first_unpublished]:
        cf.apply(region, cf.plan(region, cap, batch))
    whole = cf.units(cf.plan(region, cap, batches[first_unpublished]))
    k = {
        "header partly written": cf.index_of(whole, "header") + 10,
        "payload partly copied": cf.index_of(whole, "payload") + 150,
        "record written, tail not published": cf.index_of(whole, "tail"),
        "padding written, not published": cf.index_of(whole, "header") + 3,
        "published, killed before the statistics and the wake-up": cf.index_of(whole, "tail") + 1,
        "multipart, some frames published": cf.index_of(whole, "payload") + 7,
        "fragmented, some fragments published": 0,
    }[point]
    cf.apply(region, whole[:k])
    if wait_for_space:
        rf.put(region, "producer_waiting", 1)
    delivered = int(cf.published(whole[:k]))
    assert not (streamed and delivered)
    return frames, delivered, int(streamed)


POINTS = [
    "header partly written",
    "payload partly copied",
    "record written, tail not published",
    "padding written, not published",
    "published, killed before the statistics and the wake-up",
    "multipart, some frames published",
    "fragmented, some fragments published",
]
# The writer's messages before the crash: the reader reads the fourteen
# large ones first (7/8 of the default ring between them, each as large as
# a frame written into the ring itself gets), so the crash's records fit
# behind the two small ones and wrap around the end of the ring.
_LARGE = 64 * 1024
READ_FIRST = Options().ring_size * 7 // 8 // _LARGE
BEFORE = [[os.urandom(_LARGE)] for _ in range(READ_FIRST)] + [[b"m2"], [b"m3"]]


async def read_until_gone(sock: shmsock.Socket, count: int) -> list[list[bytes]]:
    """What *sock* receives from a dead writer, up to the sign that it is gone."""
    got: list[list[bytes]] = []
    with trio.fail_after(10):  # a hang fails the test
        if sock.type == PAIR:
            with pytest.raises(trio.BrokenResourceError):
                while True:
                    got.append(await sock.recv_multipart())
        else:
            while len(got) < count:
                got.append(await sock.recv_multipart())
            while sock.peer_count:  # noqa: ASYNC110 - the doorbell's end-of-file
                await trio.sleep(0.001)
            with pytest.raises(trio.WouldBlock):
                sock.recv_nowait()
    return got


@pytest.mark.parametrize(
    ("reader", "point"),
    [(PAIR, p) for p in POINTS] + [(PULL, "fragmented, some fragments published")],
    ids=lambda v: v.name if isinstance(v, shmsock.SocketType) else v.replace(" ", "-"),
)
async def test_connector_killed_mid_write(userdir, reader, point):
    name = "crash"
    async with shmsock.socket(reader) as rd:
        rd.bind(f"shm://{name}")
        if reader == PAIR:
            before, read_first = BEFORE, READ_FIRST
            child = spawn(peers.pair_send_then_wait, f"shm://{name}", False, [m[0] for m in before])
        else:
            before, read_first = [[b"m:%d" % i] for i in range(3)], 0
            child = spawn(peers.push_numbers, f"shm://{name}", False, 0, 3, "m")
        try:
            await child.expect("ready")
            await child.expect("sent")
            await wait_peers(rd, 1)
            peer = seam.connections(rd)[0]
            for msg in before[:read_first]:
                assert await rd.recv_multipart() == msg
            before = before[read_first:]  # complete, still unread when the writer dies
            frames, delivered, dropped = crash_stores(peer.rx_seg.ring, peer.rx.capacity, point)
            child.kill()
            expect = before + [frames] * delivered
            assert await read_until_gone(rd, len(expect)) == expect
            assert peer.dropped == dropped
            assert peer.corrupt == 0
        finally:
            child.close()
        # The dead connector's slot and ring are reclaimed...
        assert _unspared(userdir) == [f"{name}@lock", f"{name}@sock"]
        # ...and the next connector takes the slot.
        async with shmsock.socket(PUSH if reader == PULL else PAIR) as again:
            again.connect(f"shm://{name}")
            assert seam.slots(again)[0].index == 0
            await again.send(b"after")
            with trio.fail_after(10):
                assert await rd.recv() == b"after"


@pytest.mark.parametrize(
    "point",
    ["multipart, some frames published"],
    ids=lambda v: v.replace(" ", "-"),
)
async def test_binder_killed_mid_write(userdir, point):
    name = "bcrash"
    with spawn(peers.pair_send_then_wait, f"shm://{name}", True, [m[0] for m in BEFORE]) as child:
        await child.expect("ready")
        async with shmsock.socket(PAIR) as rd:
            rd.connect(f"shm://{name}")
            await child.expect("sent")
            await wait_peers(rd, 1)
            peer = seam.connections(rd)[0]
            for msg in BEFORE[:READ_FIRST]:
                assert await rd.recv_multipart() == msg
            frames, delivered, dropped = crash_stores(peer.rx_seg.ring, peer.rx.capacity, point)
            child.kill()
            assert await read_until_gone(rd, 0) == BEFORE[READ_FIRST:] + [frames] * delivered
            assert peer.dropped == dropped
            # The dead binder's ring is gone; its lock and socket stay for
            # the next binder to take over.
            assert _unspared(userdir) == [
                f"{name}@0.c",
                f"{name}@0.lock",
                f"{name}@lock",
                f"{name}@sock",
            ]
            async with shmsock.socket(PAIR) as binder:
                binder.bind(f"shm://{name}")
                with trio.fail_after(10):
                    await wait_peers(rd, 1)  # it re-attaches by itself
                    await binder.send(b"after")
                    assert await rd.recv() == b"after"
                    await rd.send(b"back")
                    assert await binder.recv() == b"back"
