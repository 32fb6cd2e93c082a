"""Peers for the tests of large messages (bulk regions), run in other OS processes.

As in peers.py: each function takes the pipe to the test first, runs a
Trio program, and reports through the pipe ("ready" once attached).
Messages that carry their own check are built by :func:`stamped`: eight
bytes of sequence number, the SHA-256 of the rest, then the rest.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from multiprocessing.connection import Connection

import trio

import shmsock

_HEAD = struct.Struct("<Q32s")


def stamped(seq: int, size: int, rnd: random.Random | None = None) -> bytes:
    """A message of *size* bytes (at least 40) that says its number and checks itself."""
    body = (rnd or random).randbytes(size - _HEAD.size) if size > _HEAD.size else b""
    return _HEAD.pack(seq, hashlib.sha256(body).digest()) + body


def check_stamped(msg: bytes) -> int:
    """The number of a message made by :func:`stamped`; AssertionError if it is damaged."""
    seq, digest = _HEAD.unpack_from(msg)
    assert hashlib.sha256(memoryview(msg)[_HEAD.size :]).digest() == digest, f"message {seq}"
    return int(seq)


def _attach(sock: shmsock.Socket, endpoint: str, bind: bool) -> None:
    if bind:
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)


def pull_digests(
    conn: Connection, endpoint: str, bind: bool, count: int, **options: object
) -> None:
    """Receive *count* messages (multipart or not); report (sizes, SHA-256) of each."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL, **options) as pull:
            _attach(pull, endpoint, bind)
            conn.send("ready")
            out = []
            for _ in range(count):
                frames = await pull.recv_multipart()
                out.append(
                    ([len(f) for f in frames], [hashlib.sha256(f).hexdigest() for f in frames])
                )
            conn.send(out)
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def pull_counting_faults(
    conn: Connection, endpoint: str, bind: bool, payloads: list[bytes], warm: int, count: int
) -> None:
    """Receive *warm* then *count* messages, one at a time, cycling through *payloads*.

    Reports ``(page faults, wrong)``: this process's minor page faults over
    the *count* messages, and how many of them were not the payload
    expected.  A fresh process: nothing else has tuned its allocator.
    """
    import resource

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            _attach(pull, endpoint, bind)
            conn.send("ready")
            wrong = 0
            for i in range(warm):
                wrong += await pull.recv() != payloads[i % len(payloads)]
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for i in range(count):
                wrong += await pull.recv() != payloads[(warm + i) % len(payloads)]
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            conn.send((faults, wrong))
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def pair_send_multipart_then_wait(
    conn: Connection, endpoint: str, bind: bool, msgs: list[list[bytes]]
) -> None:
    """Send the multipart *msgs* on a PAIR, report "sent", then wait (to be killed)."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR) as pair:
            _attach(pair, endpoint, bind)
            conn.send("ready")
            for m in msgs:
                await pair.send_multipart(m)
            conn.send("sent")
            await trio.sleep_forever()

    trio.run(main)


def pair_stream_stamped(
    conn: Connection, endpoint: str, bind: bool, sizes: list[int], seed: int
) -> None:
    """Send stamped messages of the *sizes* in turn, forever (it is killed midway)."""

    async def main() -> None:
        rnd = random.Random(seed)
        # One body per size, hashed once: the sender's work is the send.
        bodies = {}
        for size in set(sizes):
            body = rnd.randbytes(size - _HEAD.size)
            bodies[size] = (hashlib.sha256(body).digest(), body)
        async with shmsock.socket(shmsock.PAIR) as pair:
            _attach(pair, endpoint, bind)
            conn.send("ready")
            seq = 0
            while True:
                for size in sizes:
                    digest, body = bodies[size]
                    await pair.send(_HEAD.pack(seq, digest) + body)
                    seq += 1
                    if seq == 3:
                        conn.send("sending")

    trio.run(main)


def pull_lease_and_hold(conn: Connection, endpoint: str, bind: bool, hold: int) -> None:
    """Receive *hold* messages as leases and keep them; report "holding"; wait (to be killed)."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            _attach(pull, endpoint, bind)
            conn.send("ready")
            leases = [await pull.recv(copy=False) for _ in range(hold)]
            conn.send(("holding", [len(lease) for lease in leases]))
            await trio.sleep_forever()

    trio.run(main)


def push_stamped(
    conn: Connection, endpoint: str, bind: bool, sizes: list[int], seed: int, **options: object
) -> None:
    """Send a stamped message of each of *sizes*, in order; report "sent"; wait to exit."""

    async def main() -> None:
        rnd = random.Random(seed)
        async with shmsock.socket(shmsock.PUSH, linger=None, **options) as push:
            _attach(push, endpoint, bind)
            conn.send("ready")
            for seq, size in enumerate(sizes):
                await push.send(stamped(seq, size, rnd))
            conn.send("sent")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def memfd_mappings() -> int:
    """How many mappings of bulk regions this process has (from /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        return sum("shmsock-bulk" in line for line in f)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def push_batches(conn: Connection, endpoint: str, bind: bool, batches: list[list[bytes]]) -> None:
    """Send each batch with ``send_many`` (``send_many_nowait`` first), report "sent"."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH) as push:
            _attach(push, endpoint, bind)
            await push.wait_peers(1)
            conn.send("ready")
            for batch in batches:
                try:
                    push.send_many_nowait(batch)
                except trio.WouldBlock:
                    await push.send_many(batch)
            conn.send("sent")
            assert conn.recv() == "exit"

    trio.run(main)
