"""PAIR: two processes play ping-pong over an exclusive pair of sockets.

    python examples/pair.py

The parent binds a PAIR socket and starts a child that connects to it;
they exchange ROUNDS messages, each side answering the other.
"""

from __future__ import annotations

import os
import sys

import trio

import shmsock

ROUNDS = 5
ENDPOINT = os.environ.get("PAIR_ENDPOINT", f"shm://pair-{os.getpid()}")


async def parent() -> None:
    async with shmsock.socket(shmsock.PAIR) as pair:
        pair.bind(ENDPOINT)
        child = await trio.lowlevel.open_process(
            [sys.executable, __file__, "child"], env={**os.environ, "PAIR_ENDPOINT": ENDPOINT}
        )
        for n in range(ROUNDS):
            await pair.send(b"ping %d" % n)
            print("parent got", (await pair.recv()).decode())
        await pair.send(b"bye")
        await child.wait()


async def child() -> None:
    async with shmsock.socket(shmsock.PAIR, linger=None) as pair:
        pair.connect(ENDPOINT)
        async for msg in pair:
            if msg == b"bye":
                break
            await pair.send(msg.replace(b"ping", b"pong"))


if __name__ == "__main__":
    trio.run(child if sys.argv[1:] == ["child"] else parent)
