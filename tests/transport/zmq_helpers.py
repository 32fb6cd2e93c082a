"""What the tcp:// tests share: sockets, and plain pyzmq peers in other processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from helpers import zmq_peers
from helpers.procs import Child, forked

import shmsock
from shmsock import SocketType

__all__ = ["LOOPBACK", "Peer", "attached", "peer", "zsocket"]

#: Where tests bind: loopback only, ports from the OS.
LOOPBACK = "tcp://127.0.0.1:0"


@asynccontextmanager
async def zsocket(kind: SocketType, **options: Any) -> AsyncIterator[shmsock.Socket]:
    """A socket, open for the block."""
    async with shmsock.socket(kind, **options) as sock:
        yield sock


class Peer:
    """A pyzmq peer in another process (a function of helpers.zmq_peers)."""

    def __init__(self, child: Child, endpoint: str) -> None:
        self.child = child
        self.endpoint = endpoint

    async def recv(self, timeout: float = 20) -> Any:
        return await self.child.recv(timeout)

    def send(self, obj: Any = "go") -> None:
        self.child.send(obj)

    async def expect(self, tag: str, timeout: float = 20) -> Any:
        got = await self.recv(timeout)
        if isinstance(got, tuple):
            assert got[0] == tag, got
            return got[1]
        assert got == tag, got
        return None


@asynccontextmanager
async def peer(role: str, *args: Any) -> AsyncIterator[Peer]:
    """Start ``zmq_peers.<role>(conn, *args)`` and wait for its ("ready", endpoint)."""
    child = Child(getattr(zmq_peers, role), *args, ctx=forked())
    try:
        tag, endpoint = await child.recv(30)
        assert tag == "ready"
        yield Peer(child, endpoint)
    finally:
        child.close()


@asynccontextmanager
async def attached(
    ours: shmsock.Socket, ours_bind: bool, role: str, *args: Any, endpoint: str = LOOPBACK
) -> AsyncIterator[Peer]:
    """A pyzmq peer doing *role* with *ours*: ours binds and theirs connects, or the reverse."""
    if ours_bind:
        async with peer(role, ours.bind(endpoint), False, *args) as theirs:
            yield theirs
    else:
        async with peer(role, endpoint, True, *args) as theirs:
            ours.connect(theirs.endpoint)
            yield theirs
