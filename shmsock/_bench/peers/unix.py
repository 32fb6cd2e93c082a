"""Trio over a Unix stream socket, with 4-byte length-prefixed frames.

What a Trio user would write without shmsock.  The sender writes 64 frames
per ``send_all`` (fewer for large messages, so that a write stays near
256 KiB), framed ahead of time, so it is as fast as such a loop can be.
"""

from __future__ import annotations

import math
import socket as pysocket
import struct
from collections import deque
from functools import partial
from multiprocessing.connection import Connection

import trio

from ..protocol import (
    Checker,
    Mismatch,
    Pool,
    Spec,
    Wait,
    echoing_async,
    receiving_async,
    sending_async,
    timing_async,
)

_LEN = struct.Struct("<I")
WRITE_BYTES = 256 << 10


def path(spec: Spec) -> str:
    return f"{spec['tmp']}/{spec['name']}"


def _frames(buf: bytearray) -> list[bytes]:
    """Cut complete frames off the front of *buf*."""
    out = []
    pos = 0
    view = memoryview(buf)
    end = len(buf)
    while end - pos >= 4:
        (n,) = _LEN.unpack_from(buf, pos)
        if end - pos - 4 < n:
            break
        out.append(bytes(view[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    view.release()
    del buf[:pos]
    return out


def _frame(m: bytes) -> bytes:
    return _LEN.pack(len(m)) + m


async def _accept(conn: Connection, where: str) -> trio.SocketStream:
    """Listen on *where*, say "ready", and return the first connection."""
    sock = trio.socket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    await sock.bind(where)
    sock.listen(1)
    conn.send("ready")
    raw, _ = await sock.accept()
    sock.close()
    return trio.SocketStream(raw)


def _waiter(conn: Connection) -> Wait:
    """The next command, received in a thread while Trio runs."""
    return partial(trio.to_thread.run_sync, conn.recv)


class _Reader:
    """Frames from a stream, as they come."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()
        self.pending: deque[bytes] = deque()

    async def frames(self) -> list[bytes]:
        """At least one complete frame."""
        while True:
            got = _frames(self.buf)
            if got:
                return got
            data = await self.stream.receive_some(1 << 18)
            if not data:
                raise Mismatch("the peer closed the stream")
            self.buf.extend(data)

    async def frame(self) -> bytes:
        """The next frame."""
        if not self.pending:
            self.pending.extend(await self.frames())
        return self.pending.popleft()


def receiver(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        stream = await _accept(conn, path(spec))
        reader = _Reader(stream)
        checker = Checker(spec["size"])

        async def chunk() -> int:
            return checker.take(await reader.frames())

        await receiving_async(conn, _waiter(conn), chunk, checker)

    trio.run(main)


def sender(conn: Connection, spec: Spec) -> None:
    size = spec["size"]
    pool = Pool(size)
    per: int = max(1, min(64, WRITE_BYTES // (size + 4), pool.length))
    writes = [
        b"".join(map(_frame, pool.take(per)))
        for _ in range(pool.length // math.gcd(pool.length, per))
    ]
    del pool

    async def main() -> None:
        stream = await trio.open_unix_socket(path(spec))
        conn.send("ready")
        turn = 0

        async def chunk() -> int:
            nonlocal turn
            await stream.send_all(writes[turn])
            turn = (turn + 1) % len(writes)
            return per

        async def send_end(m: bytes) -> None:
            await stream.send_all(_frame(m))

        await sending_async(conn, _waiter(conn), chunk, send_end)

    trio.run(main)


def echo(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        stream = await _accept(conn, path(spec))
        reader = _Reader(stream)

        async def send(m: bytes) -> None:
            await stream.send_all(_frame(m))

        await echoing_async(conn, _waiter(conn), reader.frame, send)

    trio.run(main)


def client(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        stream = await trio.open_unix_socket(path(spec))
        reader = _Reader(stream)
        conn.send("ready")

        async def send(m: bytes) -> None:
            await stream.send_all(_frame(m))

        await timing_async(conn, _waiter(conn), send, reader.frame)

    trio.run(main)
