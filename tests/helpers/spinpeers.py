"""Peers for the spin tests (tests/sockets/test_spin.py), in other OS processes.

Each takes the pipe to the test first and reports "ready" once attached.
"""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection

import trio

import shmsock


def pair_asleep_then_send(conn: Connection, endpoint: str, count: int) -> None:
    """A PAIR that parks in recv (its waiter flag set), and sends b"<i>" when told.

    The test's spinner sees this peer announced asleep and must stop
    spinning; the message sent later must still wake it.
    """

    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR, linger=None) as pair:
            pair.connect(endpoint)
            async with trio.open_nursery() as nursery:

                async def parked() -> None:
                    await pair.recv()

                nursery.start_soon(parked)
                conn.send("ready")
                for i in range(count):
                    await trio.to_thread.run_sync(conn.recv)
                    await pair.send(b"%d" % i)
                await trio.to_thread.run_sync(conn.recv)
                nursery.cancel_scope.cancel()

    trio.run(main)


def rep_dies_on_request(conn: Connection, endpoint: str) -> None:
    """A REP that takes one request and is killed (SIGKILL) holding it."""

    async def main() -> None:
        async with shmsock.socket(shmsock.REP) as rep:
            rep.connect(endpoint)  # the test binds: a killed binder would leave its files
            conn.send("ready")
            await rep.recv()
            os.kill(os.getpid(), signal.SIGKILL)

    trio.run(main)
