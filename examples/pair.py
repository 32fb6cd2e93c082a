"""PAIR: two processes play ping-pong over an exclusive pair of sockets.

Both at once, each in a process of its own:

    python examples/pair.py

Or one per shell, started in either order:

    python examples/pair.py ping    # shell 1
    python examples/pair.py pong    # shell 2

ping binds a PAIR socket at shm://pair-pingpong (--endpoint names another;
give both the same) and pong connects to it; ping sends ROUNDS pings, pong
answers each with a pong, and ping's "bye" ends them both.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import trio

import shmsock

ROUNDS = 5


async def ping(endpoint: str) -> None:
    async with shmsock.socket(shmsock.PAIR, linger=None) as pair:
        pair.bind(endpoint)
        for n in range(ROUNDS):
            await pair.send(b"ping %d" % n)
            print("ping got", (await pair.recv()).decode(), flush=True)
        await pair.send(b"bye")


async def pong(endpoint: str) -> None:
    async with shmsock.socket(shmsock.PAIR) as pair:
        pair.connect(endpoint)
        async for msg in pair:
            if msg == b"bye":
                break
            await pair.send(msg.replace(b"ping", b"pong"))


def main() -> None:
    parser = argparse.ArgumentParser(description="Ping-pong over PAIR.")
    parser.add_argument(
        "role", nargs="?", default="all", choices=["all", "ping", "pong"], help="default: all"
    )
    parser.add_argument(
        "--endpoint", default="shm://pair-pingpong", help="where they meet (%(default)s)"
    )
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--endpoint", args.endpoint]
        procs = [subprocess.Popen([sys.executable, __file__, r, *flags]) for r in ("ping", "pong")]
        sys.exit(max(p.wait() for p in procs))
    trio.run(ping if args.role == "ping" else pong, args.endpoint)


if __name__ == "__main__":
    main()
