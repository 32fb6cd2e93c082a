"""PUB/SUB peers that tests run in other OS processes (see procs.py).

Each takes the pipe to the test first, reports "ready" once attached, then
what the test asks for.
"""

from __future__ import annotations

import hashlib
from multiprocessing.connection import Connection

import trio

import shmsock


def sub_collect(
    conn: Connection, endpoint: str, topics: list[bytes], count: int, subscribe_after: bool
) -> None:
    """Subscribe to *topics* (before connecting, or after it attached with
    *subscribe_after*), report "ready", receive *count* messages and report
    them (their first frames) and a digest of all their frames."""

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB) as sub:
            if not subscribe_after:
                for t in topics:
                    sub.subscribe(t)
            sub.connect(endpoint)
            await sub.wait_peers(1)
            if subscribe_after:
                for t in topics:
                    sub.subscribe(t)
            conn.send("ready")
            h = hashlib.sha256()
            firsts = []
            for _ in range(count):
                frames = await sub.recv_multipart()
                firsts.append(frames[0])
                for f in frames:
                    h.update(f)
                    h.update(b"|")
            conn.send((firsts, h.hexdigest()))
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def sub_idle(conn: Connection, endpoint: str) -> None:
    """Subscribe to everything, connect, report "ready", and read nothing until told;
    then report how many messages it can take."""

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB) as sub:
            sub.subscribe(b"")
            sub.connect(endpoint)
            await sub.wait_peers(1)
            conn.send("ready")
            await trio.to_thread.run_sync(conn.recv)
            got = 0
            while True:
                try:
                    sub.recv_nowait()
                except trio.WouldBlock:
                    break
                got += 1
            conn.send(got)
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def pub_numbers(conn: Connection, endpoint: str, topics: list[bytes], count: int) -> None:
    """Bind a PUB, report "ready"; on "go", wait for *subscribers* to attach and send
    *count* rounds of [topic, b"%d"] for each topic; report "sent"."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUB, nodrop=True, linger=None) as pub:
            pub.bind(endpoint)
            conn.send("ready")
            subscribers = await trio.to_thread.run_sync(conn.recv)
            await pub.wait_peers(subscribers)
            for i in range(count):
                for t in topics:
                    await pub.send_multipart([t, b"%d" % i])
            conn.send("sent")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def probing_pub(conn: Connection, endpoint: str, topics: list[bytes], count: int) -> None:
    """A shmsock PUB: as ``zmq_peers.probing_publisher`` (probes until "go", then
    *count* rounds of [t, b"%d"] and [t, b"END"]), binding *endpoint*."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUB, linger=None) as pub:
            pub.bind(endpoint)
            conn.send("ready")
            while not conn.poll():
                for t in topics:
                    await pub.send_multipart([t, b"probe"])
                await trio.sleep(0.005)
            conn.recv()
            for i in range(count):
                for t in topics:
                    await pub.send_multipart([t, b"%d" % i])
            for t in topics:
                await pub.send_multipart([t, b"END"])
            conn.send("sent")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def collecting_sub(conn: Connection, endpoint: str, topics: list[bytes], ends: int) -> None:
    """A shmsock SUB: as ``zmq_peers.collecting_subscriber``, connecting to *endpoint*."""

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB) as sub:
            for t in topics:
                sub.subscribe(t)
            sub.connect(endpoint)
            conn.send("ready")
            flowing = False
            got: list[list[bytes]] = []
            left = ends
            while left:
                frames = await sub.recv_multipart()
                if frames[-1] == b"probe":
                    if not flowing:
                        flowing = True
                        conn.send("flowing")
                    continue
                if frames[-1] == b"END":
                    left -= 1
                    continue
                got.append(frames)
            conn.send(("got", got))

    trio.run(main)


def sub_exact(conn: Connection, endpoint: str, topic: bytes, ring_size: int) -> None:
    """Subscribe to *topic*, connect, report "ready"; then check that message
    bodies count 0, 1, 2, ... (each once, in order) and, at every message with
    a third frame, report how many came.  A message b"end" ends it."""

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB, ring_size=ring_size) as sub:
            sub.subscribe(topic)
            sub.connect(endpoint)
            await sub.wait_peers(1)
            conn.send("ready")
            expect = 0
            while True:
                frames = await sub.recv_multipart()
                if frames[1] == b"end":
                    break
                if int(frames[1]) != expect:
                    conn.send(("wrong", int(frames[1]), expect))
                    return
                expect += 1
                if len(frames) > 2:
                    conn.send(expect)
            conn.send(("end", expect))
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def _summary(frames: list[bytes]) -> tuple[bytes, tuple[int, ...], str]:
    """A message as a test compares it: its first 16 bytes, its frames' lengths, a digest."""
    h = hashlib.sha256()
    for f in frames:
        h.update(f)
        h.update(b"|")
    return frames[0][:16], tuple(map(len, frames)), h.hexdigest()


def sub_summaries(conn: Connection, endpoint: str, topics: list[bytes], count: int) -> None:
    """Subscribe to *topics*, connect, report "ready"; receive *count* messages and
    report each one's summary (first 16 bytes, frame lengths, digest)."""

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB) as sub:
            for t in topics:
                sub.subscribe(t)
            sub.connect(endpoint)
            await sub.wait_peers(1)
            conn.send("ready")
            got = [_summary(await sub.recv_multipart()) for _ in range(count)]
            conn.send(got)
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def sub_on_demand(conn: Connection, endpoint: str) -> None:
    """Subscribe to everything, connect, report "ready"; read nothing until told
    "read", then report the summaries of every message it can take now; again
    at each "read", until "stop"."""

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB) as sub:
            sub.subscribe(b"")
            sub.connect(endpoint)
            await sub.wait_peers(1)
            conn.send("ready")
            while await trio.to_thread.run_sync(conn.recv) == "read":
                got = []
                while True:
                    try:
                        got.append(_summary(sub.recv_multipart_nowait()))
                    except trio.WouldBlock:
                        break
                conn.send(got)

    trio.run(main)
