"""Multipart messages, messages larger than the ring, and size limits."""

from __future__ import annotations

import os
from functools import partial

import pytest
import trio
import trio.testing
from helpers import bulkpeers, peers, seam
from helpers.conformance import fill, wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, PULL, PUSH
from shmsock._transport.shm import _wire

MiB = 1 << 20


@pytest.mark.parametrize(
    "frames",
    [
        [b"a", b"b"],
        [b"", b"", b""],
        [b"x" * 100_000, b"", b"y"],
        [b"%d" % i for i in range(1000)],
        [os.urandom(300_000), os.urandom(5), os.urandom(200_000)],
    ],
    ids=["two", "empty-frames", "mixed", "thousand-frames", "fragmented-frames"],
)
async def test_multipart_round_trip(frames):
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://mp")
        b.connect("shm://mp")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send_multipart, frames)
            assert await b.recv_multipart() == frames


async def test_recv_refuses_a_multipart_message_and_leaves_it_queued():
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://mpq")
        push.connect("shm://mpq")
        await push.send_multipart([b"1", b"2"])
        with pytest.raises(shmsock.MultipartMessage, match="2 frames"):
            await pull.recv()
        with pytest.raises(shmsock.MultipartMessage):
            pull.recv_nowait()
        assert await pull.recv_multipart() == [b"1", b"2"]


async def test_cancelled_multipart_send_sends_no_frame():
    async with shmsock.socket(PAIR, ring_size=16384) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://mpc")
        b.connect("shm://mpc")
        await wait_peers(a, 1)
        filler = fill(a, bytes(1000))  # leaves too little room for the whole message
        with trio.move_on_after(0.05) as cs:
            await a.send_multipart([b"first", bytes(3000), b"last"])
        assert cs.cancelled_caught
        for _ in range(filler):
            assert await b.recv() == bytes(1000)
        await a.send(b"after")
        assert await b.recv_multipart() == [b"after"]


async def test_a_cancelled_send_of_a_large_message_sends_nothing_at_all():
    # Frames larger than the ring go whole through the bulk region: a send
    # that has to wait for room and is cancelled sent nothing, and the
    # receiver drops nothing, whatever the size.
    async with shmsock.socket(PAIR, ring_size=16384) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://mps")
        b.connect("shm://mps")
        await wait_peers(a, 1)
        sent = []
        while True:  # b never reads: the region fills, then the send waits
            big = os.urandom(200_000)  # many times the ring
            with trio.move_on_after(0.05) as cs:
                await a.send_multipart([b"head", big])
            if cs.cancelled_caught:
                break
            sent.append([b"head", big])
        assert sent  # some went before the region was full
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send, b"next")  # waits for b to free room
            for message in sent:
                assert await b.recv_multipart() == message
            assert await b.recv_multipart() == [b"next"]  # the cancelled one never comes
        assert seam.connections(b)[0].dropped == 0


async def test_sender_killed_midway_through_a_streamed_message_delivers_no_part_of_it():
    # Only a message of thousands of frames is streamed (its records alone
    # take more than half the ring); large frames go whole through the bulk
    # region (test_bulk.py kills a sender that is writing one).
    many = [os.urandom(100) for _ in range(40_000)]
    with spawn(
        bulkpeers.pair_send_multipart_then_wait, "shm://mpk", False, [[b"before"], many]
    ) as child:
        async with shmsock.socket(PAIR) as pair:
            pair.bind("shm://mpk")
            await child.expect("ready")
            assert await pair.recv() == b"before"
            await wait_peers(pair, 1)
            peer = seam.connections(pair)[0]
            with trio.fail_after(10):
                # The child's progress shows only in shared memory: poll it.
                while peer.rx.available() < 60_000:  # noqa: ASYNC110
                    await trio.sleep(0.001)
            child.kill()
            with pytest.raises(trio.BrokenResourceError):
                await pair.recv()  # nothing more: the partial message was dropped
            assert peer.dropped == 1


