"""Unit tests of the C ring through its Python binding (shmsock._ring)."""

from __future__ import annotations

import os
import subprocess
import sys
from array import array

import crc32c
import pytest
from helpers import ringforge as rf

from shmsock import CorruptMessage, MessageTooLarge
from shmsock import _ring as R

CAP = 1024


def make(cap: int = CAP, start_pos: int = 0, start_seq: int = 0, checksum: bool = True):
    region = bytearray(R.region_size(cap))
    R.init_ring(region, cap, start_pos, start_seq)
    prod = R.Producer(region, cap, checksum=checksum)
    cons = R.Consumer(region, cap)
    return region, prod, cons, R.ReadBuffer(cap, 64)


def read_all(cons, buf, limit=10_000):
    out = []
    for _ in range(limit):
        got = cons.read(buf)[0]
        if not got:
            return out
        out.extend(got)
    raise AssertionError("ring never ran empty")


def test_geometry():
    assert R.region_size(256) == 256 + 256
    assert R.max_payload(1024) == 512 - 24
    for bad in (0, 100, 255, 1000, 3 << 20, 1 << 31):
        with pytest.raises(ValueError, match="power of two"):
            R.region_size(bad)
    with pytest.raises(ValueError, match="invalid ring arguments"):
        R.init_ring(bytearray(300), 256)  # region too small for the data area
    with pytest.raises(ValueError, match="invalid ring arguments"):
        R.init_ring(bytearray(R.region_size(256)), 256, start_pos=4)  # misaligned


def test_header_layout_matches_protocol_doc():
    region, prod, _cons, _buf = make(start_pos=4096, start_seq=7)
    assert rf.get(region, "magic") == rf.RING_MAGIC
    assert rf.get(region, "version") == 3
    assert rf.get(region, "header_size") == 256
    assert rf.get(region, "capacity") == CAP
    assert rf.get(region, "head") == rf.get(region, "tail") == 4096
    # Bulk positions start where the ring's do; nobody waits for bulk room.
    assert rf.get(region, "bulk_released") == 4096
    assert rf.get(region, "bulk_waiting") == rf.get(region, "bulk_want") == 0
    assert prod.write(b"abc", rf.START, aux=99) == 0
    assert rf.get(region, "tail") == 4096 + rf.rec_size(3)
    assert rf.get(region, "tail_seq") == 8
    assert rf.get(region, "bytes_written") == 3
    raw = bytes(region[256 : 256 + 24])
    # The crc covers the payload, then flags, length, seq and aux (17 bytes).
    trailer = bytes([rf.START]) + (3).to_bytes(4, "little") + (7).to_bytes(8, "little")
    trailer += (99).to_bytes(4, "little")
    crc = crc32c.crc32c(trailer, crc32c.crc32c(b"abc"))
    assert raw == rf.record_header(rf.START, 3, 7, crc, 99)
    assert bytes(region[256 + 24 : 256 + 27]) == b"abc"


def test_fanout_drops_are_counted_in_their_own_header_word():
    # msgs_dropped (pubsub) and bulk_written (bulk) share the producer's
    # line: a drop moves one and leaves the other alone.
    cap = 1024
    region, prod, cons, buf = make(cap)
    fan = R.FanOut([prod])
    while fan.write(b"x" * 100) == 1:
        pass
    assert fan.results() == [0]
    assert rf.get(region, "msgs_dropped") == 1 == R.read_stats(region).msgs_dropped
    assert rf.get(region, "bulk_written") == 0
    assert rf.get(region, "msgs_written") == len(read_all(cons, buf))


