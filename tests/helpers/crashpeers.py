"""Peers for the reliability tests, run in other OS processes (see procs.py).

Like ``peers.py``, each function takes the pipe to the test first and
reports through it.  These ones misbehave on purpose: they stop dead at a
chosen point of creating a segment (so the test can SIGKILL them there),
pretend to be another protocol version, or race each other.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection

import trio

import shmsock
import shmsock._ring as ring
from helpers import seam
from shmsock._transport.shm import _segment, _wire

# Where a segment's creator can die before publishing it (see _segment.create).
CREATE_POINTS = ("created", "sized", "formatted")


def _stop_at(conn: Connection, point: str) -> None:
    """Make the next segment creation report *point* there and hang (to be killed)."""

    def stop() -> None:
        conn.send(point)
        time.sleep(3600)

    real_fallocate = os.posix_fallocate
    real_init = ring.init_ring
    # (A connector's ring is sized before its first allocation: "created"
    # finds it full-size but unallocated, "sized" with its first page.)
    if point == "created":  # the file exists, empty, mode 0200

        def before_sizing(fd: int, offset: int, length: int) -> None:
            stop()

        os.posix_fallocate = before_sizing
    elif point == "sized":  # full size, all zeros, mode 0200

        def after_sizing(fd: int, offset: int, length: int) -> None:
            real_fallocate(fd, offset, length)
            stop()

        os.posix_fallocate = after_sizing
    elif point == "formatted":  # headers and ring written, still mode 0200

        def after_format(*args: object, **kwargs: object) -> None:
            real_init(*args, **kwargs)  # type: ignore[arg-type]
            stop()

        ring.init_ring = after_format
    else:
        raise ValueError(point)


def die_creating_segment(conn: Connection, endpoint: str, bind: bool, point: str) -> None:
    """Stop at *point* while creating a segment; the test then SIGKILLs us.

    A connector (PUSH) stops inside connect(), creating its own ring.  A
    binder (PULL) binds, reports "ready", and stops when the test connects,
    creating the ring for that connection.
    """

    if bind:
        # Without a spare ring made ahead, the binder creates one at accept:
        # that is the path this covers (die_creating_spare covers the other).
        seam.Listener._make_spare = lambda self, b: None  # type: ignore[method-assign]

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL if bind else shmsock.PUSH) as sock:
            if bind:
                sock.bind(endpoint)
                _stop_at(conn, point)
                conn.send("ready")
            else:
                conn.send("ready")
                _stop_at(conn, point)
                sock.connect(endpoint)
            await trio.sleep_forever()

    trio.run(main)


def die_creating_spare(conn: Connection, endpoint: str, point: str) -> None:
    """Bind, and stop at *point* while creating the binder's spare ring."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as sock:
            _stop_at(conn, point)
            sock.bind(endpoint)  # makes the spare ring, and stops in it
            await trio.sleep_forever()  # pragma: no cover

    trio.run(main)


def future_version(what: str) -> int:
    """The version after ours of *what*: "handshake", "segment" or "ring"."""
    return {"handshake": _wire.VERSION, "segment": _segment.VERSION, "ring": ring.RING_VERSION}[
        what
    ] + 1


def other_version(conn: Connection, endpoint: str, bind: bool, what: str) -> None:
    """A peer that speaks the next protocol version in *what*: handshake, segment or ring.

    As a binder (PULL) it binds, reports "ready" and waits for "exit".  As a
    connector (PUSH) it connects before any binder exists, reports "ready",
    and then reports what its first send raised, as (class name, message).
    """
    future = future_version(what).to_bytes(4, "little")
    if what == "handshake":
        _wire.VERSION = future_version(what)
    elif what == "segment":
        _segment.VERSION = future_version(what)
    elif what == "ring" and bind:
        real_producer = ring.Producer

        class FutureProducer(real_producer):  # type: ignore[misc, valid-type]
            def __init__(self, region: memoryview, capacity: int, **kw: bool) -> None:
                super().__init__(region, capacity, **kw)
                region[8:12] = future  # ring header version

        ring.Producer = FutureProducer  # type: ignore[misc]

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL if bind else shmsock.PUSH) as sock:
            if bind:
                sock.bind(endpoint)
                conn.send("ready")
                await trio.to_thread.run_sync(conn.recv)
                return
            sock.connect(endpoint)
            if what == "ring":
                slot = seam.slots(sock)[0]
                slot.seg.ring[8:12] = future  # ring header version
            conn.send("ready")
            try:
                with trio.fail_after(20):
                    await sock.send(b"hello")
                conn.send(("sent", ""))
            except Exception as exc:
                conn.send((type(exc).__name__, str(exc)))
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def connect_race(conn: Connection, endpoint: str, tag: str) -> None:
    """On "go", connect a PUSH and send *tag*; report the slot taken, then hold."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=None) as push:
            conn.send("ready")
            assert await trio.to_thread.run_sync(conn.recv) == "go"
            push.connect(endpoint)
            conn.send(seam.slots(push)[0].index)
            await push.send(tag.encode())
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)