@pytest.mark.parametrize("ring_size", [4096, 1 * MiB])
async def test_sixteen_mib_messages_both_directions(ring_size):
    big1, big2 = os.urandom(16 * MiB), os.urandom(16 * MiB + 7)
    async with (
        shmsock.socket(PAIR, ring_size=ring_size) as a,
        shmsock.socket(PAIR, ring_size=ring_size) as b,
    ):
        a.bind("shm://big")
        b.connect("shm://big")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send, big1)
            nursery.start_soon(b.send, big2)
            assert await b.recv() == big1
            assert await a.recv() == big2


async def test_sixteen_mib_across_processes():
    with spawn(peers.pair_echo, "shm://bigx", True) as child:
        await child.expect("ready")
        async with shmsock.socket(PAIR, ring_size=MiB) as pair:
            pair.connect("shm://bigx")
            big = os.urandom(16 * MiB)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pair.send, big)
                assert await pair.recv() == big
            await pair.send(b"quit")
            await child.expect("done")
            await child.finish()


async def test_send_larger_than_max_msg_size_is_refused_before_writing():
    async with shmsock.socket(PAIR, max_msg_size=1000) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://limit")
        b.connect("shm://limit")
        await wait_peers(a, 1)
        before = seam.connections(a)[0].tx.records
        with pytest.raises(shmsock.MessageTooLarge, match="max_msg_size 1000"):
            await a.send(bytes(1001))
        with pytest.raises(shmsock.MessageTooLarge):
            await a.send_multipart([bytes(600), bytes(401)])
        with pytest.raises(shmsock.MessageTooLarge):
            a.send_nowait(bytes(1001))
        assert seam.connections(a)[0].tx.records == before
        await a.send(bytes(1000))
        assert await b.recv() == bytes(1000)


@pytest.fixture
def older_handshakes(monkeypatch):
    """Handshakes as a build before the exchange of max_msg_size sends them:
    bytes 44 to 63 zero, so neither side states its limit."""
    pack = _wire.Handshake.pack
    monkeypatch.setattr(_wire.Handshake, "pack", lambda self: pack(self)[:44] + bytes(20))


async def test_oversized_message_from_a_peer_that_states_no_limit_is_dropped_and_counted(
    older_handshakes,
):
    """An older peer cannot know this socket's limit: what it sends over the
    limit is dropped, counted as dropped, and the link survives."""
    async with (
        shmsock.socket(PAIR, max_msg_size=64 * MiB) as a,
        shmsock.socket(PAIR, max_msg_size=MiB) as b,
    ):
        a.bind("shm://over")
        b.connect("shm://over")
        await a.send(b"small")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send, os.urandom(3 * MiB))
            nursery.start_soon(a.send_multipart, [bytes(MiB), b"x"])  # 1 MiB + 1
            assert await b.recv() == b"small"
            with trio.move_on_after(0.2):
                await b.recv()
                pytest.fail("an oversized message was delivered")
        await a.send(b"after")
        assert await b.recv() == b"after"
        assert seam.connections(b)[0].dropped == 2
        assert seam.connections(b)[0].corrupt == 0


# -- the receiver's max_msg_size, learnt at the handshake ----------------------

Over = shmsock.MessageTooLarge


async def test_push_refuses_what_its_pull_would_not_take_before_writing_anything():
    """Every way of sending, against a PULL in another process whose
    max_msg_size is 100,000: over it raises, naming the limit, and writes
    nothing; the PULL gets the next smaller messages and drops none.  The
    PUSH's ring is 16 KiB, so some of these are streamed."""
    with spawn(
        partial(peers.pull_collect, max_msg_size=100_000), "shm://limit-pull", True
    ) as child:
        await child.expect("ready")
        async with shmsock.socket(PUSH, ring_size=16384) as push:
            push.connect("shm://limit-pull")
            await wait_peers(push, 1)
            words = "exceeds the max_msg_size 100000 of its receiver"
            for send in [
                lambda: push.send(bytes(100_001)),
                lambda: push.send(bytes(150_000)),
                lambda: push.send_multipart([bytes(60_000), bytes(40_001)]),
                lambda: push.send_many([b"fits", bytes(100_001)]),
            ]:
                with pytest.raises(Over, match=words):
                    await send()
            with pytest.raises(Over, match=words):
                push.send_nowait(bytes(100_001))
            with pytest.raises(Over, match=words):
                push.send_multipart_nowait([bytes(1), bytes(100_000)])
            with pytest.raises(Over, match=words):
                push.send_many_nowait([bytes(100_001), b"fits"])
            assert seam.connections(push)[0].tx.records == 0  # nothing was written
            await push.send(bytes(100_000))  # the limit itself, streamed
            await push.send(bytes(5))
            push.send_nowait(bytes(6))
            await push.send_multipart([bytes(60_000), bytes(40_000)])
            await push.send_many([bytes(7), bytes(8)])
            child.send("report")
            got, dropped = await child.recv()
            assert got == [[100_000], [5], [6], [60_000, 40_000], [7], [8]]
            assert dropped == 0
            await child.finish()