@pytest.mark.parametrize("count", [3, 64, 65, 200])
def test_a_fanout_batch_goes_whole_into_each_ring_with_room_and_is_counted_per_message(count):
    """A batch of one-frame messages (a publisher's send_many): every ring with
    room gets all of it, checksums right (above 64 messages they are kept in
    malloc'd memory), and a ring without room misses all of it, each message
    counted as dropped."""
    cap = 64 * 1024
    rings = [make(cap) for _ in range(3)]
    fan = R.FanOut([prod for _region, prod, _cons, _buf in rings])
    msgs = [os.urandom(j % 50) for j in range(count)]
    data, lens = b"".join(msgs), array("I", map(len, msgs))
    # The third ring is nearly full: the batch does not fit it.
    region3, prod3, _cons3, _buf3 = rings[2]
    span = sum(rf.rec_size(n) for n in lens)
    while cap - prod3.used >= span:
        assert prod3.write(b"f" * 200 if cap - prod3.used >= span + 224 else b"") >= 0
    before = prod3.used
    assert fan.write_batch(data, lens, R.FanOut.CHECK) & R.FanOut.ANY_FULL
    assert fan.results() == [R.FanOut.WRITTEN, R.FanOut.WRITTEN, 0]
    assert fan.write_batch(data, lens, R.FanOut.ALL) & R.FanOut.COUNT == 0  # all or none
    rc = fan.write_batch(data, lens, R.FanOut.DROP)
    assert rc & R.FanOut.COUNT == 2
    assert fan.results()[:2] == [R.FanOut.WRITTEN, R.FanOut.WRITTEN]
    assert fan.results()[2] == 0
    for region, prod, cons, buf in rings[:2]:
        assert read_all(cons, buf) == msgs  # each record's crc checked by the reader
        assert prod.dropped == 0
        assert rf.get(region, "msgs_written") == count
    assert prod3.used == before
    assert prod3.dropped == count == rf.get(region3, "msgs_dropped")


def test_a_fanout_batch_larger_than_a_ring_is_refused_before_anything_is_written():
    _region, prod, cons, buf = make(1024)
    fan = R.FanOut([prod])
    msgs = [b"m" * 100] * 10
    with pytest.raises(MessageTooLarge):
        fan.write_batch(b"".join(msgs), array("I", map(len, msgs)), R.FanOut.ALL)
    with pytest.raises(MessageTooLarge):
        fan.write_batch(b"".join(msgs), array("I", map(len, msgs)), R.FanOut.FITS)
    # FITS only checks: a batch that fits is not written.
    assert fan.write_batch(b"".join(msgs[:3]), array("I", [100] * 3), R.FanOut.FITS) == 0
    assert read_all(cons, buf) == []


def test_fanout_writes_control_records_and_refuses_descriptors():
    _region, prod, cons, buf = make()
    fan = R.FanOut([prod])
    lens = array("I", [rf.DESC_SIZE])
    with pytest.raises(ValueError, match="flags"):
        fan.write_records(bytes(rf.DESC_SIZE), lens, bytes([rf.START | rf.DESC]), 0)
    assert fan.write_records(b"ab", array("I", [2]), bytes([rf.START | rf.CTRL]), 0) & 0xFF == 1
    got, fl, _aux, _ = cons.read(buf)
    assert got == [b"ab"]
    assert fl == [rf.START | rf.CTRL]


def test_empty_ring_reads_nothing():
    _region, _prod, cons, buf = make()
    assert cons.read(buf) == ([], None, None, False)
    assert cons.available() == 0


def test_fifo_single_records():
    _region, prod, cons, buf = make()
    msgs = [os.urandom(n) for n in (0, 1, 7, 8, 9, 100)]
    for m in msgs:
        assert prod.write(m) == 0
    assert read_all(cons, buf) == msgs
    assert prod.records == cons.records == len(msgs)
    assert prod.bytes == cons.bytes == sum(map(len, msgs))


def test_zero_byte_and_maximum_size_records():
    _region, prod, cons, buf = make()
    biggest = os.urandom(R.max_payload(CAP))
    assert prod.write(b"") == 0
    assert prod.write(biggest) == 0
    assert read_all(cons, buf) == [b"", biggest]
    with pytest.raises(MessageTooLarge):
        prod.write(bytes(R.max_payload(CAP) + 1))


def test_full_ring_refuses_then_accepts_after_read():
    _region, prod, cons, buf = make()
    payload = bytes(100)  # 128-byte records: eight fill 1024 exactly
    for _ in range(8):
        assert prod.write(payload) == 0
    assert prod.write(payload) == -1
    assert prod.write(b"") == -1  # not even an empty record fits
    assert not prod.can_write(0)
    assert len(cons.read(buf, max_count=1)[0]) == 1
    assert prod.can_write(100)
    assert prod.write(payload) == 0
    assert len(read_all(cons, buf)) == 8


