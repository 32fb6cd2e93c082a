"""The EVENTS discipline (``shmsock._transport.zmq``, rules 2-5), where a wrong rule hangs.

libzmq's descriptor stops signalling once any call into the socket has
processed its commands: a send made by one task can consume the "a message
arrived" signal another task is parked on.  A free-running flood never
shows it (the next send's Again looks at EVENTS again, and wakes the
receiver by luck); what shows it is a quiet moment right after a send,
while a receiver is parked: one task sending, another receiving, a few
messages in flight.  These tests make exactly that, against an echo peer
in another process.  With rule 3 (read EVENTS after a call when the other
direction is marked not ready) taken out, they hang (see the report of
issue 21 for that run).
"""

from __future__ import annotations

import time

import pytest
import trio
from zmq_helpers import LOOPBACK, peer, zsocket

from shmsock import PAIR, REQ

pytestmark = pytest.mark.timeout(60)


async def duplex(sock, count: int, window: int) -> list[bytes]:
    """One task sends while at most *window* messages are unanswered; another receives."""
    got: list[bytes] = []
    room = trio.Semaphore(window)

    async def sender() -> None:
        for i in range(count):
            await room.acquire()
            await sock.send(b"%d" % i)

    async def receiver() -> None:
        while len(got) < count:
            got.append(await sock.recv())
            room.release()

    with trio.fail_after(20):  # a lost wake-up hangs here
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            nursery.start_soon(sender)
    return got


@pytest.mark.parametrize(
    ("window", "hwm"), [(1, 100), (2, 100), (8, 100), (64, 4)], ids=["1", "2", "8", "64-full"]
)
@pytest.mark.parametrize("ours_bind", [True, False], ids=["ours-binds", "theirs-binds"])
async def test_duplex_pair_with_a_few_messages_in_flight(window, hwm, ours_bind):
    # With 64 in flight and high-water marks of 4, sends wait for room too.
    count = 3000
    theirs_options = {"SNDHWM": hwm, "RCVHWM": hwm}
    async with zsocket(PAIR, sndhwm=hwm, rcvhwm=hwm) as pair:
        if ours_bind:
            cm = peer("echo", pair.bind(LOOPBACK), False, "PAIR", theirs_options)
        else:
            cm = peer("echo", LOOPBACK, True, "PAIR", theirs_options)
        async with cm as theirs:
            if not ours_bind:
                pair.connect(theirs.endpoint)
            got = await duplex(pair, count, window)
            assert got == [b"re:%d" % i for i in range(count)]
            theirs.send("exit")


@pytest.mark.parametrize("ours_bind", [True, False], ids=["ours-binds", "theirs-binds"])
async def test_a_send_after_a_quiet_moment_does_not_strand_a_parked_receiver(ours_bind):
    # The quiet moment made on purpose: the sender holds the Trio thread
    # (a blocking sleep, so that no other task runs) while the echo of its
    # last message arrives and libzmq signals it.  Its next send then comes
    # more than libzmq's command throttle (about 1 ms) after the last, so
    # it processes the mailbox and consumes that signal, with the receiver
    # parked.  Only EVENTS can tell then (rule 3).
    count, window = 40, 2
    async with zsocket(PAIR) as pair:
        if ours_bind:
            cm = peer("echo", pair.bind(LOOPBACK), False, "PAIR")
        else:
            cm = peer("echo", LOOPBACK, True, "PAIR")
        async with cm as theirs:
            if not ours_bind:
                pair.connect(theirs.endpoint)
            await pair.send(b"warm-up")
            assert await pair.recv() == b"re:warm-up"
            got: list[bytes] = []
            room = trio.Semaphore(window)

            async def sender() -> None:
                for i in range(count):
                    await room.acquire()
                    await pair.send(b"%d" % i)
                    time.sleep(0.004)  # noqa: ASYNC251 - on purpose: no task runs meanwhile

            async def receiver() -> None:
                while len(got) < count:
                    got.append(await pair.recv())
                    room.release()

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receiver)
                    nursery.start_soon(sender)
            assert got == [b"re:%d" % i for i in range(count)]
            theirs.send("exit")


async def test_lock_step_requests_from_one_task():
    async with zsocket(REQ) as req, peer("echo", LOOPBACK, True, "REP") as theirs:
        req.connect(theirs.endpoint)
        with trio.fail_after(20):
            for i in range(2000):
                await req.send(b"%d" % i)
                assert await req.recv() == b"re:%d" % i
        theirs.send("exit")


async def test_a_receiver_parked_before_the_first_message_is_woken():
    # Rule 2: a pipe's first EVENTS; the descriptor never signals what was
    # there before anyone looked.
    async with zsocket(PAIR) as pair, peer("echo", LOOPBACK, True, "PAIR") as theirs:
        pair.connect(theirs.endpoint)
        async with trio.open_nursery() as nursery:
            got: list[bytes] = []

            async def receive() -> None:
                got.append(await pair.recv())

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            await pair.send(b"hello")
        assert got == [b"re:hello"]
        theirs.send("exit")