async def test_push_sends_each_message_to_a_peer_that_accepts_it():
    """Two PULLs in other processes, one taking up to 1,000 bytes and one up
    to 100,000: large messages all go to the second, small ones to both;
    one larger than both raises, naming the larger limit.  Once the second
    PULL is gone, what only it could take raises, naming the first's."""
    small = spawn(partial(peers.pull_collect, max_msg_size=1000), "shm://limit-two", False)
    large = spawn(partial(peers.pull_collect, max_msg_size=100_000), "shm://limit-two", False)
    try:
        async with shmsock.socket(PUSH) as push:
            push.bind("shm://limit-two")
            await small.expect("ready")
            await large.expect("ready")
            await wait_peers(push, 2)
            for i in range(20):
                await push.send(bytes(5000 + i))
                await push.send(bytes(10 + i))
            with pytest.raises(Over, match="every connected peer \\(the largest is 100000\\)"):
                await push.send(bytes(100_001))
            small.send("report")
            large.send("report")
            (got_small, dropped_small), (got_large, dropped_large) = (
                await small.recv(),
                await large.recv(),
            )
            assert dropped_small == dropped_large == 0
            assert all(n <= 1000 for [n] in got_small) and got_small
            assert sorted(got_small + got_large) == sorted(
                [[5000 + i] for i in range(20)] + [[10 + i] for i in range(20)]
            )
            await large.finish()
            await trio.testing.wait_all_tasks_blocked()  # the PUSH has seen it go
            assert push.peer_count == 1
            with pytest.raises(Over, match="exceeds the max_msg_size 1000 of its receiver"):
                await push.send(bytes(5000))
            await push.send(bytes(1000))
            small.send("report")
            assert await small.recv() == ([[1000]], 0)
            await small.finish()
    finally:
        small.close()
        large.close()


async def test_with_no_peer_a_send_waits_and_raises_once_a_peer_that_refuses_it_attaches():
    async with shmsock.socket(PUSH) as push:
        push.connect("shm://limit-late")
        outcome = []

        async def send_large() -> None:
            with pytest.raises(Over, match="exceeds the max_msg_size 1000 of its receiver"):
                await push.send(bytes(2000))
            outcome.append("raised")

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_large)
                await trio.testing.wait_all_tasks_blocked()
                assert outcome == []  # no peer yet: it waits, as any send does
                async with shmsock.socket(PULL, max_msg_size=1000) as pull:
                    pull.bind("shm://limit-late")
                    await wait_peers(push, 1)
                    await push.send(bytes(1000))
                    assert await pull.recv() == bytes(1000)
        assert outcome == ["raised"]


async def test_req_refuses_a_request_its_rep_would_not_take_and_can_send_again():
    with spawn(
        partial(peers.rep_server, max_msg_size=1000), "shm://limit-rep", True, "srv"
    ) as child:
        await child.expect("ready")
        async with shmsock.socket(shmsock.REQ) as req:
            req.connect("shm://limit-rep")
            await wait_peers(req, 1)
            with pytest.raises(Over, match="exceeds the max_msg_size 1000 of its receiver"):
                await req.send(bytes(1001))
            with pytest.raises(Over, match="max_msg_size 1000"):
                req.send_multipart_nowait([bytes(600), bytes(401)])
            await req.send(bytes(996))  # still free to send: nothing was sent
            assert await req.recv() == b"srv:" + bytes(996)  # 1000 bytes, the REP's limit
            await req.send(b"quit")
            assert await req.recv() == b"srv:quit"
            await child.expect("done")
            await child.finish()


