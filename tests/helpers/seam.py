"""The one place the tests reach inside a socket.

A white-box test (one that damages a ring, counts what a connection holds,
or makes the kernel lie about a peer) goes through these functions, so that
a change of the insides changes this file, not the tests.  Everything here
is about the shm:// transport unless it says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shmsock
from shmsock._transport.shm import _handshake
from shmsock._transport.shm._connection import Connection
from shmsock._transport.shm._listener import Listener
from shmsock._transport.shm._slot import Slot
from shmsock._transport.shm._transport import ShmTransport

__all__ = [
    "Connection",
    "connections",
    "held",
    "no_spare_rings",
    "patch_doorbells",
    "patch_peer_cred",
    "pipes",
    "poll",
    "shm",
    "slots",
]


def pipes(sock: shmsock.Socket) -> list[Any]:
    """Every pipe attached to *sock* and not retired yet, of every transport."""
    return sock._hub.pipes  # type: ignore[attr-defined, no-any-return]


def shm(sock: shmsock.Socket) -> ShmTransport:
    """*sock*'s shm:// transport (it has one once it bound or connected there)."""
    return sock._hub.transports["shm"]  # type: ignore[attr-defined, no-any-return]


def connections(sock: shmsock.Socket) -> list[Connection]:
    """*sock*'s shm connections, alive or not yet retired."""
    return shm(sock).conns.conns


def slots(sock: shmsock.Socket) -> list[Slot]:
    """*sock*'s places at the endpoints it connected to."""
    return shm(sock).dialer.slots


def held(sock: shmsock.Socket) -> Connection | None:
    """The connection whose doorbell a woken receiver left unread, if any."""
    return shm(sock).bells.held


def poll(sock: shmsock.Socket) -> bool:
    """Handle *sock*'s pending events now, in this task, as its poller would."""
    return sock._hub.poll()  # type: ignore[attr-defined, no-any-return]


def transport_closed(sock: shmsock.Socket) -> bool:
    """Whether *sock*'s shm transport has been torn down."""
    return shm(sock).closed


def patch_doorbells(monkeypatch: Any, before: Callable[[Connection, bytes], None]) -> None:
    """Call ``before(conn, byte)`` just before any doorbell rings (monkeypatch undoes it)."""
    from shmsock._transport.shm import _wire

    real_ring, real_wake = Connection.ring, Connection.wake

    def ring(self: Connection, what: bytes) -> None:
        before(self, what)
        real_ring(self, what)

    def wake(self: Connection) -> None:
        before(self, _wire.DATA)
        real_wake(self)

    monkeypatch.setattr(Connection, "ring", ring)
    monkeypatch.setattr(Connection, "wake", wake)


def patch_peer_cred(
    monkeypatch: Any, peer_cred: Callable[..., tuple[int, int]]
) -> Callable[..., tuple[int, int]]:
    """Make SO_PEERCRED answer through *peer_cred*; returns the real one."""
    real = _handshake.peer_cred
    monkeypatch.setattr(_handshake, "peer_cred", peer_cred)
    return real


def no_spare_rings(monkeypatch: Any) -> None:
    """Binders make each connector's ring at accept, never ahead of time."""
    monkeypatch.setattr(Listener, "_make_spare", lambda self, b: None)


# -- tcp:// and ipc:// (the libzmq transport) ------------------------------------------


def zmq(sock: shmsock.Socket, scheme: str = "tcp") -> Any:
    """*sock*'s tcp:// (or ipc://) transport: its links by endpoint."""
    return sock._hub.transports[scheme]  # type: ignore[attr-defined]


def stats(sock: shmsock.Socket) -> dict[str, Any]:
    """*sock*'s statistics by endpoint, as the exporter reads them."""
    return sock._stats_by_endpoint()  # type: ignore[attr-defined, no-any-return]


async def until(sock: shmsock.Socket, condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait (at most *timeout* s) until *condition* holds, looking again at each report.

    Every report of *sock*'s transports (a pipe attached or gone, a peer
    count that moved, data or room) wakes the tasks parked for a message,
    which is where this parks too.
    """
    import trio

    with trio.fail_after(timeout):
        while not condition():
            await sock._hub.recv_lot.park()  # type: ignore[attr-defined]
