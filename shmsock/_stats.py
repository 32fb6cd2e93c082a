"""In-process statistics: counted where the work happens, summed when asked.

Nothing here runs per message.  The C ring counts messages and bytes in
each side's private state as it writes or reads a batch; the engine keeps
the totals of connections it has retired; the socket adds up the time its
senders spent waiting for room.  :func:`snapshot` reads all of that when
someone asks (a Prometheus scrape, usually from another thread), grouped by
endpoint and socket type.

Counters never go backwards while the process lives: a retired connection's
counts move into the engine's ``retired_stats``, and a closed socket's into
this module's totals, each under :data:`LOCK` so that a concurrent
:func:`snapshot` sees them either before the move or after it, never twice
and never not at all.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Final, Protocol

from ._types import SocketType

__all__ = ["COUNTERS", "LOCK", "EndpointStats", "closing", "snapshot", "track"]

COUNTERS: Final = (
    "messages_sent",
    "bytes_sent",
    "messages_received",
    "bytes_received",
    "dropped",
    "corrupt",
    "send_blocked_seconds",
)

#: Taken (briefly) whenever counts move from one place to another, and by
#: :func:`snapshot` while it reads; never held across a wait.  Replaced in
#: a fork() child (see _forget_after_fork), so always read it as
#: ``_stats.LOCK``.
LOCK = threading.Lock()


class EndpointStats:
    """Counters and gauges of one endpoint, as one socket (or several) see it.

    Counters: ``messages_sent``, ``bytes_sent``, ``messages_received``,
    ``bytes_received`` (payload bytes), ``dropped`` (messages lost:
    incomplete ones whose writer gave up or died, ones over
    ``max_msg_size`` from a peer that did not learn the limit, ones a reader
    left unread when it went, ones no binder read from a connecting socket's
    ring before it closed, ones a reader closed on; see
    docs/reliability.md), ``corrupt`` (messages refused: records failing
    validation), ``send_blocked_seconds``.  Gauges:
    ``peers`` (live attached connections), ``used_in`` and ``used_out``
    (bytes waiting in the rings this socket reads and writes).
    """

    __slots__ = (*COUNTERS, "peers", "used_in", "used_out")

    messages_sent: int
    bytes_sent: int
    messages_received: int
    bytes_received: int
    dropped: int
    corrupt: int
    send_blocked_seconds: float
    peers: int
    used_in: int
    used_out: int

    def __init__(self) -> None:
        # One statement, not a loop over the slots: a socket makes several
        # of these each time it closes or is scraped.
        self.messages_sent = self.bytes_sent = self.messages_received = 0
        self.bytes_received = self.dropped = self.corrupt = 0
        self.peers = self.used_in = self.used_out = 0
        self.send_blocked_seconds = 0.0

    def add_counters(self, other: EndpointStats) -> None:
        """Add *other*'s counters (not its gauges) to this one's."""
        self.messages_sent += other.messages_sent
        self.bytes_sent += other.bytes_sent
        self.messages_received += other.messages_received
        self.bytes_received += other.bytes_received
        self.dropped += other.dropped
        self.corrupt += other.corrupt
        self.send_blocked_seconds += other.send_blocked_seconds

    def add(self, other: EndpointStats) -> None:
        """Add *other*'s counters and gauges to this one's."""
        self.add_counters(other)
        self.peers += other.peers
        self.used_in += other.used_in
        self.used_out += other.used_out

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"EndpointStats({fields})"


class _Source(Protocol):
    """What a socket offers to this module (see shmsock._socket.Socket)."""

    @property
    def type(self) -> SocketType: ...

    def _stats_by_endpoint(self) -> dict[str, EndpointStats]: ...


_live: weakref.WeakSet[_Source] = weakref.WeakSet()
_closed: dict[tuple[str, str], EndpointStats] = {}


def track(sock: _Source) -> None:
    """Count *sock* in every snapshot from now until it closes."""
    with LOCK:
        _live.add(sock)


def closing(sock: _Source) -> None:
    """Keep *sock*'s counters in the process totals: it is about to close.

    Called once, before the socket tears its connections down.
    """
    with LOCK:
        if sock not in _live:
            return
        for endpoint, st in sock._stats_by_endpoint().items():
            key = (endpoint, sock.type.name)
            total = _closed.get(key)
            if total is None:
                total = _closed[key] = EndpointStats()
            total.add_counters(st)
        _live.discard(sock)


def snapshot() -> dict[tuple[str, str], EndpointStats]:
    """Statistics of this process by ``(endpoint, socket type name)``.

    Live sockets' counters and gauges, plus the counters of sockets that
    have closed.  Safe to call from any thread.
    """
    out: dict[tuple[str, str], EndpointStats] = {}
    with LOCK:
        for key, closed in _closed.items():
            out[key] = EndpointStats()
            out[key].add_counters(closed)
        for sock in list(_live):
            kind = sock.type.name
            for endpoint, st in sock._stats_by_endpoint().items():
                total = out.get((endpoint, kind))
                if total is None:
                    total = out[(endpoint, kind)] = EndpointStats()
                total.add(st)
    return out


def _forget_after_fork() -> None:
    # In a fork() child the parent's sockets and totals are the parent's:
    # counting them here too would report them twice.  The lock may have
    # been held by a thread of the parent that the child does not have.
    global LOCK
    LOCK = threading.Lock()
    _live.clear()
    _closed.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
