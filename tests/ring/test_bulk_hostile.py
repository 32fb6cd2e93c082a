"""Hostile bulk descriptors and regions: only the library's corruption error.

The reader of a bulk region (csrc/shmbulk.c) must judge every descriptor
exactly as docs/protocol.md says, which the reference reader in
bulkref.py implements independently: same verdict, same extent.  Random
cases build an honest history (extents of every size, leases released out
of order, regions replaced by larger ones, checksums on and off), then
forge descriptors: out of bounds, overlapping what the reader holds, out
of order, of another region, with stray flags, and frames whose bytes no
longer match their checksum.  Whatever the forgery, the reader accepts
only an extent that lies inside its region and under nothing it holds,
and everything else is CorruptMessage.  The writer, facing a forged
``bulk_released``, works or raises CorruptMessage, and writes nothing but
its region's data area and its own words.

Cases are seeded; a failure names its seed (SHMSOCK_FUZZ_SEED and
SHMSOCK_BULK_CASES run others, or more).  The C driver tests/c/bulk_fuzz.c
(SHMSOCK_BULK_C_CASES)
runs many more under the sanitizers of ``tox -e asan``.
"""

from __future__ import annotations

import mmap
import os
import random
import socket
import subprocess
from array import array

import crc32c
import pytest
from helpers import bulkref as ref
from helpers import cbuild
from helpers import ringforge as rf

from shmsock import CorruptMessage, MessageTooLarge
from shmsock import _bulkring as B
from shmsock import _ring as R
from shmsock._ringcore import read_stats
from shmsock._transport.shm import _bulk, _region, _wire

M64 = 1 << 64
CASES = int(os.environ.get("SHMSOCK_BULK_CASES", "3000"))
BASE_SEED = int(os.environ.get("SHMSOCK_FUZZ_SEED", "0"))
C_CASES = int(os.environ.get("SHMSOCK_BULK_C_CASES", "20000"))
RING_CAP = 4096
CONSUMER_LINE = range(128, 192)
BULK_WAITING = range(200, 204)
WRITER_WORDS = [range(64, 128), range(200, 204), range(208, 216)]


def ring(start: int) -> tuple[bytearray, R.Producer, R.Consumer]:
    region = bytearray(R.region_size(RING_CAP))
    R.init_ring(region, RING_CAP, start)
    return region, R.Producer(region, RING_CAP), R.Consumer(region, RING_CAP)


def new_region(capacity: int, gen: int) -> mmap.mmap:
    mm = mmap.mmap(-1, B.region_size(capacity))
    B.init_region(mm, capacity, gen, 1)
    return mm


def writes_only(before: bytes, after: bytes | bytearray, allowed: list[range]) -> int | None:
    """The first offset changed outside *allowed*, or None."""
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        if a != b and not any(i in r for r in allowed):
            return i
    return None


