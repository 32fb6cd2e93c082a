"""Multipart messages, messages larger than the ring, and size limits."""

from __future__ import annotations

import os

import peers
import pytest
import trio
import trio.testing
from conformance import fill, wait_peers
from procs import spawn

import shmsock
from shmsock import PAIR, PULL, PUSH

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


async def test_cancelled_streaming_send_is_never_delivered_in_part():
    async with shmsock.socket(PAIR, ring_size=16384) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://mps")
        b.connect("shm://mps")
        await wait_peers(a, 1)
        big = os.urandom(200_000)  # many times the ring: streamed
        with trio.move_on_after(0.1) as cs:
            await a.send_multipart([b"head", big])  # b never reads: it stalls
        assert cs.cancelled_caught
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send, b"next")  # waits for b to drain the fragments
            assert await b.recv_multipart() == [b"next"]  # the stalled message is dropped
        peer = b._engine.peers[0]
        assert peer.dropped == 1


async def test_sender_killed_midway_through_a_message_delivers_no_part_of_it():
    child = spawn(peers.pair_send_then_wait, "shm://mpk", False, [b"before", os.urandom(4 * MiB)])
    try:
        async with shmsock.socket(PAIR) as pair:
            pair.bind("shm://mpk")
            await child.expect("ready")
            assert await pair.recv() == b"before"
            await wait_peers(pair, 1)
            peer = pair._engine.peers[0]
            with trio.fail_after(10):
                # The child's progress shows only in shared memory: poll it.
                while peer.rx.available() < 60_000:  # noqa: ASYNC110
                    await trio.sleep(0.001)
            child.kill()
            with pytest.raises(trio.BrokenResourceError):
                await pair.recv()  # nothing more: the partial message was dropped
            assert peer.dropped == 1
    finally:
        child.close()


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
    child = spawn(peers.pair_echo, "shm://bigx", True)
    try:
        await child.expect("ready")
        async with shmsock.socket(PAIR, ring_size=MiB) as pair:
            pair.connect("shm://bigx")
            big = os.urandom(16 * MiB)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pair.send, big)
                assert await pair.recv() == big
            await pair.send(b"quit")
            await child.expect("done")
            child.send("exit")
            assert await child.join() == 0
    finally:
        child.close()


async def test_send_larger_than_max_msg_size_is_refused_before_writing():
    async with shmsock.socket(PAIR, max_msg_size=1000) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://limit")
        b.connect("shm://limit")
        await wait_peers(a, 1)
        before = a._engine.peers[0].tx.records
        with pytest.raises(shmsock.MessageTooLarge, match="max_msg_size 1000"):
            await a.send(bytes(1001))
        with pytest.raises(shmsock.MessageTooLarge):
            await a.send_multipart([bytes(600), bytes(401)])
        with pytest.raises(shmsock.MessageTooLarge):
            a.send_nowait(bytes(1001))
        assert a._engine.peers[0].tx.records == before
        await a.send(bytes(1000))
        assert await b.recv() == bytes(1000)


async def test_oversized_incoming_message_is_dropped_counted_and_the_link_survives():
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
        assert b._engine.peers[0].corrupt == 2


async def test_send_nowait_refuses_what_only_streaming_can_send():
    async with shmsock.socket(PAIR, ring_size=16384) as a:
        with pytest.raises(shmsock.MessageTooLarge, match="use await send"):
            a.send_nowait(bytes(10_000))


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
