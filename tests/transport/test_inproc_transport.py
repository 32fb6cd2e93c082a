"""The inproc transport against the transport contract, with no socket above it.

Each test makes transports with an :class:`EventLog` for Events (what a
socket would be told) and drives their pipes as a socket would.  The
conformance suite (tests/conformance) runs the same semantics through real
sockets; these tests pin the contract's edges: who is told what, when.
"""

from __future__ import annotations

import threading

import pytest
import trio

from shmsock import AddressInUse, IncompatiblePeer, InvalidEndpoint, SocketType
from shmsock._options import make_options
from shmsock._patterns import PATTERNS
from shmsock._transport import SocketSpec
from shmsock._transport.inproc import InprocTransport


class EventLog:
    """Events that records what the transport reported."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.finished_pipes: list[object] = []

    def attached(self, pipe):
        self.log.append(("attached", pipe))

    def gone(self, pipe):
        self.log.append(("gone", pipe))

    def finished(self, pipe):
        self.log.append(("finished", pipe))
        self.finished_pipes.append(pipe)

    def ready(self, pipe, recv, send):
        self.log.append(("ready-recv" if recv else "ready-send", pipe))

    def changed(self):
        self.log.append(("changed", None))

    def control(self, pipe, frames):
        self.log.append(("control", frames))

    def call_later(self, seconds, fn):  # pragma: no cover - inproc needs no timers
        raise AssertionError("inproc never schedules anything")

    def kinds(self) -> list[str]:
        out = [kind for kind, _ in self.log]
        self.log.clear()
        return out


def transport(kind: SocketType, **options) -> tuple[InprocTransport, EventLog]:
    cls = PATTERNS[kind]
    spec = SocketSpec(
        kind=kind,
        options=make_options(**options),
        compatible=cls.compatible,
        max_peers=cls.max_peers,
        writes_data=cls.writes_data,
        reads_data=cls.reads_data,
    )
    events = EventLog()
    return InprocTransport(spec, events), events


def pair_of(name="t", **options):
    """A PUSH transport bound on inproc://name and a PULL one connected."""
    push, pe = transport(SocketType.PUSH, **options)
    pull, le = transport(SocketType.PULL, **options)
    push.bind(f"inproc://{name}")
    pull.connect(f"inproc://{name}")
    [(_, tx)] = pe.log
    [(_, rx)] = le.log
    pe.log.clear()
    le.log.clear()
    return push, pe, tx, pull, le, rx


async def test_connect_before_or_after_bind_attaches_both_sides():
    for connect_first in (True, False):
        push, pe = transport(SocketType.PUSH)
        pull, le = transport(SocketType.PULL)
        if connect_first:
            pull.connect("inproc://either")
        push.bind("inproc://either")
        if not connect_first:
            pull.connect("inproc://either")
        assert pe.kinds() == ["attached"] and le.kinds() == ["attached"]
        push.close()
        pull.close()


async def test_a_live_name_cannot_be_bound_twice_and_a_closed_one_can():
    a, _ = transport(SocketType.PULL)
    b, _ = transport(SocketType.PULL)
    a.bind("inproc://taken")
    with pytest.raises(AddressInUse, match="already bound by this socket"):
        a.bind("inproc://taken")
    with pytest.raises(AddressInUse, match="live socket"):
        b.bind("inproc://taken")
    a.close()
    b.bind("inproc://taken")
    b.close()


async def test_invalid_names_are_refused_like_shm_names():
    t, _ = transport(SocketType.PULL)
    for endpoint in ("inproc://", "inproc://a/b", "inproc://..", "inproc://" + "x" * 65):
        with pytest.raises(InvalidEndpoint, match="letters, digits"):
            t.bind(endpoint)
    t.close()


async def test_an_incompatible_or_surplus_connector_is_refused_and_told():
    rep, _ = transport(SocketType.REP)
    push, pe = transport(SocketType.PUSH)
    rep.bind("inproc://svc")
    push.connect("inproc://svc")
    assert pe.kinds() == ["changed"]
    with pytest.raises(IncompatiblePeer):
        push.check_usable()
    first, fe = transport(SocketType.PAIR)
    second, se = transport(SocketType.PAIR)
    binder, _ = transport(SocketType.PAIR)
    binder.bind("inproc://one")
    first.connect("inproc://one")
    second.connect("inproc://one")
    assert fe.kinds() == ["attached"]
    assert se.kinds() == ["changed"]
    with pytest.raises(ConnectionRefusedError, match="already has its peer"):
        second.check_usable()
    for t in (rep, push, first, second, binder):
        t.close()


