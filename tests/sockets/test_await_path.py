"""The per-message ``await`` path and ``schedule_every_us`` (issue 22).

What a program relies on: every ``await send()`` / ``await recv()`` checks
for cancellation, whatever ``schedule_every_us`` says; a stream of calls
that never wait still lets the other tasks run, and still ends at a
deadline; 0 makes every call a full checkpoint.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import shmsock
from shmsock import PAIR

RING = 1 << 20


async def _pair(name: str, **options: object) -> tuple[shmsock.Socket, shmsock.Socket]:
    a = shmsock.socket(PAIR, ring_size=RING, **options)
    b = shmsock.socket(PAIR, ring_size=RING, **options)
    a.bind(f"shm://{name}")
    b.connect(f"shm://{name}")
    await b.send(b"hello")
    assert await a.recv() == b"hello"
    return a, b


@pytest.mark.parametrize("every", [100, 1_000_000])
async def test_a_cancelled_scope_stops_the_next_call_whatever_schedule_every_us_says(every):
    a, b = await _pair("await-cancel", schedule_every_us=every)
    async with a, b:
        await b.send(b"queued")
        with trio.CancelScope() as cs:
            cs.cancel()
            await b.send(b"never")  # the ring has room: only the check stops it
        assert cs.cancelled_caught
        with trio.CancelScope() as cs:
            cs.cancel()
            await a.recv()  # a message is there: only the check stops it
        assert cs.cancelled_caught
        assert await a.recv() == b"queued"  # the cancelled recv took nothing
        with pytest.raises(trio.WouldBlock):
            a.recv_nowait()  # and the cancelled send sent nothing


async def test_a_stream_that_never_waits_still_lets_other_tasks_run():
    a, b = await _pair("await-fair")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with a, b, trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.lowlevel.checkpoint()  # the ticker has started
        before = ticks
        # 2,000 round trips through one task, each of which finds its
        # message or its room at once: no call waits.
        for i in range(2000):
            await b.send(b"%d" % i)
            assert await a.recv() == b"%d" % i
        assert ticks > before
        nursery.cancel_scope.cancel()


async def test_a_deadline_ends_a_stream_that_never_waits():
    a, b = await _pair("await-deadline", schedule_every_us=1000)
    async with a, b:
        sent = 0
        with trio.CancelScope() as scope:
            while True:  # never waits: every message and room are there at once
                await b.send(b"x")
                await a.recv()
                sent += 1
                if sent == 1:
                    # The deadline is set once the stream runs: a stall of a
                    # loaded machine before the first round cannot end the
                    # loop before it began.
                    scope.deadline = trio.current_time() + 0.05
        assert scope.cancelled_caught and sent > 0


async def test_zero_makes_every_call_a_full_checkpoint():
    a, b = await _pair("await-strict", schedule_every_us=0)
    async with a, b:
        for _ in range(3):
            with trio.testing.assert_checkpoints():
                await b.send(b"x")
            with trio.testing.assert_checkpoints():
                assert await a.recv() == b"x"


async def test_calls_that_do_not_wait_skip_schedule_points_within_schedule_every_us():
    # The latitude that makes the await path fast: calls that do not wait
    # check for cancellation (trio counts that as a checkpoint) but are not
    # all schedule points, so another task does not run between them.  (A
    # long interval, so that the clock cannot make this pass or fail.)
    a, b = await _pair("await-pace", schedule_every_us=1_000_000)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with a, b, trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.lowlevel.checkpoint()  # the ticker has started
        await b.send(b"0")  # one message ahead: every recv below finds one
        before = ticks
        for i in range(100):
            await b.send(b"%d" % i)
            assert await a.recv() == b"%d" % max(i - 1, 0)
        assert ticks == before
        nursery.cancel_scope.cancel()


async def _ticking(nursery: trio.Nursery) -> list[int]:
    """A task that counts its turns: ``ticks[0]`` grows whenever it runs."""
    ticks = [0]

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await trio.lowlevel.checkpoint()

    nursery.start_soon(ticker)
    await trio.lowlevel.checkpoint()  # the ticker has started
    return ticks


@pytest.mark.parametrize("size", [1024, 200 * 1024])  # in the ring, in the bulk region
async def test_loans_follow_the_same_rule(size):
    # ``async with sock.loan(n)`` is a send: its start checks for
    # cancellation on every call and, with 0, is a full checkpoint.  (Its
    # end, which has sent, is a shielded schedule point: not observable
    # here, since Trio may run this task again before the others.)  Within
    # schedule_every_us, loans that find room at once let no other task run
    # between them.
    strict_a, strict_b = await _pair(f"await-loan0-{size}", schedule_every_us=0)
    async with strict_a, strict_b:
        for i in range(3):
            block = strict_b.loan(size)
            with trio.testing.assert_checkpoints():
                buf = await block.__aenter__()
            buf[:1] = b"%d" % i
            await block.__aexit__(None, None, None)
            assert (await strict_a.recv())[:1] == b"%d" % i

    a, b = await _pair(f"await-loan-{size}", schedule_every_us=1_000_000)
    async with a, b, trio.open_nursery() as nursery:
        with trio.CancelScope() as cs:
            cs.cancel()
            async with b.loan(size) as buf:
                buf[:5] = b"never"
        assert cs.cancelled_caught
        with pytest.raises(trio.WouldBlock):
            a.recv_nowait()  # the cancelled loan sent nothing
        ticks = await _ticking(nursery)
        # One loan first: if the pace asks for a schedule point (a loaded
        # machine may have stalled since the last one), it is taken here.
        async with b.loan(size) as buf:
            buf[:1] = b"-"
        assert (await a.recv())[:1] == b"-"
        before = ticks[0]
        for i in range(3):  # a 1 MiB ring and its region hold three
            async with b.loan(size) as buf:
                buf[:1] = b"%d" % i
        assert ticks[0] == before
        for i in range(3):
            assert (await a.recv())[:1] == b"%d" % i
        nursery.cancel_scope.cancel()
