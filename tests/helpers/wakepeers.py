"""Peers for the wake-up protocol tests (tests/sockets/test_wakeups.py), in other OS processes.

Each takes the pipe to the test first and reports "ready" once attached.
"""

from __future__ import annotations

import random
from multiprocessing.connection import Connection

import trio

import shmsock


def pair_bursts(conn: Connection, endpoint: str, count: int, size: int, seed: int) -> None:
    """A PAIR that sends *count* numbered messages in bursts, with pauses between some.

    Message *i* is ``b"%d " % i`` padded with b"x" to *size* bytes.  Bursts
    of 1 to 60 messages fill a small ring, so the sender waits for room as
    well as the receiver for data.  Then it receives the test's b"end" and
    reports it.
    """

    async def main() -> None:
        rng = random.Random(seed)
        async with shmsock.socket(shmsock.PAIR, linger=None, ring_size=4096) as pair:
            pair.connect(endpoint)
            conn.send("ready")
            i = 0
            while i < count:
                for _ in range(min(rng.choice((1, 1, 2, 5, 60)), count - i)):
                    await pair.send((b"%d " % i).ljust(size, b"x"))
                    i += 1
                if rng.random() < 0.3:
                    await trio.sleep(rng.choice((0.0001, 0.0005, 0.002)))
            conn.send(await pair.recv())
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def req_numbers(conn: Connection, endpoint: str, count: int, seed: int) -> None:
    """A REQ whose requests b"<i>" each must come back once, however the REP waits.

    The REP's replies are the requests themselves.  Pauses of random
    length between some requests make the REP's waits park, or not.
    Reports "ok" after the last reply, or the first reply that differs.
    """

    async def main() -> None:
        rng = random.Random(seed)
        async with shmsock.socket(shmsock.REQ, linger=None) as req:
            req.connect(endpoint)
            conn.send("ready")
            for i in range(count):
                if rng.random() < 0.2:
                    await trio.sleep(rng.choice((0.0001, 0.0005, 0.002)))
                await req.send(b"%d" % i)
                got = await req.recv()
                if got != b"%d" % i:
                    conn.send(("wrong", i, got))
                    return
            conn.send("ok")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)