async def test_rep_refuses_a_reply_its_req_would_not_take_and_still_owes_it():
    with spawn(
        partial(peers.req_client, max_msg_size=1000), "shm://limit-req", False, "c", 1
    ) as child:
        async with shmsock.socket(shmsock.REP) as rep:
            rep.bind("shm://limit-req")
            await child.expect("ready")
            assert await rep.recv() == b"c-0"
            with pytest.raises(Over, match="exceeds the max_msg_size 1000 of its receiver"):
                await rep.send(bytes(1001))
            with pytest.raises(Over, match="max_msg_size 1000"):
                await rep.send_multipart([bytes(600), bytes(401)])
            with pytest.raises(shmsock.StateError, match="must send the reply"):
                rep.recv_nowait()  # it still owes the reply
            await rep.send(bytes(1000))
            assert await child.recv() == [bytes(1000)]
            await child.finish()


async def test_pair_refuses_what_its_peer_would_not_take():
    async with (
        shmsock.socket(PAIR) as a,
        shmsock.socket(PAIR, max_msg_size=1000) as b,
    ):
        a.bind("shm://limit-pair")
        b.connect("shm://limit-pair")
        await wait_peers(a, 1)
        with pytest.raises(Over, match="exceeds the max_msg_size 1000 of its receiver"):
            a.send_nowait(bytes(1001))
        with pytest.raises(Over, match="exceeds the max_msg_size 1000 of its receiver"):
            await a.send_many([bytes(1001)])
        await a.send(bytes(1000))
        assert await b.recv() == bytes(1000)


async def test_send_nowait_sends_large_messages_and_refuses_only_thousands_of_frames():
    # Large frames go whole through the bulk region, so send_nowait sends
    # them when there is room.  What only streaming can send is a message
    # whose records alone take more than half the ring (shm://'s limit,
    # from its first endpoint, with or without a peer).
    async with shmsock.socket(PAIR, ring_size=16384) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://nowait-big")
        with pytest.raises(shmsock.MessageTooLarge, match="use await send"):
            a.send_multipart_nowait([b"x"] * 300)
        b.connect("shm://nowait-big")
        await wait_peers(a, 1)
        big = os.urandom(10 * MiB)
        a.send_nowait(big)
        a.send_multipart_nowait([b"small", big])
        assert await b.recv() == big
        assert await b.recv_multipart() == [b"small", big]


# -- async for ---------------------------------------------------------------


async def test_async_for_lets_other_tasks_run_while_messages_wait():
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://iter")
        push.connect("shm://iter")
        await push.send_many([b"%d" % i for i in range(640)])
        rounds = 0

        async def other_task() -> None:
            nonlocal rounds
            while True:
                await trio.lowlevel.checkpoint()
                rounds += 1

        got = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_task)
            await trio.lowlevel.checkpoint()  # let it start
            before = rounds
            async for msg in pull:
                got.append(msg)
                if len(got) == 640:
                    break
            ran = rounds - before
            nursery.cancel_scope.cancel()
        assert got == [b"%d" % i for i in range(640)]
        # A full checkpoint at least once per ITER_BATCH + 1 messages; the
        # other task's count lags its last round by one.
        assert ran >= 640 // (shmsock.Socket.ITER_BATCH + 1) - 1


async def test_async_for_cancelled_takes_nothing_and_break_keeps_the_rest():
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://iterc")
        push.connect("shm://iterc")
        await push.send_many([b"%d" % i for i in range(20)])
        await pull.recv()  # "0": the rest is read ahead into the socket
        got = []
        with trio.CancelScope() as scope:
            scope.cancel()
            got.extend([msg async for msg in pull])
        assert got == []
        async for msg in pull:
            got.append(msg)
            if len(got) == 5:
                break
        assert got == [b"1", b"2", b"3", b"4", b"5"]
        assert await pull.recv() == b"6"


async def test_async_for_ends_when_the_socket_is_closed():
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://iterx")
        push.connect("shm://iterx")
        await push.send(b"last")
        got = []
        async with trio.open_nursery() as nursery:

            async def consume() -> None:
                got.extend([msg async for msg in pull])

            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            await pull.aclose()
        assert got == [b"last"]
