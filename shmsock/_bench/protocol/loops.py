"""The loops of the figures: receiving, sending and timing round trips.

Throughput loops are written once, as coroutines: a peer with a blocking API
passes coroutine functions that never suspend, and ``drive`` runs them
without an event loop.  A *chunk* moves some messages and returns how many
(``one_by_one`` and ``send_each`` build them for a peer that moves one
message per call); ``receive_window`` and ``send_window`` run one measured
window of chunks (the conversation around them is in ``wire.py``).
Round-trip loops time each round, so they come in a plain and an async
version (``rounds_sync``, ``rounds_async``), without a call in between.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from .messages import STOP, Checker, Mismatch, Pool, end_message, now, summary

Params = dict[str, Any]
T = TypeVar("T")

Chunk = Callable[[], Awaitable[int]]
EndSender = Callable[[bytes], Awaitable[None]]


def one_by_one(recv: Callable[[], bytes], checker: Checker, per: int) -> Chunk:
    """The receiving loop of a peer that receives one message per call.

    Each message is checked as it comes (then dropped, as an application
    would), against ``checker.next``: a C call and a C comparison, so that
    checking costs every such peer the same few tens of nanoseconds.
    Collecting messages in lists first would change how the peer uses
    memory, and measurably slowed pyzmq's receiver.  Large messages
    (stamps only) go in short lists to ``take``.
    """
    size = checker.size
    nexts = checker.next
    if checker.stamps and not checker.given_stamps:
        per = min(per, 16)

        async def listed() -> int:
            got: list[bytes] = []
            for _ in range(per):
                m = recv()
                got.append(m)
                if len(m) != size:
                    break
            return checker.take(got)

        return listed
    if checker.senders == 1:

        async def single() -> int:
            nxt = nexts[0]
            n = 0
            for _ in range(per):
                m = recv()
                e = nxt()
                if m != e:
                    return checker.odd(m, e, n)
                n += 1
            return checker.count(n)

        return single

    async def several() -> int:
        n = 0
        for _ in range(per):
            m = recv()
            try:
                e = nexts[m[4]]()  # the sender's id is the stamp's fifth byte
            except IndexError:
                return checker.odd(m, None, n)
            if m != e:
                return checker.odd(m, e, n)
            n += 1
        return checker.count(n)

    return several


def send_each(send: Callable[[bytes], object], pool: Pool, per: int) -> tuple[Chunk, EndSender]:
    """The sending loop of a peer that sends one message per blocking call, and its END."""

    async def chunk() -> int:
        for m in pool.take(per):
            send(m)
        return per

    async def send_end(m: bytes) -> None:
        send(m)

    return chunk, send_end


def one_by_one_async(recv: Callable[[], Awaitable[bytes]], checker: Checker, per: int) -> Chunk:
    """one_by_one for a peer whose receive is awaited (one sender)."""
    size = checker.size
    nexts = checker.next
    if checker.senders != 1:
        raise ValueError("one_by_one_async takes one sender")
    if checker.stamps and not checker.given_stamps:
        per = min(per, 16)

        async def listed() -> int:
            got: list[bytes] = []
            for _ in range(per):
                m = await recv()
                got.append(m)
                if len(m) != size:
                    break
            return checker.take(got)

        return listed

    async def single() -> int:
        nxt = nexts[0]
        n = 0
        for _ in range(per):
            m = await recv()
            e = nxt()
            if m != e:
                return checker.odd(m, e, n)
            n += 1
        return checker.count(n)

    return single


# -- running coroutines without an event loop ------------------------------------


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (a blocking peer's loop) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a blocking peer's loop tried to suspend")


# -- throughput -------------------------------------------------------------------


async def receive_window(conn: Connection, chunk: Chunk, checker: Checker, p: Params) -> None:
    """One measured window of a throughput receiver (see the module's docstring).

    *chunk* receives some messages (at least one, and none after the
    last sender's END), checks them with *checker* and returns how many
    data messages there were.  The window starts with the first message.
    """
    checker.reset()
    conn.send("armed")
    await chunk()
    warm_until = now() + p["warmup"]
    while not checker.done and now() < warm_until:
        await chunk()
    conn.send("measuring")
    n = 0
    t0 = now()
    until = t0 + p["seconds"]
    while not checker.done and now() < until:
        n += await chunk()
    seconds = now() - t0
    result: dict[str, Any] = {"messages": n, "seconds": seconds}
    if checker.waits:
        result["quiet"] = summary(checker.waits)
    conn.send(("result", result))
    while not checker.done:
        await chunk()
    conn.send(("done", checker.report()))


async def send_window(
    conn: Connection,
    chunk: Chunk,
    send_end: EndSender,
    p: Params,
    sid: int = 0,
    too_large: tuple[type[BaseException], ...] = (),
) -> None:
    """One window of a throughput sender: chunks until told to stop, then END.

    *chunk* sends some messages and returns how many.  An exception in
    *too_large* from the first chunk means this way cannot send messages of
    this size at all: the END goes out at once and the answer says why.
    """
    count = 0
    na = None
    until = now() + p["max_seconds"]
    try:
        while not conn.poll() and now() < until:
            count += await chunk()
    except too_large as exc:
        if count:
            raise
        na = str(exc) or type(exc).__name__
    await send_end(end_message(p["size"], sid, count))
    conn.send(("stopped", {"count": count, "na": na}))


# -- round trips -------------------------------------------------------------------


def _rounds_done(i: int, rounds: int, until: float) -> bool:
    return i >= rounds or (i & 63 == 0 and now() >= until)


def rounds_sync(
    send: Callable[[bytes], object], recv: Callable[[], bytes], p: Params
) -> dict[str, Any]:
    """Time round trips of a blocking peer: *send* a message, *recv* its echo."""
    pool = Pool(p["size"]).messages
    length = len(pool)
    warm_until = now() + p["warmup_seconds"]
    for i in range(p["warmup_rounds"]):
        m = pool[i % length]
        send(m)
        if recv() != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        if i & 15 == 15 and now() > warm_until:
            break
    samples = array("q")
    clock = time.perf_counter_ns
    until = now() + p["max_seconds"]
    rounds = p["rounds"]
    i = 0
    while not _rounds_done(i, rounds, until):
        m = pool[i % length]
        t0 = clock()
        send(m)
        r = recv()
        samples.append(clock() - t0)
        if r != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        i += 1
    send(STOP)
    if recv() != STOP:
        raise Mismatch("the server did not return the stop message")
    return {"samples": samples.tobytes()}


async def rounds_async(
    send: Callable[[bytes], Awaitable[object]], recv: Callable[[], Awaitable[bytes]], p: Params
) -> dict[str, Any]:
    """rounds_sync for a peer whose calls are awaited."""
    pool = Pool(p["size"]).messages
    length = len(pool)
    warm_until = now() + p["warmup_seconds"]
    for i in range(p["warmup_rounds"]):
        m = pool[i % length]
        await send(m)
        if await recv() != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        if i & 15 == 15 and now() > warm_until:
            break
    samples = array("q")
    clock = time.perf_counter_ns
    until = now() + p["max_seconds"]
    rounds = p["rounds"]
    i = 0
    while not _rounds_done(i, rounds, until):
        m = pool[i % length]
        t0 = clock()
        await send(m)
        r = await recv()
        samples.append(clock() - t0)
        if r != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        i += 1
    await send(STOP)
    if await recv() != STOP:
        raise Mismatch("the server did not return the stop message")
    return {"samples": samples.tobytes()}