def test_exact_fit_to_end_needs_no_padding():
    region, prod, cons, buf = make()
    # 1024 bytes = 3 records of 320 + one of 64: the last ends exactly at the end.
    sizes = [296, 296, 296, 40]
    for n in sizes:
        assert prod.write(bytes(n)) == 0
    assert rf.get(region, "tail") - rf.get(region, "head") == CAP
    assert prod.write(b"") == -1
    assert [len(m) for m in read_all(cons, buf)] == sizes
    # The next record starts at offset 0 without a padding record.
    assert prod.write(b"x") == 0
    assert rf.parse_header(bytes(region[256 : 256 + 24]))["flags"] == rf.START


def test_wrap_with_padding_record():
    region, prod, cons, buf = make()
    assert prod.write(bytes(400)) == 0  # 424 bytes
    assert prod.write(bytes(400)) == 0  # 848
    assert len(read_all(cons, buf)) == 2
    # 176 bytes remain to the end; a 200-byte payload needs 224: pad and wrap.
    assert prod.write(b"y" * 200) == 0
    pad = rf.parse_header(bytes(region[256 + 848 : 256 + 848 + 24]))
    assert pad["flags"] == rf.PAD
    assert pad["length"] == 176 - 24
    assert pad["seq"] == 2  # padding carries the next record's number
    assert rf.parse_header(bytes(region[256 : 256 + 24]))["seq"] == 2
    assert read_all(cons, buf) == [b"y" * 200]
    assert rf.get(region, "head") == rf.get(region, "tail") == 1024 + 224


def test_wrap_with_implicit_gap_smaller_than_a_header():
    region, prod, cons, buf = make()
    assert prod.write(bytes(480)) == 0  # 504
    assert prod.write(bytes(480)) == 0  # 1008: 16 bytes left, less than a header
    read_all(cons, buf)
    assert prod.write(b"z" * 8) == 0
    assert rf.get(region, "tail") == 1024 + 32
    assert read_all(cons, buf) == [b"z" * 8]


def test_padding_and_gap_are_counted_as_space():
    _region, prod, cons, buf = make()
    assert prod.write(bytes(400)) == 0
    assert prod.write(bytes(400)) == 0
    cons.read(buf, max_count=1)  # 424 bytes free at the start, 176 at the end
    # 488 bytes need 512: neither the end (176) nor the start (424) holds it.
    assert prod.write(bytes(R.max_payload(CAP))) == -1
    read_all(cons, buf)
    assert prod.write(bytes(R.max_payload(CAP))) == 0


def test_batch_write_and_read():
    _region, prod, cons, buf = make(cap=1 << 16)
    msgs = [os.urandom(n % 300) for n in range(200)]
    n, wake = prod.write_many(msgs)
    assert (n, wake) == (200, False)
    got, flags, aux, wake = cons.read(buf, max_count=50)
    assert got == msgs[:50]
    assert flags is None and aux is None and wake is False
    assert read_all(cons, buf) == msgs[50:]


@pytest.mark.parametrize(
    "lens",
    [[0, 0, 0], [7] * 64, [1024] * 3, [5, 5, 6], [6, 5, 5], [300, 0, 300], [9]],
    ids=["empty", "same-64", "same-1k", "last-differs", "first-differs", "zero-between", "one"],
)
def test_a_batch_comes_back_as_written_whether_or_not_lengths_agree(lens):
    # Batches whose payloads share one length are cut apart another way
    # than mixed ones; both must give the same bytes objects back.
    _region, prod, cons, buf = make(cap=1 << 17)
    msgs = [os.urandom(n) for n in lens]
    assert prod.write_many(msgs) == (len(msgs), False)
    got = cons.read(buf)[0]
    assert got == msgs
    assert all(type(m) is bytes for m in got)


def test_write_with_flags_and_aux_goes_through_the_general_path():
    _region, prod, cons, buf = make()
    assert prod.write(b"head", R.START | R.MORE, aux=7) == 0
    assert prod.write(b"tail", 0) == 0
    got, flags, aux, _wake = cons.read(buf)
    assert got == [b"head", b"tail"]
    assert flags == [R.START | R.MORE, 0] and aux == [7, 0]


