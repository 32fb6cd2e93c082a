"""The socket's end of the transport contract: its pipes, its transports, its Events.

A :class:`Hub` is what a socket hands its transports as ``Events``: the
one way a transport reaches up (``shmsock._transport``, rule 1).  It turns
what they report into the socket's state, and nothing more:

- a pipe that attaches or reports room or data joins the pattern's ready
  queues (``_patterns/_queues.py`` keeps them);
- the pattern hears of pipes that attach and go, and of control frames;
- tasks parked on the socket are woken (``_waiting.py`` parks them).

It also owns what every transport of the socket shares: the reactor (one
epoll set, one background task), the list of pipes whatever their scheme,
and the retiring of finished pipes, which happens only at the safe points
the socket chooses (:meth:`Hub.reap`), never in the middle of a read.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ._patterns import Pattern
from ._peerevents import PeerEventKind, PeerEvents, event_of
from ._stats import EndpointStats
from ._transport import NO_LIMIT, Pipe, SocketSpec, Transport, WakeUps, load, scheme_of
from ._transport._reactor import Reactor
from ._trio import ki_protected

if TYPE_CHECKING:
    import socket

__all__ = ["Hub"]


def _nothing() -> None:
    pass


class Hub:
    """Pipes, transports, reactor and parking lots of one socket."""

    def __init__(self, spec: SocketSpec, pattern: Pattern) -> None:
        self.spec = spec
        self.pattern = pattern
        self.queues = pattern.queues
        self.reactor = Reactor()
        self.transports: dict[str, Transport] = {}
        #: Every attached pipe not yet retired, of every transport.
        self.pipes: list[Pipe] = []
        #: The wake-up capability of the transport that has one (shm).
        self.bells: WakeUps | None = None
        #: The largest one-frame message every transport surely writes at once.
        self.max_simple = sys.maxsize
        #: The smallest max_msg_size among the live peers (what each stated).
        self.peer_limit = NO_LIMIT
        #: Called when max_simple or peer_limit change (the socket's fast path
        #: folds them into one comparison).
        self.limits_changed: Callable[[], None] = _nothing
        #: Pipes that finished, to retire at the next safe point (reap).
        self.finished_pipes: list[Pipe] = []
        # Where tasks wait (see _waiting): for a message, for room, for the
        # readers to drain (linger), for peers.
        self.recv_lot = trio.lowlevel.ParkingLot()
        self.send_lot = trio.lowlevel.ParkingLot()
        self.drain_lot = trio.lowlevel.ParkingLot()
        self.peers_lot = trio.lowlevel.ParkingLot()
        #: The descriptor a task is waiting on directly, if any (see _waiting).
        self.direct: socket.socket | None = None
        self._start_soon: Callable[..., Any] | None = None
        self._later: list[tuple[float, Callable[[], None]]] = []
        #: Peer-event iterators that listen (``_peerevents``); empty: no cost.
        self.watchers: weakref.WeakSet[PeerEvents] = weakref.WeakSet()
        self.closed = False

    # -- transports ------------------------------------------------------------------

    def transport_for(self, endpoint: str) -> Transport:
        """The transport of *endpoint*'s scheme, made on first use.

        Raises TypeError or InvalidEndpoint for an endpoint of no known scheme.
        """
        scheme = scheme_of(endpoint)
        transport = self.transports.get(scheme)
        if transport is None:
            transport = self.transports[scheme] = load(scheme)(self.spec, self, self.reactor)
            if transport.bells is not None:
                self.bells = transport.bells
            self.max_simple = min(self.max_simple, transport.max_simple)
            self.limits_changed()
        return transport

    def start(self, start_soon: Callable[..., Any]) -> None:
        """The socket runs: timers may start now (*start_soon* starts a task)."""
        self._start_soon = start_soon
        later, self._later = self._later, []
        for seconds, fn in later:
            self.call_later(seconds, fn)

    @ki_protected
    async def run(self) -> None:
        """The background task: handle every descriptor's events until closed."""
        if not self.reactor.opened.is_set():  # no descriptor to watch yet
            await self.reactor.opened.wait()
        if self.closed:  # closed before this task first ran
            return
        fd = self.reactor.fileno()
        try:
            while not self.closed:
                await trio.lowlevel.wait_readable(fd)
                self.poll()
        except trio.ClosedResourceError:
            pass  # close() closed the epoll descriptor under us

    def poll(self) -> bool:
        """Handle whatever events are ready, without waiting; retire what finished.

        The socket calls this itself before it reports WouldBlock, so an
        event that already happened counts even if the background task has
        not run since.  Returns whether there was anything to handle.
        """
        got = self.reactor.poll()
        if self.finished_pipes:
            self.reap()
        if got:
            self.pattern.polled()
        return got

    def reap(self) -> None:
        """Retire the pipes that finished: a safe point, between reads."""
        finished = self.finished_pipes
        while finished:
            pipe = finished.pop()
            if pipe in self.pipes:
                self.queues.remove(pipe)
                self.pipes.remove(pipe)
                self.pattern.retired(pipe)
                pipe.retire()

    def only_pipe(self) -> Pipe | None:
        """The one live pipe, if there is exactly one."""
        pipes = self.pipes
        if len(pipes) == 1 and pipes[0].alive:
            return pipes[0]
        return None

    def live(self) -> int:
        return sum(p.alive for p in self.pipes)

    def check_usable(self) -> None:
        """Raise why a connect brought no pipe (a refusal), if a transport knows."""
        for transport in self.transports.values():
            transport.check_usable()

    def stats(self) -> dict[str, EndpointStats]:
        """Every transport's statistics by endpoint; see Transport.stats."""
        transports = list(self.transports.values())
        if len(transports) == 1:
            return transports[0].stats()  # a fresh dict already
        out: dict[str, EndpointStats] = {}
        for transport in transports:
            for endpoint, st in transport.stats().items():
                mine = out.get(endpoint)
                if mine is None:
                    out[endpoint] = st
                else:
                    mine.add(st)
        return out

    # -- Events: what the transports report -------------------------------------------

    def attached(self, pipe: Pipe) -> None:
        self.pipes.append(pipe)
        self.queues.want_send(pipe)
        self.queues.want_recv(pipe)
        self.pattern.attached(pipe)
        if self.watchers:
            self.tell(PeerEventKind.CONNECTED, pipe)
        self._peer_limits()
        self.peers_lot.unpark_all()
        self.wake(True, True)

    def gone(self, pipe: Pipe) -> None:
        if pipe.readable:
            self.queues.want_recv(pipe)  # what it sent before it went is still read
        self.pattern.gone(pipe)
        if self.watchers:
            self.tell(PeerEventKind.DEPARTED, pipe)
        self._peer_limits()
        self.peers_lot.unpark_all()
        self.wake(True, True)

    def _peer_limits(self) -> None:
        limit = min((p.peer_limit for p in self.pipes if p.alive), default=NO_LIMIT)
        if limit != self.peer_limit:
            self.peer_limit = limit
            self.limits_changed()

    def tell(self, kind: PeerEventKind, pipe: Pipe, to: PeerEvents | None = None) -> None:
        """Give every peer-event iterator (or only *to*) the event *kind* about *pipe*."""
        event = event_of(kind, pipe, self.pattern.routing_id_of(pipe))
        for watcher in [to] if to is not None else list(self.watchers):
            watcher.put(event)

    def finished(self, pipe: Pipe) -> None:
        self.finished_pipes.append(pipe)

    def ready(self, pipe: Pipe, recv: bool, send: bool) -> None:
        if recv:
            self.queues.want_recv(pipe)
        if send:
            self.queues.want_send(pipe)
        self.wake(recv, send)

    def changed(self) -> None:
        self.wake(True, True)

    def control(self, pipe: Pipe, frames: list[bytes]) -> None:
        self.pattern.on_control(pipe, frames)
        if self.recv_lot:
            self.recv_lot.unpark_all()  # an XPUB receives subscriptions

    def send_control(self, frames: list[bytes]) -> None:
        """Send a control message to every peer, now and to come (see Transport.send_control)."""
        for transport in self.transports.values():
            transport.send_control(frames)

    def identity_in_use(self, identity: bytes) -> bool:
        return self.pattern.identity_in_use(identity)

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        if self.closed:
            return
        if self._start_soon is None:
            self._later.append((seconds, fn))
            return
        self._start_soon(self._after, seconds, fn)

    @ki_protected
    async def _after(self, seconds: float, fn: Callable[[], None]) -> None:
        await trio.sleep(seconds)
        if not self.closed:
            fn()

    # -- waking --------------------------------------------------------------------

    def wake(self, recv: bool, send: bool) -> None:
        """Wake the tasks that *recv* (data) or *send* (room) may let go on."""
        # Called on every doorbell a waiter handles; the lots are most often
        # empty, and an empty lot is cheaper to test than to unpark.
        if recv and self.recv_lot:
            self.recv_lot.unpark_all()
        if send:
            if self.send_lot:
                self.send_lot.unpark_all()
            if self.drain_lot:
                self.drain_lot.unpark_all()
        self.wake_direct()

    def wake_direct(self) -> None:
        # A task waiting on a descriptor directly is woken as Trio wakes the
        # waiters of a descriptor about to close: its wait raises
        # ClosedResourceError, and it re-checks like any woken waiter.  The
        # descriptor stays open.  A cancel scope around each wait would do
        # the same, but entering and leaving one costs 7.6 us on the 2-core
        # test machine (timeit, warm), about a fifth of what the whole path
        # from a wake-up to the message took (docs/performance.md).
        sock = self.direct
        if sock is not None and sock.fileno() >= 0:
            trio.lowlevel.notify_closing(sock)

    def wake_all(self) -> None:
        """Wake every waiting task (the socket is closing)."""
        self.recv_lot.unpark_all()
        self.send_lot.unpark_all()
        self.peers_lot.unpark_all()
        self.wake_direct()

    # -- the end ---------------------------------------------------------------------

    def disown(self) -> None:
        """This process is a fork() child: let go of everything, touch nothing.

        No Trio call: the child may have forked from a thread that runs no
        Trio loop.  Never raises.
        """
        self.closed = True
        self.watchers.clear()
        for transport in self.transports.values():
            transport.disown()
        self.reactor.disown()
        self.pipes.clear()
        self.queues.clear()
        self.finished_pipes.clear()

    def close(self) -> None:
        """Close every transport (in the order they were made), then the reactor."""
        if self.closed:
            return
        self.closed = True
        for transport in self.transports.values():
            transport.close()
        self.pipes.clear()
        self.queues.clear()
        self.finished_pipes.clear()
        self.reactor.close()
        for watcher in list(self.watchers):
            watcher.end()
