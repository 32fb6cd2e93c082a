"""The fast paths of ``await send()`` and ``await recv()`` over tcp://, under Trio's rules.

``await send()`` of a plain message hands it to libzmq at once when the
pipe at the head of the send queue has room (one zmq_send, DONTWAIT), and
``await recv()`` pops what libzmq's batch call already brought into the
pipe's inbox; each then takes one schedule point without parking.  What
must hold all the same: a call in a cancelled scope sends and takes
nothing, each call is a schedule point, the EVENTS rule keeps a parked
task from sleeping through what arrived (lock-step and windowed
exchanges, where a wrong rule hangs), and cancellation at random points
loses and duplicates nothing.  The peers are pyzmq sockets in other
processes.
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from zmq_helpers import LOOPBACK, peer, zsocket

from shmsock import PAIR, PULL, PUSH

pytestmark = pytest.mark.timeout(90)


async def test_a_send_in_a_cancelled_scope_sends_nothing_though_there_is_room():
    async with (
        zsocket(PUSH) as push,
        peer("collect", LOOPBACK, True, "PULL") as theirs,
    ):
        push.connect(theirs.endpoint)
        await push.send(b"first")  # the pipe is there and has room: the fast path
        with trio.CancelScope() as cs:
            cs.cancel()
            await push.send(b"cancelled")
        assert cs.cancelled_caught
        with trio.testing.assert_checkpoints():
            await push.send(b"last")
        await push.send(b"END")
        assert await theirs.expect("got") == [[b"first"], [b"last"]]
        theirs.send("exit")


async def test_a_recv_in_a_cancelled_scope_takes_nothing_though_messages_wait():
    sent = [[b"m%d" % i] for i in range(10)]
    async with (
        zsocket(PULL) as pull,
        peer("source", LOOPBACK, True, "PUSH", sent) as theirs,
    ):
        pull.schedule_every_us = 0  # a schedule point on every call (assert_checkpoints)
        pull.connect(theirs.endpoint)
        await theirs.expect("sent")
        assert await pull.recv() == b"m0"  # the rest came with it, into the inbox
        for _ in range(3):
            with trio.CancelScope() as cs:
                cs.cancel()
                await pull.recv()
            assert cs.cancelled_caught
        for i in range(1, 10):
            with trio.testing.assert_checkpoints():
                assert await pull.recv() == b"m%d" % i
        theirs.send("exit")


async def test_ready_sends_and_receives_let_other_tasks_run():
    # Each call is a schedule point: a task that only sends and receives
    # messages that are ready never starves the others.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    sent = [[b"m%d" % i] for i in range(200)]
    async with (
        zsocket(PULL) as pull,
        zsocket(PUSH) as push,
        peer("source", LOOPBACK, True, "PUSH", sent) as source,
        peer("collect", LOOPBACK, True, "PULL") as sink,
    ):
        # Every call a schedule point, as counted below (by default, one at
        # least every schedule_every_us: tests/sockets/test_await_path.py).
        pull.schedule_every_us = push.schedule_every_us = 0
        pull.connect(source.endpoint)
        push.connect(sink.endpoint)
        await source.expect("sent")
        await push.wait_peers(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()  # the ticker runs from here on
            before = ticks
            got = [await pull.recv() for _ in range(200)]
            middle = ticks
            for i in range(200):
                await push.send(b"s%d" % i)
            after = ticks
            nursery.cancel_scope.cancel()
        assert got == [m[0] for m in sent]
        # (Without a schedule point per call, the ticker would run only
        # when a call parked: a few times in all.)
        assert middle - before >= 100
        assert after - middle >= 100
        await push.send(b"END")
        assert await sink.expect("got") == [[b"s%d" % i] for i in range(200)]
        source.send("exit")
        sink.send("exit")


async def test_cancelled_plain_receives_take_nothing_and_every_message_is_taken_once():
    # One-frame messages only, so that recv() takes its fast path whenever
    # the inbox holds something; the small high-water marks make it park too.
    rng = random.Random(23)
    sent = [[b"m%d" % i] for i in range(3000)]
    got: list[bytes] = []
    cancelled = 0
    async with (
        zsocket(PULL, rcvhwm=4) as pull,
        peer("source", LOOPBACK, True, "PUSH", sent, {"SNDHWM": 4}) as theirs,
    ):
        pull.connect(theirs.endpoint)
        with trio.fail_after(30):
            while len(got) < len(sent):
                with trio.move_on_after(rng.choice((0, 0, 1e-5, 1e-4, 1e-3, 1))) as scope:
                    got.append(await pull.recv())
                cancelled += scope.cancelled_caught
        assert got == [m[0] for m in sent]
        assert cancelled > 0
        theirs.send("exit")


@pytest.mark.parametrize("window", [1, 3, 16])
@pytest.mark.parametrize("ours_bind", [True, False], ids=["ours-binds", "theirs-binds"])
async def test_a_duplex_pair_cancelled_at_random_points_loses_and_duplicates_nothing(
    window, ours_bind
):
    # One task sends while at most *window* messages are unanswered, another
    # receives the echoes; both are cancelled at random points, parked or
    # not.  A cancelled send sent nothing (its echo never comes) and a
    # cancelled receive took nothing, so the echoes are exactly the sends
    # that returned, in order.  With window 1 it is lock-step: a receiver
    # that missed a wake-up hangs here.
    rng = random.Random(window)
    count = 1500
    sent: list[bytes] = []
    got: list[bytes] = []
    cancelled = {"send": 0, "recv": 0}
    async with zsocket(PAIR, sndhwm=8, rcvhwm=8) as pair:
        options = {"SNDHWM": 8, "RCVHWM": 8}
        if ours_bind:
            cm = peer("echo", pair.bind(LOOPBACK), False, "PAIR", options)
        else:
            cm = peer("echo", LOOPBACK, True, "PAIR", options)
        async with cm as theirs:
            if not ours_bind:
                pair.connect(theirs.endpoint)
            room = trio.Semaphore(window)
            sending_done = trio.Event()

            async def sender() -> None:
                for i in range(count):
                    await room.acquire()
                    with trio.move_on_after(rng.choice((0, 1e-5, 1e-4, 1))) as scope:
                        await pair.send(b"%d" % i)
                        sent.append(b"re:%d" % i)
                    if scope.cancelled_caught:
                        cancelled["send"] += 1
                        room.release()  # nothing went: nothing to wait for
                sending_done.set()

            async def receiver() -> None:
                while not (sending_done.is_set() and len(got) == len(sent)):
                    with trio.move_on_after(rng.choice((0, 1e-5, 1e-4, 1e-2))) as scope:
                        got.append(await pair.recv())
                        room.release()
                    if scope.cancelled_caught:
                        cancelled["recv"] += 1
                        await trio.lowlevel.checkpoint()

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receiver)
                    nursery.start_soon(sender)
            assert got == sent
            assert cancelled["send"] > 0 and cancelled["recv"] > 0
            assert len(sent) > count // 2
            theirs.send("exit")