def test_try_write_is_write_without_the_error_handling():
    _region, prod, cons, buf = make()
    payload = bytes(400)
    assert prod.try_write(payload, len(payload)) == 0
    assert prod.try_write(payload, len(payload)) == 0
    assert prod.try_write(payload, len(payload)) < 0  # full: write() says why
    assert prod.write(payload) == -1
    big = bytes(CAP)
    assert prod.try_write(big, len(big)) < 0
    with pytest.raises(MessageTooLarge):
        prod.write(big)
    assert read_all(cons, buf) == [payload, payload]


def test_batch_write_stops_when_full_and_atomic_writes_all_or_nothing():
    _region, prod, cons, buf = make()
    msgs = [bytes(100)] * 10
    assert prod.write_many(msgs) == (8, False)
    assert prod.write_many(msgs) == (0, False)
    cons.read(buf, max_count=3)
    data = b"".join(msgs[:4])
    lens = array("I", [100] * 4)
    assert prod.write_records(data, lens, None, 0, atomic=True) == (0, False)
    assert prod.write_records(data[:300], lens[:3], None, 0, atomic=True) == (3, False)
    with pytest.raises(MessageTooLarge):
        # Nine 128-byte records can never be in a 1024-byte ring at once.
        prod.write_records(bytes(900), array("I", [100] * 9), None, 0, atomic=True)


def test_read_buffer_bounds_the_batch():
    _region, prod, cons, _buf = make(cap=4096)
    prod.write_many([bytes(300)] * 5)
    small = R.ReadBuffer(700, 64)
    assert len(cons.read(small)[0]) == 2
    tiny = R.ReadBuffer(100, 64)
    with pytest.raises(BufferError):
        cons.read(tiny)
    assert len(read_all(cons, small)) == 3


def test_flags_and_aux_come_back_for_mixed_batches():
    _region, prod, cons, buf = make()
    lens = array("I", [1, 2, 3])
    flags = bytes([rf.START | rf.MORE, rf.CONT, 0])
    assert prod.write_records(b"abbccc", lens, flags, 42, atomic=True) == (3, False)
    got, fl, aux, _ = cons.read(buf)
    assert got == [b"a", b"bb", b"ccc"]
    assert fl == [rf.START | rf.MORE, rf.CONT, 0]
    assert aux == [42, 0, 0]


def test_invalid_write_flags_are_rejected():
    _region, prod, _cons, _buf = make()
    for bad in (rf.PAD, rf.NOCRC, 0x80, rf.DESC, rf.START | rf.DESC | rf.CONT,
                rf.START | rf.DESC | rf.CTRL):  # fmt: skip
        with pytest.raises(ValueError, match="flags"):
            prod.write(b"x", bad)
    # A DESC record carries exactly one descriptor, and is a whole frame.
    with pytest.raises(ValueError, match="flags"):
        prod.write(bytes(rf.DESC_SIZE + 8), rf.START | rf.DESC)
    with pytest.raises(ValueError, match="flags"):
        prod.write(bytes(rf.DESC_SIZE), rf.START | rf.DESC | rf.CONT)


@pytest.mark.parametrize("data", [b"abcde", memoryview(b"abcdefgh")[2:7]])
def test_lengths_beyond_the_data_are_refused_before_anything_is_written(data):
    # C copies the payloads from the caller's buffer: lengths that add up
    # to more than it holds would copy whatever lies beyond it into the ring.
    region, prod, cons, buf = make()
    before = bytes(region)
    for atomic in (True, False):
        with pytest.raises(ValueError, match="invalid ring arguments"):
            prod.write_records(data, array("I", [2, 4]), None, 0, atomic=atomic)
    assert bytes(region) == before
    assert prod.write_records(data, array("I", [2, 3]), None, 0, atomic=True) == (2, False)
    assert cons.read(buf)[0] == [bytes(data[:2]), bytes(data[2:])]


def test_sequence_numbers_count_records_not_padding():
    region, prod, cons, buf = make(start_seq=1000)
    for i in range(20):
        prod.write(bytes(150 + i))
        read_all(cons, buf)
    assert rf.get(region, "tail_seq") == rf.get(region, "head_seq") == 1020