class Scene:
    """A ring, a writer and a reader (C and reference), with an honest history."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rnd = rnd = random.Random(seed)
        start = rnd.choice([0, M64 - 64 * rnd.randrange(1, 200), 64 * rnd.randrange(1000)])
        self.ring, self.prod, self.cons = ring(start)
        self.gen = 0
        self.cap = 0
        self.regions: dict[int, mmap.mmap] = {}
        self.writer: B.BulkWriter | None = None
        self.writers: list[B.BulkWriter] = []
        self.reader: B.BulkReader | None = None
        self.model: ref.RefReader | None = None
        self.resync = rnd.random() < 0.2
        self.held: list[tuple[int, int, int]] = []  # (pos, end, length) accepted, not released
        self.order: list[int] = []  # ends of accepted extents, in order
        self.done: set[int] = set()
        self.sent: dict[int, bytes] = {}  # pos -> frame, for honest descriptors
        self.grow()

    def where(self) -> str:
        return f"seed {self.seed}"

    # -- the writer -----------------------------------------------------------------

    def grow(self) -> None:
        self.cap = self.rnd.choice([4096, 8192, 65536]) if not self.cap else self.cap * 2
        self.gen += 1
        mm = self.regions[self.gen] = new_region(self.cap, self.gen)
        self.writer = B.BulkWriter(self.prod, mm, self.cap, self.writer)
        self.writers.append(self.writer)

    def put(self) -> bytes | None:
        """An honest extent; its descriptor, or None when the region is full."""
        w = self.writer
        assert w is not None
        size = self.rnd.choice([1, 63, 64, 65, w.max_extent, self.rnd.randrange(1, w.max_extent)])
        frame = self.rnd.randbytes(size)
        desc = w.put(frame, self.rnd.random() < 0.8)
        if desc is not None:
            self.sent[ref.unpack(desc)[0]] = frame
        return desc

    # -- the reader -----------------------------------------------------------------

    def switch(self, gen: int) -> None:
        mm = self.regions[gen]
        cap, g = B.check_region(bytes(mm[:64]), len(mm), B.MAX_CAPACITY)
        self.reader = B.BulkReader(self.cons, cap, g, self.reader, resync=self.resync)
        released = rf.get(self.ring, "bulk_released")
        self.model = ref.RefReader(cap, g, released, prev=self.model, resync=self.resync)

    def accept(self, desc: bytes) -> ref.Extent | None:
        """Both readers judge *desc*; they must agree.  The extent, if accepted."""
        gen = ref.unpack(desc)[3]
        if self.reader is None:
            if gen not in self.regions:
                return None  # (BulkIn refuses a first region never passed)
            self.switch(gen)
        assert self.reader is not None and self.model is not None
        before = bytes(self.ring)
        want, extent = self.model.accept(desc)
        code, got = self.c_accept(desc)
        assert code == want, f"{self.where()}: C says {code}, the protocol {want} for {desc!r}"
        if want == ref.ENEWREGION:
            assert self.reader.want_gen == gen, self.where()
            if gen not in self.regions:
                return None  # (BulkIn: a region never passed is corruption)
            self.switch(gen)
            want, extent = self.model.accept(desc)
            code, got = self.c_accept(desc)
            assert code == want, f"{self.where()}: C says {code}, the protocol {want}"
        where = writes_only(before, self.ring, [range(160, 176)])
        assert where is None, f"{self.where()}: accept wrote ring byte {where}"
        if extent is None:
            return None
        r = self.reader
        assert got is not None
        assert (got.offset, got.length, got.end) == (
            extent.offset,
            extent.length,
            self.model.expect,
        )
        assert (got.crc, got.checked) == (extent.crc, extent.checked)
        self.last = got
        # The one guarantee for any descriptor: inside the region, under nothing held.
        assert extent.offset >= ref.HEADER
        assert extent.offset + extent.length <= ref.HEADER + r.capacity
        for pos, _end, length in self.held:
            if (pos - extent.pos) % M64 < extent.length or (extent.pos - pos) % M64 < length:
                raise AssertionError(f"{self.where()}: accepted an extent over a held one")
        self.held.append((extent.pos, got.end, extent.length))
        self.order.append(got.end)
        return extent

    def c_accept(self, desc: bytes) -> tuple[int, B.Extent | None]:
        assert self.reader is not None
        try:
            got = self.reader.accept(desc)
        except CorruptMessage as exc:
            return exc.code, None
        return (ref.OK, got) if got is not None else (ref.ENEWREGION, None)

    def release(self, i: int) -> None:
        """Release held extent *i*: publish the prefix, as _bulk.BulkIn does."""
        _pos, end, _len = self.held.pop(i)
        self.done.add(end)
        upto = None
        while self.order and self.order[0] in self.done:
            upto = self.order.pop(0)
            self.done.discard(upto)
        if upto is not None:
            assert self.reader is not None and self.model is not None
            self.reader.release(upto)
            self.model.release(upto)
            assert rf.get(self.ring, "bulk_released") == upto, self.where()

    def publish_and_take(self, desc: bytes, *, lease: bool) -> None:
        """Send *desc* through the ring as a DESC record, read it, accept it."""
        n, _ = self.prod.write_records(
            desc, array("I", [len(desc)]), bytes([R.START | R.DESC]), 0, atomic=True
        )
        assert n == 1
        payloads, flags, _aux, _wake = self.cons.read(R.ReadBuffer(RING_CAP))
        assert flags == [R.START | R.DESC] and payloads == [desc], self.where()
        extent = self.accept(payloads[0])
        assert extent is not None, f"{self.where()}: an honest descriptor was refused"
        mm = self.regions[ref.unpack(desc)[3]]
        data = mm[extent.offset : extent.offset + extent.length]
        assert data == self.sent[extent.pos], self.where()
        B.verify(data, self.last)
        if not lease:
            self.release(len(self.held) - 1)

    def history(self) -> None:
        for _ in range(self.rnd.randrange(1, 25)):
            step = self.rnd.randrange(10)
            if step < 6:
                desc = self.put()
                if desc is not None:
                    self.publish_and_take(desc, lease=self.rnd.random() < 0.3)
            elif step < 8 and self.held:
                self.release(self.rnd.randrange(len(self.held)))
            elif step == 8 and self.gen < 4:
                self.grow()
            else:
                assert self.writer is not None
                self.writer.prepare_wait(self.rnd.randrange(1, self.writer.max_extent + 1))

    # -- forgeries --------------------------------------------------------------------

    def forged(self) -> bytes:
        """A descriptor a buggy or hostile writer could publish."""
        rnd = self.rnd
        w = self.writer
        assert w is not None
        cap = w.capacity
        pos = w.tail
        if self.model is not None:
            pos = self.model.expect
        kind = rnd.randrange(9)
        length = rnd.choice([1, 64, cap // 2, cap // 2 + 1, cap, 0, rnd.randrange(1, cap)])
        gen = self.gen
        flags, crc, reserved = 0, 0, 0
        if kind == 0:  # out of bounds
            pos += rnd.choice([cap - 64, cap // 2 + 64, -64])
        elif kind == 1 and self.held:  # over an extent the reader holds
            hp, _end, hl = rnd.choice(self.held)
            pos = hp + 64 * rnd.randrange(max(1, hl // 64))
        elif kind == 2:  # out of order: behind or ahead
            pos += rnd.choice([-64, 64, 128, -cap, cap, M64 // 2])
        elif kind == 3:  # another region
            gen = rnd.choice([gen - 1, gen + 1, gen + 5, 0, 0xFFFFFFFF])
        elif kind == 4:  # stray fields
            flags, crc, reserved = rnd.choice([(2, 0, 0), (0, 5, 0), (1, 0, 9), (0x80000000, 0, 0)])
        elif kind == 5:
            pos += rnd.randrange(1, 64)  # misaligned
        elif kind == 6:  # any bits at all
            return rnd.randbytes(B.DESC_SIZE)
        elif kind == 7 and self.order:  # an extent already accepted, again
            pos = self.held[0][0] if self.held else pos - 64
        return ref.pack(pos, length, crc, gen % (1 << 32), flags, reserved)


def run_case(seed: int) -> str:
    scene = Scene(seed)
    scene.history()
    rnd = scene.rnd
    verdicts = []
    for _ in range(rnd.randrange(1, 6)):
        extent = scene.accept(scene.forged())
        verdicts.append("accepted" if extent else "refused")
        if extent is not None and rnd.random() < 0.5:
            scene.release(len(scene.held) - 1)
    return verdicts[-1]


def test_forged_descriptors_match_the_protocol_and_never_reach_held_memory():
    seen = {"accepted": 0, "refused": 0}
    for i in range(CASES):
        seen[run_case(BASE_SEED * 10**7 + i)] += 1
    # Both verdicts happen, so neither check is dead.
    assert seen["accepted"] > CASES // 50 and seen["refused"] > CASES // 2, seen


@pytest.mark.parametrize("seed", range(200))
def test_a_writer_facing_a_forged_released_position_works_or_reports(seed):
    scene = Scene(seed)
    scene.history()
    rnd = scene.rnd
    w = scene.writer
    assert w is not None
    old = w.released  # the writer's last look
    new = rnd.choice([old + 64, old - 64, w.tail, w.tail + 64, 0, M64 - 1, rnd.getrandbits(64)])
    rf.put(scene.ring, "bulk_released", new)
    rf.put(scene.ring, "bulk_want", rnd.getrandbits(64))
    legal = (new - old) % M64 <= (w.tail - old) % M64
    mm = scene.regions[scene.gen]
    before_ring, before_head = bytes(scene.ring), bytes(mm[: B.HEADER_SIZE])
    codes = {}
    for op in ("unreleased", "prepare_wait", "put", "alloc"):
        size = rnd.randrange(1, w.max_extent + 1)
        try:
            if op == "put":
                w.put(b"x" * size, True)
            elif op == "prepare_wait":
                w.prepare_wait(size)
            elif op == "unreleased":
                w.unreleased()
            else:
                w.alloc(size)
        except CorruptMessage as exc:
            codes[op] = exc.code
    # An impossible position is refused whenever the writer looks (put and
    # alloc look only when their cached view has no room), and never taken.
    if legal:
        assert codes == {}, f"seed {seed}: {codes}"
    else:
        assert codes.keys() >= {"prepare_wait", "unreleased"}, f"seed {seed}: {codes}"
        assert set(codes.values()) == {R.EPOSITION}, f"seed {seed}: {codes}"
    # Whatever it took, its view stayed possible: forward, and not past its tail.
    assert (w.released - old) % M64 <= (w.tail - old) % M64, f"seed {seed}"
    assert writes_only(before_ring, scene.ring, WRITER_WORDS) is None, f"seed {seed}"
    assert bytes(mm[: B.HEADER_SIZE]) == before_head, f"seed {seed}: the region header changed"


# ------------------------------------------------------- through the transport's BulkIn


class Pair:
    """A BulkOut and a BulkIn over a ring, with a real doorbell between them."""

    def __init__(self, limit: int = 64 << 20, checksum: bool = True) -> None:
        self.region_, self.prod, self.cons = ring(0)
        self.a, self.b = socket.socketpair()
        self.b.setblocking(False)
        self.checksum = checksum
        self.out = _bulk.BulkOut(self.prod, lambda fd: _region.send_fds(self.a, _wire.REGION, [fd]))
        self.inn = _bulk.BulkIn(self.cons, limit)
        self.inn.fetch = self.fetch

    def fetch(self) -> None:
        while True:
            try:
                data, fds = _region.recv_with_fds(self.b, 4096)
            except BlockingIOError:
                return
            self.inn.add(fds)
            if not data:
                return

    def send(self, frame: bytes) -> bytes:
        desc = self.out.put(frame, self.checksum)
        assert desc is not None
        return desc

    def close(self) -> None:
        self.out.close()
        self.inn.close()
        self.a.close()
        self.b.close()


def test_a_frame_whose_bytes_changed_is_corruption_and_the_next_is_still_read():
    pair = Pair()
    try:
        desc = pair.send(b"a" * 100_000)
        region = pair.out.region
        assert region is not None
        start = B.HEADER_SIZE + (ref.unpack(desc)[0] % region.capacity)
        region.mm[start + 5000] ^= 1
        with pytest.raises(CorruptMessage) as err:
            pair.inn.take(desc)
        assert err.value.code == R.lib.SHM_EBULKCRC
        # The same through a lease: checked when it is made.
        desc = pair.send(b"b" * 100_000)
        start = B.HEADER_SIZE + (ref.unpack(desc)[0] % region.capacity)
        region.mm[start] ^= 0x40
        with pytest.raises(CorruptMessage, match="CRC32C"):
            pair.inn.lease(desc)
        assert pair.inn.take(pair.send(b"c" * 70_000)) == b"c" * 70_000
    finally:
        pair.close()


@pytest.mark.parametrize("flip_at", [0, 1 << 20, (3 << 20) + 4])
def test_a_streamed_frame_whose_bytes_changed_is_corruption(flip_at):
    # Frames above 2 MiB are copied out with non-temporal stores, their
    # checksum taken in the same pass: a byte changed anywhere in the
    # region, in the streamed part or in the tail after it, is caught on
    # the private copy; an unchanged one arrives whole.
    pair = Pair()
    try:
        size = (3 << 20) + 5
        frame = os.urandom(size)
        desc = pair.send(frame)
        region = pair.out.region
        assert region is not None
        start = B.HEADER_SIZE + (ref.unpack(desc)[0] % region.capacity)
        region.mm[start + flip_at] ^= 0x10
        with pytest.raises(CorruptMessage) as err:
            pair.inn.take(desc)
        assert err.value.code == R.lib.SHM_EBULKCRC
        assert pair.inn.take(pair.send(frame)) == frame
    finally:
        pair.close()


@pytest.mark.parametrize(
    "forge",
    [
        lambda pos, n, crc, gen: ref.pack(pos + 64, n, crc, gen, 1),  # out of order
        lambda pos, n, crc, gen: ref.pack(pos, 1 << 40, crc, gen, 1),  # out of bounds
        lambda pos, n, crc, gen: ref.pack(pos, n, crc, gen + 1, 1),  # a region never sent
        lambda pos, n, crc, gen: ref.pack(pos, n, crc, gen - 1, 1),  # an older region
        lambda pos, n, crc, gen: ref.pack(pos, n, 0, gen, 0) + b"x",  # wrong size
        lambda pos, n, crc, gen: ref.pack(pos, n, crc ^ 1, gen, 1),  # wrong checksum
    ],
)
def test_hostile_descriptors_through_bulkin_are_only_corruption(forge):
    pair = Pair()
    try:
        honest = pair.send(b"h" * 80_000)
        pos, n, crc, gen, _f, _r = ref.unpack(honest)
        with pytest.raises(CorruptMessage):
            pair.inn.take(forge(pos, n, crc, gen))
    finally:
        pair.close()


def test_overlapping_a_held_lease_is_refused():
    pair = Pair()
    try:
        first = pair.send(b"1" * 100_000)
        lease = pair.inn.lease(first)
        pos, n, crc, gen, flags, _r = ref.unpack(first)
        # The writer (ignoring that the lease holds it) reuses the same place.
        with pytest.raises(CorruptMessage, match="overlapping"):
            pair.inn.take(ref.pack(pos + pair.out.region.capacity, n, crc, gen, flags))  # type: ignore[union-attr]
        assert lease.bytes == b"1" * 100_000
        lease.release()
    finally:
        pair.close()


def test_regions_that_are_not_sealed_memfds_of_the_right_size_are_refused(tmp_path):
    limit = 1 << 20

    def memfd(size: int, seals: int, header: bytes | None = None) -> int:
        fd = os.memfd_create("t", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        if header is not None:
            os.pwrite(fd, header, 0)
        if seals:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        return fd

    import fcntl

    all3 = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
    good = new_region(65536, 1)
    header = bytes(good[:64])
    size = B.region_size(65536)
    plain = tmp_path / "plain"
    plain.write_bytes(bytes(size))
    cases = {
        "no seals": memfd(size, 0, header),
        "no grow seal": memfd(size, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL, header),
        "not a memfd": os.open(plain, os.O_RDONLY),
        "a pipe": os.pipe()[0],
        "short": memfd(size - 4096, all3, header),
        "too large for max_msg_size": memfd(
            B.region_size(1 << 30),
            all3,
            header[:16] + (1 << 30).to_bytes(8, "little") + header[24:],
        ),
        "not a region": memfd(size, all3, b"\0" * 64),
    }
    for what, fd in cases.items():
        with pytest.raises(CorruptMessage, match="bulk region"):
            _region.open_region(fd, _region.max_capacity(limit))
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)  # open_region closed it, refused or not
        del what
    fd = memfd(size, all3, header)
    region = _region.open_region(fd, _region.max_capacity(limit))
    assert region.capacity == 65536 and region.gen == 1
    with pytest.raises(TypeError):
        region.mm[B.HEADER_SIZE] = 1  # mapped read-only
    region.close()


def test_a_region_cannot_be_shrunk_once_passed():
    region = _region.create_region(1 << 20, 1)
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(region.fd, 4096)
        with pytest.raises(PermissionError):
            os.ftruncate(region.fd, 1 << 30)
    finally:
        region.close()


def test_more_descriptors_than_a_doorbell_takes_are_closed_and_refused():
    a, b = socket.socketpair()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(_region.MAX_FDS + 3)]
    try:
        _region.send_fds(a, b"R", fds)
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(CorruptMessage, match="more than"):
            _region.recv_with_fds(b, 16)
        assert len(os.listdir("/proc/self/fd")) == before  # none leaked
    finally:
        for fd in fds:
            os.close(fd)
        a.close()
        b.close()


def test_received_descriptors_are_close_on_exec():
    a, b = socket.socketpair()
    fd = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        _region.send_fds(a, b"R", [fd])
        data, got = _region.recv_with_fds(b, 16)
        assert data == b"R" and len(got) == 1
        assert not os.get_inheritable(got[0])
        os.close(got[0])
    finally:
        os.close(fd)
        a.close()
        b.close()


def test_too_large_an_extent_is_message_too_large():
    _reg, prod, _cons = ring(0)
    mm = new_region(4096, 1)
    w = B.BulkWriter(prod, mm, 4096, None)
    with pytest.raises(MessageTooLarge):
        w.put(b"x" * 2049, True)
    w.release()


@pytest.mark.parametrize("seed", range(24))
def test_a_region_readied_for_a_message_takes_all_its_frames_wherever_it_starts(seed):
    """``BulkOut.ready_for`` (the writer's side, not hostile): once the
    reader has released everything, every large frame of the message fits
    at once, whatever offset the region's next extent starts at; the
    region is kept when it takes them all and is at least the one for the
    largest frame, else it is the one for the largest frame whenever that
    one is enough, and never larger than the reader's max_msg_size allows."""
    rnd = random.Random(seed)
    reg, prod, _cons = ring(0)
    out = _bulk.BulkOut(prod)
    limit = rnd.choice([3 << 20, 8 << 20, 64 << 20])
    try:
        out.ready(rnd.randrange(64 << 10, 1 << 20))  # an earlier message's region
        for _ in range(2):
            sizes = [rnd.randrange((64 << 10) + 1, 2 << 20) for _ in range(rnd.randrange(1, 6))]
            while sum(sizes) > limit:
                sizes.pop()
            before = out.region
            out.ready_for(sizes, limit)
            region = out.region
            assert region is not None and region.writer is not None
            assert region.capacity <= _region.max_capacity(limit)
            by_largest = _region.capacity_for(max(sizes))
            need = max(_region.extents_need(sizes), by_largest)
            if before is not None and before.capacity >= need:
                assert region is before
            elif by_largest >= _region.extents_need(sizes):
                assert region.capacity == by_largest
            # Move the next extent to some offset, everything released.
            w = region.writer
            for _ in range(rnd.randrange(0, 4)):
                assert out.put(b"f" * rnd.randrange(1, w.max_extent + 1), False) is not None
                rf.put(reg, "bulk_released", w.tail)
            mark = out.mark()
            descs = [out.put(b"m" * n, False) for n in sizes]
            assert None not in descs, (seed, sizes, region.capacity, w.tail % region.capacity)
            out.undo(mark)
    finally:
        out.close()


def test_a_message_no_region_the_reader_accepts_can_hold_is_refused_before_any_region():
    # (A socket never asks: such a message is above its peer's max_msg_size.)
    _reg, prod, _cons = ring(0)
    out = _bulk.BulkOut(prod)
    assert _region.capacity_for_all([4 << 20, 4 << 20], 4 << 20) is None
    with pytest.raises(MessageTooLarge, match="nothing was sent"):
        out.ready_for([4 << 20, 4 << 20], 4 << 20)
    assert out.region is None
    # The tightest region a limit allows: 32 MiB + 1 and 32 MiB - 1 take
    # 64 MiB + 64 aligned, so not the 256 MiB of a frame that size.
    assert _region.capacity_for_all([(32 << 20) + 1, (32 << 20) - 1], 64 << 20) == 128 << 20
    assert _region.capacity_for_all([16 << 20] * 3, 64 << 20) == 128 << 20
    assert _region.capacity_for_all([16 << 20], 64 << 20) == _region.capacity_for(16 << 20)


# ---------------------------------------------------------------- C driver


def test_c_bulk_fuzz_driver(tmp_path):
    """Many more hostile descriptors at C speed (sanitized under tox -e asan)."""
    exe = cbuild.compile_c(tmp_path / "bulk_fuzz", "bulk_fuzz.c")
    out = subprocess.run(
        [str(exe), str(C_CASES), str(BASE_SEED + 1)],
        capture_output=True,
        text=True,
        timeout=600,
        env=cbuild.clean_env(),
    )
    assert out.returncode == 0, out.stderr or out.stdout
    assert out.stdout.startswith("ok "), out.stdout
    counts = dict(kv.split("=") for kv in out.stdout.split()[1:])
    assert int(counts["accepted"]) > 0 and int(counts["refused"]) > 0, out.stdout


@pytest.mark.parametrize("size", [1, 4097, 256 << 10, (1 << 20) + 17, (3 << 20) + 17])
def test_the_copy_out_is_checked_in_every_piece(size):
    # The reader copies a frame and checks its CRC piece by piece (256 KiB
    # pieces above 2 MiB):
    # the CRC chained over the pieces is the frame's, and a byte changed in
    # any piece, the last short one too, is corruption.
    body = os.urandom(size)
    mm = mmap.mmap(-1, 4096 + size)
    mm[4096:] = body
    ext = B.Extent(4096, size, crc32c.crc32c(body), True, 0)
    assert B.copy_out(mm, ext) == body
    assert B.copy_out(mm, ext._replace(crc=0, checked=False)) == body
    for at in sorted({0, size // 2, size - 1}):
        mm[4096 + at] ^= 0x40
        with pytest.raises(CorruptMessage):
            B.copy_out(mm, ext)
        mm[4096 + at] ^= 0x40


def test_every_doorbell_byte_means_one_thing():
    # A region's byte once was ROUTER's "routing id in use" byte too: every
    # region passed then logged that a ROUTER had hung up.
    doorbell = [_wire.DATA, _wire.SPACE, _wire.CORRUPT, _wire.ID_REFUSED, _wire.REGION]
    assert all(len(b) == 1 for b in doorbell)
    assert len(set(doorbell)) == len(doorbell)


@pytest.mark.parametrize("size", [70_000, 3 << 20])
def test_a_copy_carrying_a_given_crc_is_read_and_a_wrong_crc_is_corruption(size):
    """A publisher checksums a frame once and copies it into every other
    subscriber's region with that CRC (``put_sum``): the reader verifies it
    on its own copy as any other, so a CRC that does not match the bytes (a
    writer's mistake, or a forgery) is corruption, and the next frame is
    still read."""
    pair = Pair()
    try:
        frame = os.urandom(size)
        first = pair.send(frame)
        assert B.desc_crc(first) != 0
        assert pair.inn.take(first) == frame
        desc = pair.out.put_sum(frame, B.desc_crc(first))
        assert desc is not None
        assert desc[16:] == first[16:]  # crc, gen, flags: as put's
        assert pair.inn.take(desc) == frame
        wrong = pair.out.put_sum(frame, B.desc_crc(first) ^ 1)
        assert wrong is not None
        with pytest.raises(CorruptMessage) as err:
            pair.inn.take(wrong)
        assert err.value.code == R.lib.SHM_EBULKCRC
        assert pair.inn.take(pair.send(b"c" * 70_000)) == b"c" * 70_000
    finally:
        pair.close()


def test_drops_counted_outside_the_fan_out_show_in_the_producer_and_the_header():
    """A publisher's large message missed for want of bulk room is counted as
    the fan-out counts a small one: in the producer and the ring's header."""
    region, prod, _cons = ring(0)
    prod.count_dropped(3)
    prod.count_dropped(1)
    assert prod.dropped == 4
    assert read_stats(region).msgs_dropped == 4  # what `shmsock stat` shows
