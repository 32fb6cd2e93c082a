"""Peer events: a socket tells its code when a peer connects and when it departs.

``Socket.peer_events()`` makes a :class:`PeerEvents`, an async iterator of
:class:`PeerEvent`.  Rules:

1. **What comes.**  First a CONNECTED event for each peer attached when the
   iterator was made (so nothing falls between looking and listening), then
   one event per change, in order: CONNECTED when a connection attaches,
   DEPARTED when it ends, whatever ended it (the peer closed or died; this
   socket's unbind or disconnect).  A death is known as soon as the
   transport knows it: on ``shm://``, at once (the doorbell's end-of-file).
   A departed peer's messages may still be received after its event.
2. **Bounded.**  Each iterator keeps at most ``max_events`` events nobody
   has read; when another comes, the oldest is dropped and counted in
   :attr:`PeerEvents.missed`.  A program that finds ``missed`` non-zero
   and needs the whole picture makes a new iterator: it starts with the
   peers attached now.  Events cost nothing when no iterator exists.
3. **The end.**  ``aclose()`` (or leaving ``async with``) stops the
   iterator: it keeps nothing more.  When the socket closes, the iterator
   gives what it holds and then ends; close itself makes no events.
4. **Trio's rules.**  ``__anext__`` is a checkpoint and cancellation is
   atomic: a cancelled wait takes no event.  Several iterators each get
   every event; one iterator shared by several tasks gives each event to
   one of them.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import MutableSet
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import trio

from ._args import check_count
from ._trio import ki_protected, retry
from ._types import SocketType

if TYPE_CHECKING:
    from ._transport import Pipe

__all__ = ["PeerEvent", "PeerEventKind", "PeerEvents"]


class PeerEventKind(enum.StrEnum):
    """What happened to a peer."""

    CONNECTED = "connected"
    DEPARTED = "departed"


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """One peer's connection attached or ended.

    ``routing_id`` is the id the peer goes by: for a ROUTER, the id it
    routes by (the peer's ``routing_id``, or the one the ROUTER made up);
    for other sockets, the ``routing_id`` the peer stated, or None.
    ``peer_pid`` is the peer's process where the transport knows it (shm
    and inproc), else 0; it is for messages only.
    """

    kind: PeerEventKind
    endpoint: str
    routing_id: bytes | None
    peer_type: SocketType
    peer_pid: int


class PeerEvents:
    """An async iterator of a socket's :class:`PeerEvent` (see the module rules).

    Made by :meth:`shmsock.Socket.peer_events`.  Also an async context
    manager, which closes it when the block ends.
    """

    __slots__ = ("__weakref__", "_closed", "_ended", "_events", "_lot", "_watchers", "missed")

    def __init__(self, watchers: MutableSet[PeerEvents], max_events: int) -> None:
        check_count(max_events, "max_events", 1)
        self._events: deque[PeerEvent] = deque(maxlen=max_events)
        self._lot = trio.lowlevel.ParkingLot()
        self._watchers = watchers
        self._closed = False  # aclose(): nothing more
        self._ended = False  # the socket closed: what is held, then the end
        #: Events dropped because ``max_events`` were unread (rule 2).
        self.missed = 0
        watchers.add(self)

    def put(self, event: PeerEvent) -> None:
        """The socket's side: *event* happened."""
        events = self._events
        if len(events) == events.maxlen:
            self.missed += 1
        events.append(event)
        if self._lot:
            self._lot.unpark_all()

    def end(self) -> None:
        """The socket's side: it closed."""
        self._ended = True
        self._watchers.discard(self)
        self._lot.unpark_all()

    def __aiter__(self) -> PeerEvents:
        return self

    @ki_protected
    async def __anext__(self) -> PeerEvent:
        """The next event, waiting for one.

        Raises:
            StopAsyncIteration: the iterator was closed, or the socket
                closed and every event it held was read.

        On cancel:
            No event is taken.
        """
        try:
            return await retry(self._take, self._wait)
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def receive_nowait(self) -> PeerEvent:
        """The next event now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no event now.
            trio.EndOfChannel: the iterator was closed, or the socket
                closed and every event it held was read.
        """
        return self._take()

    def _take(self) -> PeerEvent:
        if self._closed:
            raise trio.EndOfChannel
        if self._events:
            return self._events.popleft()
        if self._ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def _wait(self) -> bool:
        await self._lot.park()
        return True

    def close(self) -> None:
        """Stop: keep no more events; tasks waiting in ``__anext__`` end their iteration."""
        self._closed = True
        self._events.clear()
        self._watchers.discard(self)
        self._lot.unpark_all()

    async def aclose(self) -> None:
        """:meth:`close`, as an async method (a checkpoint)."""
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> PeerEvents:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def event_of(kind: PeerEventKind, pipe: Pipe, routing_id: bytes | None) -> PeerEvent:
    """The event of *kind* about *pipe*."""
    try:
        pid = pipe.peer_pid
    except Exception:  # pragma: no cover - a transport that cannot say
        pid = 0
    return PeerEvent(kind, pipe.endpoint, routing_id, pipe.peer_type, pid)