def test_checksum_off_marks_records_and_skips_the_check():
    region, prod, cons, buf = make(checksum=False)
    prod.write(b"hello")
    h = rf.parse_header(bytes(region[256 : 256 + 24]))
    assert h["flags"] == rf.START | rf.NOCRC
    assert h["crc"] == 0
    region[256 + 24] ^= 0xFF  # without a CRC nothing can notice
    assert cons.read(buf)[0] == [bytes([ord("h") ^ 0xFF]) + b"ello"]


def test_checksum_catches_a_flipped_payload_bit_and_stays_put():
    region, prod, cons, buf = make()
    prod.write(b"first")
    prod.write(b"second")
    off = 256 + rf.rec_size(5) + 24
    region[off] ^= 0x01
    got = cons.read(buf)[0]
    assert got == [b"first"]
    for _ in range(3):  # the bad record is never consumed or skipped
        with pytest.raises(CorruptMessage, match="CRC32C"):
            cons.read(buf)


def test_counters_wrap_through_2_64():
    start = (1 << 64) - 3 * CAP
    _region, prod, cons, buf = make(start_pos=start, start_seq=(1 << 64) - 5)
    sent, got = [], []
    for i in range(300):
        m = os.urandom(i % 200)
        while prod.write(m) < 0:
            got.extend(read_all(cons, buf))
        sent.append(m)
    got.extend(read_all(cons, buf))
    assert got == sent
    assert R.read_stats(_region).head < start  # the position really wrapped


def test_waiter_flags_consumer_side():
    region, prod, cons, buf = make()
    assert cons.prepare_wait() is True  # empty: may sleep, flag set
    assert rf.get(region, "consumer_waiting") == 1
    assert prod.write(b"a") == 1  # the producer is told to wake us
    assert rf.get(region, "consumer_waiting") == 0
    assert prod.write(b"b") == 0  # once per announcement
    assert cons.prepare_wait() is False  # data there: do not sleep
    assert rf.get(region, "consumer_waiting") == 0
    cons.prepare_wait()
    cons.cancel_wait()
    assert rf.get(region, "consumer_waiting") == 0
    assert read_all(cons, buf) == [b"a", b"b"]


def test_waiter_flags_producer_side():
    region, prod, cons, buf = make()
    while prod.write(bytes(100)) >= 0:
        pass
    assert prod.prepare_wait(100) is True
    assert rf.get(region, "producer_waiting") == rf.rec_size(100)  # the room it waits for
    got, _f, _a, wake = cons.read(buf, max_count=1)
    assert len(got) == 1 and wake is True
    assert rf.get(region, "producer_waiting") == 0
    assert cons.read(buf, max_count=1)[3] is False
    assert prod.prepare_wait(100) is False  # room now: do not sleep
    with pytest.raises(MessageTooLarge):
        prod.prepare_wait(R.max_payload(CAP) + 1)


def test_a_waiting_producer_is_woken_only_once_its_room_is_free():
    """A reader that frees less than the writer waits for does not wake it."""
    region, prod, cons, buf = make()
    while prod.write(bytes(100)) >= 0:
        pass
    big = R.max_payload(CAP)  # needs about half the ring
    assert prod.prepare_wait(big) is True
    wakes = []
    while True:
        got, _f, _a, wake = cons.read(buf, max_count=1)
        assert got
        wakes.append(wake)
        if wake:
            break
    assert len(wakes) > 1 and not any(wakes[:-1])  # no early, useless wake-ups
    assert prod.write(bytes(big)) >= 0  # and the room is there when it is woken
    assert rf.get(region, "producer_waiting") == 0


def test_drain_wait_for_a_lingering_close():
    region, prod, cons, buf = make()
    assert prod.prepare_drain() is False  # nothing written: already drained
    prod.write_many([b"a", b"b"])
    assert prod.unread() == 2 * rf.rec_size(1)
    assert prod.prepare_drain() is True
    assert rf.get(region, "producer_waiting") == CAP  # all of it
    assert cons.read(buf, max_count=1)[3] is False  # one record still unread
    assert rf.get(region, "producer_waiting") == CAP  # still waiting
    assert cons.read(buf)[3] is True  # the reader wakes us once drained
    assert prod.unread() == 0
    assert prod.prepare_drain() is False


