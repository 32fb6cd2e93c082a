"""Writers that end in every way a process can, for tests/robustness/test_linger.py.

Each runs in another OS process (see procs.py), sends numbered messages,
reports how many of its sends returned, and then ends as the test says
(when the test says so):

``close``
    calls the synchronous ``close()``, reports "closed", and stays alive
    until told to exit;
``aclose``
    leaves its ``async with``, so ``aclose()`` waits out its ``linger``,
    reports "closed", and stays alive until told to exit;
``exit``
    leaves its ``async with`` and returns: the process exits with status 0;
``sigterm``
    waits to be sent SIGTERM, which it does not handle (the default action
    ends the process);
``sigterm-cancel``
    waits to be sent SIGTERM, which it handles as a Trio program does: the
    handler cancels the main task, so ``async with`` is left by a
    cancellation, and the process exits with status 0;
``sigkill``
    waits to be SIGKILLed.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import trio

import shmsock

#: The linger the writers use: far shorter than the test's reader, which
#: reads nothing until the writer has ended.
LINGER = 0.05
ENDS = ("close", "aclose", "exit", "sigterm", "sigterm-cancel", "sigkill")


def message(n: int, size: int) -> bytes:
    """Message number *n*: its number in 8 digits, padded to *size* bytes."""
    head = b"%08d" % n
    return head + bytes(size - len(head))


def number(msg: bytes) -> int:
    return int(msg[:8])


def _attach(sock: shmsock.Socket, endpoint: str, bind: bool) -> None:
    if bind:
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)


def _run(conn: Connection, end: str, body: Callable[[], Awaitable[None]]) -> None:
    """trio.run(*body*), with SIGTERM cancelling it for ``sigterm-cancel``."""

    async def main() -> None:
        if end != "sigterm-cancel":
            await body()
            return
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def on_sigterm() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(on_sigterm)
                await body()
                nursery.cancel_scope.cancel()

    trio.run(main)


async def _end(conn: Connection, end: str, sock: shmsock.Socket) -> bool:
    """Do *end* inside the socket's block; True to report "closed" after it.

    The ends that the process does itself wait for the test's word first.
    """
    if end in ("close", "aclose", "exit"):
        await trio.to_thread.run_sync(conn.recv)
    if end == "close":
        sock.close()
        return True
    if end in ("aclose", "exit"):
        return end == "aclose"
    await trio.sleep_forever()  # until the signal
    raise AssertionError("unreachable")  # pragma: no cover


def write_then_end(
    conn: Connection,
    kind: str,
    endpoint: str,
    bind: bool,
    end: str,
    count: int,
    size: int,
    ring_size: int,
    fill: bool,
) -> None:
    """Send *count* numbered messages (with *fill*: send_nowait until the
    ring is full), report ("sent", n) once all n sends returned, then end."""

    async def body() -> None:
        async with shmsock.socket(kind, linger=LINGER, ring_size=ring_size) as sock:
            _attach(sock, endpoint, bind)
            conn.send("ready")
            n = 0
            if fill:
                await sock.wait_peers(1)
                while True:
                    try:
                        sock.send_nowait(message(n, size))
                    except trio.WouldBlock:
                        break
                    n += 1
            else:
                for n in range(1, count + 1):
                    await sock.send(message(n - 1, size))
            conn.send(("sent", n))
            report = await _end(conn, end, sock)
        if report:
            conn.send("closed")
            await trio.to_thread.run_sync(conn.recv)

    _run(conn, end, body)


def reply_then_end(conn: Connection, endpoint: str, bind: bool, end: str, rounds: int) -> None:
    """A REP answering *rounds* requests with b"re:" + request; after the
    last reply's send returned, report "replied" and end."""

    async def body() -> None:
        async with shmsock.socket(shmsock.REP, linger=LINGER) as rep:
            _attach(rep, endpoint, bind)
            conn.send("ready")
            for _ in range(rounds):
                await rep.send(b"re:" + await rep.recv())
            conn.send("replied")
            report = await _end(conn, end, rep)
        if report:
            conn.send("closed")
            await trio.to_thread.run_sync(conn.recv)

    _run(conn, end, body)


def connect_stalled_then_read(conn: Connection, endpoint: str, count: int) -> None:
    """Connect a PULL, then hold the Trio loop (so the binder's answer is not
    read) until told; then receive *count* messages and report their numbers.
    With *count* 0 it closes at once instead, the binder's answer unread."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.connect(endpoint)  # the binder is there: this sends the HELLO
            conn.send("ready")
            conn.recv()  # blocks the loop: nothing of the binder's is read meanwhile
            if not count:
                pull.close()
                conn.send([])
                return
            with trio.fail_after(10):
                got = [number(await pull.recv()) for _ in range(count)]
            conn.send(got)

    trio.run(main)
