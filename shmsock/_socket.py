"""The Trio socket: its public methods, each a check and one call of the one Trio shape.

Trio semantics, for every socket type:

- Every ``async`` method is a checkpoint on every call, and cancellation is
  atomic: a cancelled ``recv`` consumes nothing and a cancelled ``send``
  sends nothing.  ``_trio.retry`` writes the shape once.
- ``*_nowait`` methods never wait: they raise :class:`trio.WouldBlock`.
- Several tasks may send, and several may receive, on one socket at once;
  each message goes to exactly one of them.
- ``close()``/``aclose()`` wake every task blocked on the socket with
  :class:`trio.ClosedResourceError`.
- The public methods are protected from KeyboardInterrupt, as Trio's own
  channels are (``_trio.ki_protected``).

Where things are: the pattern decides where a message goes and where the
next comes from (``_patterns``); the outbox and the inbox place and take
without waiting (``_outbox``, ``_inbox``); the waiter waits
(``_waiting``); the hub is the socket's end of the transport contract
(``_hub``, ``_transport``).  This module holds the class, what it is
made of, and the endpoint methods; its mixins hold the rest of the public
methods: sending and receiving with the two fast paths, which touch the
ready queues and a pipe directly (``_sending``, ``_receiving``), the
options (``_sockopts``) and the socket's life (``_lifetime``).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import trio

from . import _stats
from ._args import check_count, socket_type
from ._errors import StateError
from ._hub import Hub
from ._inbox import Inbox
from ._lifetime import Lifetime, open_sockets
from ._options import Options, make_options
from ._outbox import Outbox
from ._patterns import PATTERNS, make_pattern
from ._peerevents import PeerEventKind, PeerEvents
from ._receiving import Receiving
from ._sending import Sending
from ._serializing import Serializing
from ._sockopts import SocketOptions, refuse_pyzmq_options
from ._stats import EndpointStats
from ._transport import Pipe, SocketSpec
from ._trio import ki_protected, require_trio, retry
from ._types import SocketType
from ._waiting import Waiter

__all__ = ["Socket", "socket"]


# (No typing.cast below: it is a function call, and these are hot paths.)


class Socket(Sending, Receiving, Serializing, SocketOptions, Lifetime):
    """A shmsock socket.  Create one with :func:`shmsock.socket`.

    The methods follow pyzmq's names and Trio's rules; docs/trio.md lists
    the rules every method keeps.

    A socket is its own async context manager: ``async with`` runs its
    background task in a nursery of the block and closes the socket when
    the block ends.  Used without the block, the socket runs that task as a
    Trio system task from its first ``bind`` or ``connect``; close it with
    :meth:`aclose` (or :meth:`close`).  One left open is closed, as by
    :meth:`close`, when ``trio.run`` ends.  See docs/trio.md, "Lifetime".
    """

    # No __dict__: a misspelt option (``sock.lingr = 0``) raises
    # AttributeError, as in pyzmq, instead of setting nothing.  (The mixins
    # have empty slots; every attribute is listed here.)
    __slots__ = (
        "__weakref__",
        "_attached_once",
        "_closed",
        "_endpoints",
        "_entered",
        "_fan_limit",
        "_hub",
        "_inbox",
        "_iter_run",
        "_kind",
        "_last_endpoint",
        "_nursery",
        "_nursery_manager",
        "_options",
        "_outbox",
        "_pace",
        "_pattern",
        "_pid",
        "_plain_limit",
        "_plain_recv",
        "_recv_cancelled",
        "_recv_ready",
        "_rotate_recv",
        "_send_ready",
        "_started",
        "_waiter",
    )

    def __init__(self, kind: SocketType, options: Options) -> None:
        self._kind = kind
        self._options = options
        self._pattern = pattern = make_pattern(kind)
        pattern.set_options(options)
        spec = SocketSpec(
            kind=kind,
            options=options,
            compatible=pattern.compatible,
            max_peers=pattern.max_peers,
            writes_data=pattern.writes_data,
            reads_data=pattern.reads_data,
            greeting=pattern.greeting if pattern.greets else None,
            envelope=pattern.envelope,
        )
        self._hub = hub = Hub(spec, pattern)
        self._waiter = Waiter(hub, self._check_open)
        self._outbox = Outbox(pattern, hub, self._check_open, options.max_msg_size)
        self._outbox.configure(options)
        self._inbox = Inbox(pattern, hub, self._check_open)
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None  # the `async with` block's
        self._entered = False  # in an `async with` block
        self._started = False  # the background task runs (in a nursery or as a system task)
        self._attached_once = False  # bound or connected at least once
        self._endpoints = 0
        self._last_endpoint: str | None = None
        self._iter_run = 0  # messages `async for` gave out since a checkpoint
        # What the fast paths read, prebuilt.  The queues hold this socket's
        # pipes, which the pattern sees as PipeViews.
        self._send_ready: deque[Pipe] = pattern.queues.send  # type: ignore[assignment]
        self._recv_ready: deque[Pipe] = pattern.queues.recv  # type: ignore[assignment]
        self._rotate_recv = pattern.rotate_recv
        self._recv_cancelled = pattern.recv_cancelled
        self._plain_recv = False  # (set by _derive)
        self._plain_limit = -1
        self._fan_limit = -1
        self._pace = 0
        self._derive()
        hub.limits_changed = self._derive
        self._pid = os.getpid()  # the process it belongs to (see _disown)
        _stats.track(self)
        open_sockets.add(self)

    def _derive(self) -> None:
        """Set what the fast paths read from the options, the transports and the pattern."""
        self._plain_recv = self._pattern.fast_recv()
        self._pace = self._options.schedule_every_us * 1000  # _trio, step 3
        if self._pattern.plain_send and not self._closed:
            # A plain message at most this long goes by the send fast path
            # (-1: no message is that short): one comparison for every
            # limit, the transports', ours and the live peers'.
            hub = self._hub
            self._plain_limit = min(hub.max_simple, self._options.max_msg_size, hub.peer_limit)
        else:
            self._plain_limit = -1
        if self._pattern.fans_out and not self._closed:
            # The same for a PUB's one-frame message (Outbox.publish_one).
            hub = self._hub
            self._fan_limit = min(hub.max_simple, self._options.max_msg_size, hub.peer_limit)
        else:
            self._fan_limit = -1

    # -- statistics --------------------------------------------------------------------

    def _stats_by_endpoint(self) -> dict[str, EndpointStats]:
        """This socket's statistics by endpoint (see shmsock._stats).

        Called with ``_stats.LOCK`` held, possibly from another thread.
        """
        out = self._hub.stats()
        for endpoint, seconds in dict(self._waiter.send_blocked).items():
            out.setdefault(endpoint, EndpointStats()).send_blocked_seconds += seconds
        return out

    def stats(self) -> dict[str, EndpointStats]:
        """This socket's counters and gauges, by endpoint (a snapshot).

        The same figures the Prometheus exporter reports for the socket
        (see :class:`shmsock.EndpointStats`): ``dropped`` counts, among
        others, the messages a PUB's subscribers missed for want of room
        (per subscriber: ``pub.subscribers()``).  Synchronous.

        Raises:
            Nothing: a closed socket has no statistics left (an empty dict).
        """
        if self._closed:
            return {}
        with _stats.LOCK:
            return self._stats_by_endpoint()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._hub.pipes)} peers"
        return f"<shmsock.Socket {self._kind.name} {state}>"

    # -- endpoints -----------------------------------------------------------------------

    @ki_protected
    def bind(self, endpoint: str) -> str:
        """Bind to an endpoint; peers that connect there attach.

        ``shm://NAME``, ``inproc://NAME``, and with pyzmq ``tcp://HOST:PORT``
        and ``ipc://PATH`` (see docs/network.md).  Returns the endpoint as
        bound: for ``tcp://*:0`` or ``tcp://127.0.0.1:0``, with the port the
        system chose (pyzmq's ``LAST_ENDPOINT``; also :attr:`last_endpoint`).

        Synchronous and immediate.  Outside ``async with``, the first bind
        or connect starts the socket's background task (see
        :class:`Socket`).

        Raises:
            InvalidEndpoint: not an endpoint of a known scheme, or a bad NAME.
            TypeError: *endpoint* is not a str.
            AddressInUse: a live socket is bound there (a dead binder's
                endpoint is taken over), or a tcp:// port is in use.
            UnsafeFile, SharedMemoryFull: shm:// files that cannot be used or made.
            FileExistsError: an ipc:// path that holds a file other than a socket.
            ImportError: tcp:// or ipc:// without pyzmq (``pip install 'shmsock[zmq]'``).
            StateError: a PAIR that has bound or connected already.
            trio.ClosedResourceError: the socket is closed.
            NotInTrio: outside ``trio.run``.
        """
        self._check_open()
        transport = self._hub.transport_for(endpoint)
        self._check_endpoint_count()
        require_trio("bind()")
        bound = transport.bind(endpoint) or endpoint
        self._last_endpoint = bound
        self._added_endpoint()
        return bound

    @property
    def last_endpoint(self) -> str | None:
        """The endpoint the last :meth:`bind` bound (with its port), or None."""
        return self._last_endpoint

    @ki_protected
    def connect(self, endpoint: str) -> None:
        """Connect to an endpoint, now or whenever a binder appears there.

        Synchronous; never waits for the binder.  The connection attaches
        in the background, and again by itself after its binder is
        replaced.

        Raises:
            InvalidEndpoint: not an endpoint of a known scheme, or a bad NAME.
            TypeError: *endpoint* is not a str.
            UnsafeFile, SharedMemoryFull: shm:// files that cannot be used or made.
            ConnectionRefusedError: inproc:// bound in another trio.run.
            ImportError: tcp:// or ipc:// without pyzmq (``pip install 'shmsock[zmq]'``).
            StateError: a PAIR that has bound or connected already.
            trio.ClosedResourceError: the socket is closed.
            NotInTrio: outside ``trio.run``.
        """
        self._check_open()
        transport = self._hub.transport_for(endpoint)
        self._check_endpoint_count()
        require_trio("connect()")
        transport.connect(endpoint)
        self._added_endpoint()

    def _added_endpoint(self) -> None:
        self._endpoints += 1
        self._attached_once = True
        self._derive()
        if not self._started:
            self._start_system_task()

    @ki_protected
    def unbind(self, endpoint: str) -> None:
        """Stop accepting connections at an endpoint this socket bound.

        As pyzmq's ``unbind``: the endpoint stops accepting at once, so a
        socket that connects there afterwards waits for the next binder,
        and the connections accepted there end: their peers see them end
        as when this socket closes.  What this socket sent on them is never
        withdrawn: those peers still read it.  What they sent that this
        socket has not received is discarded: the messages already taken
        are counted in ``dropped``, and those still in a live connector's
        shm:// ring stay there for the next socket that binds the endpoint
        (as when a binder dies).  The socket's other endpoints are
        untouched, and it may bind the endpoint again (a PAIR may bind or
        connect anew).  A task waiting to send or receive goes on with the
        other peers, or waits for new ones; a PAIR is then as a new PAIR,
        and a REQ whose request went to a peer it let go raises
        trio.BrokenResourceError from its ``recv``, as when that peer dies.
        Synchronous: it never waits.

        Raises:
            InvalidEndpoint: an endpoint this socket has not bound (or a
                malformed one).
            trio.ClosedResourceError: the socket is closed.
        """
        self._check_open()
        self._hub.transport_for(endpoint).unbind(endpoint)
        self._endpoints -= 1
        self._detached()

    @ki_protected
    def disconnect(self, endpoint: str) -> None:
        """Undo :meth:`connect` to an endpoint.

        As pyzmq's ``disconnect``: the connection to the binder there ends
        (the binder sees it end as when this socket closes), and the
        socket's place at the endpoint is released.  What this socket sent
        is never withdrawn: the binder still reads it.  What the binder
        sent that this socket has not received is discarded and counted in
        ``dropped``.  A socket that connected to the endpoint several times
        disconnects them all.  The other endpoints are untouched, and the
        socket may connect again.  Waiting tasks go on as after
        :meth:`unbind`.  Synchronous: it never waits.

        Raises:
            InvalidEndpoint: an endpoint this socket is not connected to
                (or a malformed one).
            trio.ClosedResourceError: the socket is closed.
        """
        self._check_open()
        self._endpoints -= self._hub.transport_for(endpoint).disconnect(endpoint)
        self._detached()

    def _detached(self) -> None:
        self._hub.reap()  # the pipes it ended go now
        self._pattern.detached()

    def _check_endpoint_count(self) -> None:
        limit = self._pattern.max_endpoints
        if limit is not None and self._endpoints >= limit:
            raise StateError(
                f"a {self._kind.name} socket has exactly one peer: bind or connect it once"
                if limit == 1
                else f"a {self._kind.name} socket binds or connects at most {limit} times"
            )

    @property
    def peer_count(self) -> int:
        """Connections attached now, to live peers."""
        return self._hub.live()

    @ki_protected
    async def wait_peers(self, count: int = 1) -> None:
        """Wait until at least *count* live peers are attached.

        A shmsock addition, for the "slow joiner" problem: a PUSH that
        starts sending before all its workers have connected gives every
        message to the first one.

        Raises:
            TypeError, ValueError: *count* is not an int >= 0.
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.
            NotInTrio: outside ``trio.run``.

        On cancel:
            Nothing changes.
        """
        check_count(count, "count", 0)
        require_trio("wait_peers()")
        await retry(self._peers_at_least, self._waiter.wait_peers, count)

    def peer_events(self, max_events: int = 1024) -> PeerEvents:
        """An async iterator of peer events: which peers connect, and when they depart.

        ::

            async for event in sock.peer_events():
                print(event.kind, event.endpoint, event.routing_id)

        It starts with a CONNECTED event for each peer attached now, then
        gives one :class:`~shmsock.PeerEvent` per change.  It keeps at most
        *max_events* unread events: beyond that the oldest are dropped and
        counted in its ``missed``.  It ends when the socket closes (after
        the events it holds) or when it is closed (``aclose()``, or
        ``async with``).  Synchronous; the iterator's ``__anext__`` is a
        checkpoint, and a cancelled one takes no event.  docs/peer-events.md
        has the rules.

        Raises:
            TypeError, ValueError: *max_events* is not an int >= 1.
            trio.ClosedResourceError: the socket is closed.
        """
        self._check_open()
        events = PeerEvents(self._hub.watchers, max_events)
        for pipe in self._hub.pipes:
            if pipe.alive:
                self._hub.tell(PeerEventKind.CONNECTED, pipe, events)
        return events

    def _peers_at_least(self, count: int) -> None:
        self._check_open()
        if self._hub.live() < count:
            raise trio.WouldBlock


refuse_pyzmq_options(Socket)


def socket(kind: SocketType | int | str, **options: Any) -> Socket:
    """Create a socket of *kind*.

    Either ``async with shmsock.socket(shmsock.PUSH) as s:``, which runs the
    socket's background task in the block and closes the socket when the
    block ends, or ``s = shmsock.socket(shmsock.PUSH)`` and later
    ``await s.aclose()`` (see :class:`Socket`).  Creating a socket does
    nothing else: no file, no task, and it may be done outside Trio.

    Options are described in :class:`shmsock.Options`; unknown names and
    bad values raise TypeError or ValueError naming the option.  *kind* is
    a :class:`SocketType` such as ``shmsock.PUSH``, its libzmq number, or
    its name (``"PUSH"``, any case); anything else raises TypeError, an
    unknown number or name ValueError.
    """
    kind = socket_type(kind)
    return _socket_class(kind)(kind, make_options(**options))


_classes: dict[SocketType, type[Socket]] = {}


def _socket_class(kind: SocketType) -> type[Socket]:
    """Socket, or for a type with methods of its own (its pattern's
    ``socket_methods``, say SUB's ``subscribe``) a subclass with them mixed in."""
    cls = _classes.get(kind)
    if cls is None:
        methods = PATTERNS[kind].socket_methods
        if methods is None:
            cls = Socket
        else:
            name = f"{kind.name.capitalize()}Socket"
            cls = type(name, (methods, Socket), {"__slots__": (), "__module__": "shmsock"})
        _classes[kind] = cls
    return cls