def test_a_closed_producers_records_stay_readable():
    region, prod, cons, buf = make()
    prod.write_many([b"a", b"b", b"c"])
    prod.close()
    assert rf.get(region, "producer_state") == 1
    assert R.read_stats(region).producer_state == 1
    assert cons.read(buf, max_count=1)[0] == [b"a"]
    # An earlier build stored 2 for a close that withdrew the unread
    # records: a reader takes it for closed, and reads them all the same.
    rf.put(region, "producer_state", 2)
    assert cons.read(buf, max_count=1)[0] == [b"b"]
    prod.close()
    assert cons.read(buf)[0] == [b"c"]
    assert cons.read(buf)[0] == []


def test_unread_messages_counts_whole_messages_left_in_the_ring():
    region, prod, cons, buf = make()
    assert prod.unread_messages() == 0
    prod.write_many([b"a", b"b", b"c"])
    prod.write_records(b"xyz", array("I", [1, 2]), bytes([R.START | R.MORE, 0]), 0, atomic=True)
    assert prod.unread_messages() == 4  # three one-frame messages and one of two frames
    assert cons.read(buf, max_count=2)[0] == [b"a", b"b"]
    assert prod.unread_messages() == 2
    assert cons.read(buf, max_count=2)[0] == [b"c", b"x"]
    assert prod.unread_messages() == 1  # a message read in part is unread
    cons.read(buf)
    assert prod.unread_messages() == 0
    # The reader's count is in shared memory: whatever it says, the answer
    # stays within what the ring can hold.
    prod.write_many([b"d"])
    rf.put(region, "msgs_read", 0)
    assert prod.unread_messages() == 1
    rf.put(region, "msgs_read", 10**6)
    assert prod.unread_messages() == 1


def test_a_consumer_counts_the_messages_it_has_not_read():
    region, prod, cons, buf = make()
    assert cons.unread_messages() == 0
    prod.write_many([b"a", b"b", b"c"])
    prod.write_records(b"xyz", array("I", [1, 2]), bytes([R.START | R.MORE, 0]), 0, atomic=True)
    assert cons.unread_messages() == 4
    assert cons.read(buf, max_count=4)[0] == [b"a", b"b", b"c", b"x"]
    assert cons.unread_messages() == 1  # the last frame is still to come
    rf.put(region, "msgs_written", 0)  # the producer's count is not trusted
    assert cons.unread_messages() == 1
    cons.read(buf)
    assert cons.unread_messages() == 0


def test_consumer_resync_takes_over_a_live_ring():
    region, prod, cons, buf = make(start_seq=50)
    prod.write_many([b"a", b"b", b"c"])
    assert cons.read(buf, max_count=1)[0] == [b"a"]
    rf.put(region, "head_seq", 12345)  # a dead consumer's stale statistics
    with pytest.raises(CorruptMessage, match="sequence"):
        R.Consumer(region, CAP).read(buf)
    successor = R.Consumer(region, CAP, resync=True)
    assert read_all(successor, buf) == [b"b", b"c"]
    prod.write(b"d")
    assert read_all(successor, buf) == [b"d"]


def test_attach_checks_header_against_private_capacity():
    region, _prod, _cons, _buf = make()
    with pytest.raises(CorruptMessage, match="header"):
        R.Consumer(region, 512)
    with pytest.raises(ValueError, match="region size"):
        R.Producer(bytearray(100), CAP)


def test_stats_snapshot():
    region, prod, cons, buf = make(start_pos=8, start_seq=3)
    prod.write_many([b"xx", b"yyy"])
    cons.read(buf, max_count=1)
    st = R.read_stats(region)
    assert (st.capacity, st.head_seq, st.tail_seq) == (CAP, 4, 5)
    assert (st.bytes_written, st.bytes_read) == (5, 2)
    assert st.used == st.tail - st.head == rf.rec_size(3)
    with pytest.raises(CorruptMessage):
        R.read_stats(bytearray(512))


#: Lengths around the folding checksum's edges (csrc/crc32c.c: it takes
#: 8 KiB and more, in 256-byte steps, and leaves a tail under 256 bytes).
FOLDS = [8191, 8192, 8193, 8192 + 255, 8192 + 256, 8192 + 257, 65536 + 255]


@pytest.mark.parametrize(
    "size", [0, 1, 7, 8, 63, 255, 256, 767, 768, 769, 1024, 4099, *FOLDS, 70000]
)
def test_crc32c_matches_the_crc32c_package(size):
    data = os.urandom(size)
    assert R.crc32c(data) == crc32c.crc32c(data)
    half = size // 2
    assert R.crc32c(data[half:], R.crc32c(data[:half])) == crc32c.crc32c(data)


