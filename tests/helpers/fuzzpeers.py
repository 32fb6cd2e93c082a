"""A writer process for the fuzz tests (see procs.py for how tests run it)."""

from __future__ import annotations

import hashlib
from multiprocessing.connection import Connection

import trio

import shmsock


def make(i: int) -> bytes:
    """Message *i*: its number and a digest of it, so a reader can check both."""
    head = b"%d|" % i
    return head + hashlib.sha256(head).digest() * (i % 7)


def check(msg: bytes) -> int:
    """The number of a message made by make(); AssertionError if it is not one."""
    i = int(msg.split(b"|", 1)[0])
    assert msg == make(i), f"message {i} is not what was sent"
    return i


def push_forever(conn: Connection, endpoint: str, ring_size: int) -> None:
    """Connect a PUSH and send make(0), make(1)... until told "stop"."""

    async def main() -> None:
        async with (
            shmsock.socket(shmsock.PUSH, ring_size=ring_size, linger=0) as push,
            trio.open_nursery() as nursery,
        ):

            async def until_stopped() -> None:
                assert await trio.to_thread.run_sync(conn.recv) == "stop"
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_stopped)
            push.connect(endpoint)
            conn.send("ready")
            i = 0
            while True:
                await push.send(make(i))
                i += 1

    trio.run(main)
