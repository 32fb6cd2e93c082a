"""DEALER, ROUTER and broker peers that run in other processes (see ``procs.py``).

Each reports through its pipe, so tests synchronise on what it says.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import trio

import shmsock
from shmsock import DEALER, REQ


def _forge_ids() -> None:
    """Let this process ask for any routing id: a hostile peer's modified library."""
    import shmsock._options as options

    options.check_routing_id = lambda value: value  # type: ignore[assignment]


def dealer_client(
    conn: Connection, endpoint: str, rid: bytes | None, count: int, forge: bool = False
) -> None:
    """A DEALER asking for *rid* (None: none) that sends *count* messages b"<i>".

    Reports "connected", then ("replies", [...]) with what came back, or
    ("error", type name, message) if sending or receiving raised; then
    waits for its pipe to say anything before it exits.
    """
    if forge:
        _forge_ids()

    async def main() -> None:
        async with shmsock.socket(DEALER, routing_id=rid) as dealer:
            dealer.connect(endpoint)
            conn.send("connected")
            try:
                with trio.fail_after(30):
                    for i in range(count):
                        await dealer.send(b"%d" % i)
                    replies = [await dealer.recv() for _ in range(count)]
            except (shmsock.ShmsockError, OSError) as exc:
                conn.send(("error", type(exc).__name__, str(exc)))
            else:
                conn.send(("replies", replies))
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def req_forever(conn: Connection, endpoint: str) -> None:
    """A REQ that sends requests b"forever-<i>" through a broker until killed."""

    async def main() -> None:
        async with shmsock.socket(REQ) as req:
            req.connect(endpoint)
            await req.wait_peers(1)
            conn.send("ready")
            i = 0
            while True:
                await req.send(b"forever-%d" % i)
                await req.recv()
                i += 1

    trio.run(main)