@pytest.mark.parametrize("size", [0, 1, 7, 8, 255, 767, 768, 769, 4099, *FOLDS, 70000, 1 << 20])
@pytest.mark.parametrize(("src_at", "dst_at"), [(0, 0), (1, 0), (3, 5), (7, 1)])
def test_crc32c_copy_copies_and_gives_the_crc_of_the_copy(size, src_at, dst_at):
    # The one-pass copy and checksum every checked payload and bulk frame
    # now goes through: byte for byte the crc32c package's CRC, whatever
    # the alignment, and exactly the bytes of the source in the copy.
    from shmsock._shmring import ffi, lib

    data = os.urandom(size + src_at)
    out = bytearray(size + dst_at + 8)
    dst = ffi.from_buffer(out, require_writable=True)
    crc = lib.shm_crc32c_copy(0, dst + dst_at, ffi.from_buffer(data) + src_at, size)
    assert crc == crc32c.crc32c(data[src_at:])
    assert out[dst_at : dst_at + size] == data[src_at:]
    assert out[:dst_at] == bytes(dst_at) and out[dst_at + size :] == bytes(8)
    seed = crc32c.crc32c(b"seed")
    assert lib.shm_crc32c_copy(seed, dst, ffi.from_buffer(data), size) == crc32c.crc32c(
        data[:size], seed
    )


@pytest.mark.parametrize(
    "size", [0, 1, 15, 16, 17, 63, 64, 65, 767, 768, 769, 4099, *FOLDS, 70000, (3 << 20) + 13]
)
@pytest.mark.parametrize(("src_at", "dst_at"), [(0, 0), (1, 0), (3, 5), (0, 9), (0, 63)])
def test_the_streamed_copy_copies_and_gives_the_crc_of_the_copy(size, src_at, dst_at):
    # The non-temporal copy of checksummed bulk frames above 2 MiB: byte for byte the
    # crc32c package's CRC, the source's exact bytes in the copy and
    # nothing written outside it, whatever the alignment (the destination
    # is aligned to 16 bytes before streaming, so each case starts the
    # streamed part at another offset, and the sizes leave tails of every
    # kind after it).
    from shmsock._shmring import ffi, lib

    data = os.urandom(size + src_at)
    src = ffi.from_buffer(data) + src_at
    out = bytearray(size + dst_at + 8)
    dst = ffi.from_buffer(out, require_writable=True) + dst_at
    assert lib.shm_crc32c_copy_stream(0, dst, src, size) == crc32c.crc32c(data[src_at:])
    assert out[dst_at : dst_at + size] == data[src_at:]
    assert out[:dst_at] == bytes(dst_at) and out[dst_at + size :] == bytes(8)
    seed = crc32c.crc32c(b"seed")
    out = bytearray(size)
    got = lib.shm_crc32c_copy_stream(seed, ffi.from_buffer(out, require_writable=True), src, size)
    assert got == crc32c.crc32c(data[src_at:], seed)


def test_the_crc32_instruction_path_agrees_where_folding_would_run():
    # Where the CPU can fold (AVX-512 and VPCLMULQDQ), frames of 8 KiB and
    # more are checksummed by folding; SHMSOCK_NO_FOLD=1 keeps the crc32
    # instruction loops, the path every other x86-64 CPU takes.  Both must
    # give the crc32c package's CRC and an exact copy at those lengths.
    code = """
import os, crc32c
from shmsock._shmring import ffi, lib
for size in (8191, 8192, 8449, 65536 + 255, (3 << 20) + 13):
    data = os.urandom(size)
    out = bytearray(size)
    dst = ffi.from_buffer(out, require_writable=True)
    want = crc32c.crc32c(data)
    assert lib.shm_crc32c(0, data, size) == want, size
    assert lib.shm_crc32c_copy(0, dst, data, size) == want and out == data, size
    out[:] = bytes(size)
    assert lib.shm_crc32c_copy_stream(0, dst, data, size) == want and out == data, size
print("ok")
"""
    env = {**os.environ, "SHMSOCK_NO_FOLD": "1"}
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
