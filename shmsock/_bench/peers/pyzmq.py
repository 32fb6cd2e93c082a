"""pyzmq over ``ipc://``: the sync API, and ``zmq.asyncio`` for the async peer of ``await``.

Plain ``send``/``recv`` of ``bytes`` (copying, pyzmq's default), as a
pyzmq user writes them.  The high-water marks are libzmq's default of 1000
messages up to 64 KiB, and fewer above, so that no more than 64 MiB is
queued on either side: with the default, a 16 MiB trial could queue 16 GB.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from typing import Any

from ..protocol import (
    QUIET,
    QUIET_GAP,
    Checker,
    Pool,
    Spec,
    Wait,
    commands,
    echoing,
    end_message,
    now,
    one_by_one,
    one_by_one_async,
    receiving,
    receiving_async,
    send_each,
    sending,
    sending_async,
    step,
    timing,
)

QUEUE_BYTES = 64 << 20


def address(spec: Spec) -> str:
    """The trial's endpoint: ipc:// by default, or the one the way gives (tcp.shared)."""
    given: str | None = spec.get("endpoint")
    return given or f"ipc://{spec['tmp']}/{spec['name']}"


def queue_length(size: int) -> int:
    """The high-water mark for *size*: libzmq's 1000, or fewer up to 64 MiB queued."""
    return max(2, min(1000, QUEUE_BYTES // size))


def _socket(ctx: Any, kind: int, size: int) -> Any:
    import zmq

    s = ctx.socket(kind)
    hwm = queue_length(size)
    s.setsockopt(zmq.SNDHWM, hwm)
    s.setsockopt(zmq.RCVHWM, hwm)
    return s


def receiver(conn: Connection, spec: Spec) -> None:
    import zmq

    size = spec["size"]
    ctx = zmq.Context()
    s = _socket(ctx, zmq.PULL, size)
    s.bind(address(spec))
    conn.send("ready")
    checker = Checker(size, spec.get("senders", 1), quiet=spec.get("quiet", False))
    receiving(conn, one_by_one(s.recv, checker, step(size)), checker)
    s.close(linger=0)
    ctx.term()


def sender(conn: Connection, spec: Spec) -> None:
    import zmq

    sid = spec.get("sid", 0)
    pool = Pool(spec["size"], sid)
    ctx = zmq.Context()
    s = _socket(ctx, zmq.PUSH, spec["size"])
    s.connect(address(spec))
    conn.send("ready")
    sending(conn, *send_each(s.send, pool, step(pool.size)), sid)
    s.close(linger=0)
    ctx.term()


def quiet_sender(conn: Connection, spec: Spec) -> None:
    """shm.quiet_sender's twin."""
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.connect(address(spec))
    conn.send("ready")
    for cmd, p in commands(conn):
        if cmd == "run":
            count = 0
            until = now() + p["max_seconds"]
            while not conn.poll() and now() < until:
                time.sleep(QUIET_GAP)
                s.send(QUIET.pack(now(), b"q"))
                count += 1
            s.send(end_message(p["size"], spec["sid"], count))
            conn.send(("stopped", {"count": count, "na": None}))
    s.close(linger=0)
    ctx.term()


# -- zmq.asyncio ------------------------------------------------------------------


def _waiter(conn: Connection) -> Wait:
    async def wait() -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    return wait


def async_receiver(conn: Connection, spec: Spec) -> None:
    """One ``await s.recv()`` per message, under asyncio."""
    import zmq
    import zmq.asyncio

    size = spec["size"]

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        s = _socket(ctx, zmq.PULL, size)
        s.bind(address(spec))
        conn.send("ready")
        checker = Checker(size)
        chunk = one_by_one_async(s.recv, checker, step(size, 100))
        await receiving_async(conn, _waiter(conn), chunk, checker)
        s.close(linger=0)
        ctx.term()

    asyncio.run(main())


def async_sender(conn: Connection, spec: Spec) -> None:
    """One ``await s.send()`` per message, under asyncio."""
    import zmq
    import zmq.asyncio

    pool = Pool(spec["size"])
    per = step(pool.size, 100)

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        s = _socket(ctx, zmq.PUSH, pool.size)
        s.connect(address(spec))
        conn.send("ready")

        async def chunk() -> int:
            for m in pool.take(per):
                await s.send(m)
            return per

        async def send_end(m: bytes) -> None:
            await s.send(m)

        await sending_async(conn, _waiter(conn), chunk, send_end)
        s.close(linger=0)
        ctx.term()

    asyncio.run(main())


# -- round trips ----------------------------------------------------------------------


def rep(conn: Connection, spec: Spec) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.bind(address(spec))
    conn.send("ready")
    echoing(conn, s.recv, s.send)
    s.close(linger=0)
    ctx.term()


def router(conn: Connection, spec: Spec) -> None:
    """A ROUTER echo server, as the Guide's brokers receive and answer."""
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.bind(address(spec))
    conn.send("ready")
    rid = [b""]

    def recv() -> bytes:
        frames = s.recv_multipart()
        rid[0] = frames[0]
        return frames[1]

    def send(m: bytes) -> None:
        s.send_multipart([rid[0], m])

    echoing(conn, recv, send)
    s.close(linger=0)
    ctx.term()


def dealer(conn: Connection, spec: Spec) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(address(spec))
    conn.send("ready")
    timing(conn, s.send, s.recv)
    s.close(linger=0)
    ctx.term()


def req(conn: Connection, spec: Spec) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.connect(address(spec))
    conn.send("ready")
    timing(conn, s.send, s.recv)
    s.close(linger=0)
    ctx.term()