async def test_an_empty_reader_is_woken_by_the_next_write_and_only_then():
    push, _pe, tx, pull, le, rx = pair_of()
    assert tx.try_write(b"a", 1) == 0  # the reader never found it empty
    assert rx.take() == b"a"
    assert rx.take() is None and not rx.readable
    assert tx.try_write(b"b", 1) == 1  # the first write after: wake it
    tx.wake()
    assert le.kinds() == ["ready-recv"] and rx.readable
    assert tx.try_write(b"c", 1) == 0
    assert [rx.take(), rx.take()] == [b"b", b"c"]
    push.close()
    pull.close()


async def test_a_full_queue_refuses_and_the_writer_is_told_when_the_reader_takes():
    push, pe, tx, pull, _le, rx = pair_of(ring_size=4096)
    sent = 0
    while tx.try_write(bytes(1000), 1000) >= 0:
        sent += 1
    assert sent == 4  # 4 KiB budget: four 1000-byte messages
    assert not tx.offer([bytes(1000)], 0) and not tx.writable
    assert pe.kinds() == []
    rx.inbox.popleft()  # the receive fast path pops the inbox itself
    assert pe.kinds() == ["ready-send"] and tx.writable
    assert tx.offer([bytes(1000)], 0)
    push.close()
    pull.close()


async def test_a_message_larger_than_the_budget_goes_when_the_queue_is_empty():
    push, _pe, tx, pull, _le, rx = pair_of(ring_size=4096)
    big = bytes(10_000)
    assert tx.offer([b"small"], 0)
    assert not tx.offer([big], 0)
    assert rx.take() == b"small"
    assert tx.offer([big], 0)
    assert rx.take() == big
    push.close()
    pull.close()


async def test_multipart_and_aux_arrive_whole_and_batches_say_whether_plain():
    push, _pe, tx, pull, _le, rx = pair_of()
    assert tx.offer([b"h", b"b"], 0)
    assert tx.offer([b"x"], 7)
    items, plain = rx.take_batch(10)
    assert not plain
    assert [(m.frames, m.aux) for m in items] == [([b"h", b"b"], 0), ([b"x"], 7)]
    from array import array

    assert tx.offer_batch(b"abc", array("I", [1, 2]))
    assert rx.take_batch(10) == ([b"a", b"bc"], True)
    push.close()
    pull.close()


async def test_a_closed_writer_leaves_its_messages_takeable_then_the_pipe_finishes():
    push, _pe, tx, pull, le, rx = pair_of()
    for i in range(3):
        assert tx.try_write(b"%d" % i, 1) == 0
    push.close()
    assert le.kinds() == ["gone", "ready-recv"]
    assert not rx.alive and rx.readable
    assert [rx.take() for _ in range(3)] == [b"0", b"1", b"2"]
    assert rx.take() is None
    assert le.kinds() == ["finished"]
    rx.retire()
    assert pull.stats()["inproc://t"].messages_received == 3
    pull.close()


async def test_a_lingering_writer_is_told_as_the_reader_takes():
    push, pe, tx, pull, _le, rx = pair_of()
    assert not tx.prepare_drain()  # nothing unread
    tx.try_write(b"x", 1)
    assert tx.unread() and tx.prepare_drain()
    assert rx.take() == b"x"
    assert pe.kinds() == ["ready-send"]
    assert not tx.unread()
    push.close()
    pull.close()


async def test_a_reader_that_closes_drops_and_counts_what_it_had_not_taken():
    push, pe, tx, pull, _le, _rx = pair_of()
    tx.try_write(b"lost", 4)
    pull.close()
    assert pe.kinds() == ["gone", "finished"]
    assert not tx.alive and tx.try_write(b"x", 1) < 0 and not tx.offer([b"x"], 0)
    assert pull.stats()["inproc://t"].dropped == 1
    push.close()


async def test_control_frames_reach_the_peer_socket():
    push, pe, _tx, pull, le, rx = pair_of()
    assert rx.send_control([b"\x01topic"])
    assert le.log == []
    assert pe.log == [("control", [b"\x01topic"])]
    push.close()
    pull.close()


async def test_names_are_not_shared_between_runs():
    bound = threading.Event()
    release = threading.Event()

    async def other_run() -> None:
        t, _ = transport(SocketType.PULL)
        t.bind("inproc://elsewhere")
        bound.set()
        await trio.to_thread.run_sync(release.wait)
        # Ends without closing: the name must not stay taken.

    thread = threading.Thread(target=trio.run, args=(other_run,))
    thread.start()
    await trio.to_thread.run_sync(bound.wait)
    mine, _ = transport(SocketType.PULL)
    push, pe = transport(SocketType.PUSH)
    with pytest.raises(AddressInUse, match=r"another trio\.run"):
        mine.bind("inproc://elsewhere")
    with pytest.raises(ConnectionRefusedError, match=r"another trio\.run"):
        push.connect("inproc://elsewhere")
    release.set()
    await trio.to_thread.run_sync(thread.join)
    mine.bind("inproc://elsewhere")  # its run is over: taken over
    push.connect("inproc://elsewhere")
    assert pe.kinds() == ["attached"]
    mine.close()
    push.close()
