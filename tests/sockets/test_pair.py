"""PAIR: exactly one peer, both directions."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from helpers import peers, seam
from helpers.conformance import (
    damage_consumer_position,
    fill,
    fill_then_drain,
    wait_peers,
)
from helpers.procs import spawn

import shmsock
from shmsock import PAIR


async def start_in_turn(nursery: trio.Nursery, *tasks) -> None:
    """Start each of *tasks* once every task started before it is blocked."""
    for task in tasks:
        nursery.start_soon(task)
        await trio.testing.wait_all_tasks_blocked()


async def test_both_directions_at_once():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://duplex")
        b.connect("shm://duplex")

        async def pump(src, dst, tag):
            for i in range(500):
                await src.send(tag + b"%d" % i)
            assert [await dst.recv() for _ in range(500)] == [
                (b"b" if tag == b"a" else b"a") + b"%d" % i for i in range(500)
            ]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, a, a, b"a")
            nursery.start_soon(pump, b, b, b"b")


async def test_a_second_connect_is_refused():
    async with (
        shmsock.socket(PAIR) as a,
        shmsock.socket(PAIR) as b,
        shmsock.socket(PAIR) as intruder,
    ):
        a.bind("shm://one-peer")
        b.connect("shm://one-peer")
        await b.send(b"first")
        assert await a.recv() == b"first"
        intruder.connect("shm://one-peer")
        with trio.fail_after(30), pytest.raises(ConnectionRefusedError, match="refused"):
            while True:  # the refusal arrives in the background
                await intruder.send(b"let me in")
        await b.send(b"still mine")
        assert await a.recv() == b"still mine"


async def test_pair_binds_or_connects_once():
    async with shmsock.socket(PAIR) as a:
        a.bind("shm://once")
        with pytest.raises(shmsock.StateError, match="exactly one peer"):
            a.connect("shm://other")
        with pytest.raises(shmsock.StateError):
            a.bind("shm://again")


async def test_send_blocks_while_the_peers_ring_is_full():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://full")
        b.connect("shm://full")
        await a.send(b"x")
        assert await b.recv() == b"x"
        n = 0
        while True:
            try:
                a.send_nowait(bytes(5000))
                n += 1
            except trio.WouldBlock:
                break
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send, b"last")
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(n):
                await b.recv()
            assert await b.recv() == b"last"


async def test_peer_closing_gives_broken_after_everything_it_sent():
    async with shmsock.socket(PAIR) as a:
        a.bind("shm://brk")
        async with shmsock.socket(PAIR, linger=None) as b:
            b.connect("shm://brk")
            await b.send(b"1")
            await b.send(b"2")
            assert await a.recv() == b"1"
        # b is gone; what it sent is still delivered, then the socket is broken.
        assert await a.recv() == b"2"
        with pytest.raises(trio.BrokenResourceError):
            await a.recv()
        with pytest.raises(trio.BrokenResourceError):
            await a.send(b"to nobody")
        # A new peer makes it usable again.
        async with shmsock.socket(PAIR) as c:
            c.connect("shm://brk")
            await c.send(b"hello again")
            assert await a.recv() == b"hello again"
            await a.send(b"welcome")
            assert await c.recv() == b"welcome"


@pytest.mark.parametrize("sender_binds", [True, False], ids=["binder-sends", "connector-sends"])
async def test_corrupt_ring_header_of_the_peer_breaks_the_pair_not_with_corrupt(sender_binds):
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://hdpair")
        b.connect("shm://hdpair")
        sender, receiver = (a, b) if sender_binds else (b, a)
        await wait_peers(sender, 1)
        await receiver.send(b"before")
        fill_then_drain(sender, [receiver], b"fill")
        damage_consumer_position(seam.connections(receiver)[0].rx_seg.ring)
        with pytest.raises(trio.BrokenResourceError):
            await sender.send(b"lost")
        assert sender.peer_count == 0
        assert sum(st.corrupt for st in sender._stats_by_endpoint().values()) == 1
        # What the peer sent before is still delivered.
        assert await sender.recv() == b"before"
        # The connector dials again, with a fresh ring: the pair works again.
        await wait_peers(sender, 1)
        await sender.send(b"again")
        with trio.fail_after(10):
            assert await receiver.recv() == b"again"


async def test_echo_across_processes_both_ways():
    for child_binds in (True, False):
        with spawn(peers.pair_echo, "shm://echo", child_binds) as child:
            async with shmsock.socket(PAIR) as pair:
                if child_binds:
                    await child.expect("ready")
                    pair.connect("shm://echo")
                else:
                    pair.bind("shm://echo")
                    await child.expect("ready")
                for i in range(1000):
                    await pair.send(b"%d" % i)
                    assert await pair.recv() == b"%d" % i
                await pair.send(b"quit")
                await child.expect("done")
                await child.finish()


async def test_sigkilled_peer_gives_broken_to_a_blocked_receiver_after_its_messages():
    with spawn(peers.pair_send_then_wait, "shm://pk", False, [b"a", b"b", b"c"]) as child:
        async with shmsock.socket(PAIR) as pair:
            pair.bind("shm://pk")
            await child.expect("ready")
            await child.expect("sent")
            assert await pair.recv() == b"a"

            async def reader():
                got = [await pair.recv(), await pair.recv()]
                assert got == [b"b", b"c"]
                with pytest.raises(trio.BrokenResourceError):
                    await pair.recv()  # blocked here until the kill

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                child.kill()


async def test_a_peer_that_dies_after_waking_a_reader_is_seen_gone_without_another_read():
    # A reader woken on its doorbell leaves the doorbell's bytes unread for
    # later (Engine.rang).  The peer's death must reach the socket all the
    # same while the task does something else: no message may go to a dead
    # peer's ring.
    with spawn(peers.pair_echo, "shm://held", True) as child:
        await child.expect("ready")
        async with shmsock.socket(PAIR, linger=0) as pair:
            pair.connect("shm://held")
            await wait_peers(pair, 1)
            got = []

            async def reader():
                got.append(await pair.recv())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await pair.send(b"ping")
            assert got == [b"ping"]
            assert seam.held(pair) is not None  # the wake-up left the doorbell unread
            child.kill()
            with trio.fail_after(10):
                while pair.peer_count:  # noqa: ASYNC110 (until the poller has seen it go)
                    await trio.sleep(0.005)
            with pytest.raises(trio.BrokenResourceError):
                pair.send_nowait(b"lost")
        async with shmsock.socket(PAIR) as heir:
            heir.bind("shm://held")  # takes over the dead binder's files


async def test_a_cancelled_direct_wait_hands_the_doorbell_back_to_the_other_waiters():
    # The first receiver waits on the peer's doorbell itself and the second
    # parks; once the first is cancelled, the second must still be woken.
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://handback")
        b.connect("shm://handback")
        await wait_peers(a, 1)
        got = []

        async def second():
            got.append(await a.recv())

        first = trio.CancelScope()

        async def direct():
            with first:
                await a.recv()

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await start_in_turn(nursery, direct, second)
                first.cancel()
                await trio.testing.wait_all_tasks_blocked()
                await b.send(b"for the second")
        assert got == [b"for the second"]


async def test_a_sender_parked_behind_a_waiting_receiver_gets_the_room_freed_with_a_reply():
    # The receiver waits on the doorbell itself, so the sender parks.  Room
    # and a reply then arrive together: the reply ends the receiver's part,
    # and the sender must still hear of the room.
    async with shmsock.socket(PAIR, ring_size=4096) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://parked")
        b.connect("shm://parked")
        await wait_peers(a, 1)
        filled = fill(a, bytes(1000))
        got, sent = [], []

        async def receiver():
            got.append(await a.recv())

        async def sender():
            await a.send(b"after")
            sent.append(True)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await start_in_turn(nursery, receiver, sender)
                assert sent == []
                for _ in range(filled):
                    b.recv_nowait()  # frees the room; a's doorbell rings SPACE
                b.send_nowait(b"reply")  # and DATA, on the same doorbell
        assert got == [b"reply"]
        assert sent == [True]
        assert await b.recv() == b"after"


async def test_sigkilled_peer_releases_a_blocked_sender_with_broken():
    with spawn(peers.pair_send_then_wait, "shm://pks", True, []) as child:
        await child.expect("ready")
        async with shmsock.socket(PAIR, linger=0) as pair:
            pair.connect("shm://pks")
            await child.expect("sent")
            with trio.fail_after(10):
                while True:  # fill the child's ring, then block
                    try:
                        pair.send_nowait(bytes(10_000))
                    except trio.WouldBlock:
                        if seam.connections(pair):
                            break
                        await trio.sleep(0.001)

            async def blocked():
                with pytest.raises(trio.BrokenResourceError):
                    await pair.send(b"never")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked)
                await trio.testing.wait_all_tasks_blocked()
                child.kill()
        # The dead binder left its lock and socket: a new bind takes them over.
        async with shmsock.socket(PAIR) as heir:
            heir.bind("shm://pks")
