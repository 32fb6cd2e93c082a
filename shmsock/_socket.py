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
(``_hub``, ``_transport``).  This module holds the public methods and the
two fast paths, which touch the ready queues and a pipe directly.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, ClassVar, Literal, overload

import trio

from . import _stats
from ._args import as_bytes, check_count, frames_of, socket_type
from ._errors import MessageTooLarge, StateError
from ._hub import Hub
from ._inbox import Inbox
from ._lifetime import Lifetime, open_sockets
from ._loan import LoanBlock
from ._options import Options, make_options
from ._outbox import Outbox
from ._patterns import make_pattern
from ._sockopts import SocketOptions, refuse_pyzmq_options
from ._stats import EndpointStats
from ._stream import stream
from ._transport import HeldMessage, Lease, Pipe, Queued, SocketSpec
from ._trio import (
    checkpoint_if_cancelled,
    clock,
    ki_protected,
    now,
    require_trio,
    retry,
    shielded_checkpoint,
)
from ._types import SocketType
from ._waiting import Waiter

__all__ = ["Socket", "socket"]


# (No typing.cast below: it is a function call, and these are hot paths.)


def _frames(item: Queued) -> list[bytes]:
    if type(item) is bytes:
        return [item]
    if type(item) is HeldMessage:
        item = item.copied()
        if type(item) is bytes:
            return [item]
    return list(item.frames)  # type: ignore[union-attr]


def _leases(item: Queued) -> list[Lease]:
    """Every frame of *item* as a Lease (in place when its transport holds it)."""
    if type(item) is bytes:
        return [Lease(memoryview(item))]
    if type(item) is HeldMessage:
        return item.leased()
    return [Lease(memoryview(f)) for f in item.frames]  # type: ignore[union-attr]


def _first(item: Queued) -> bytes:
    """The frame of a one-frame message the general path took (not bytes, or held)."""
    if type(item) is HeldMessage:
        item = item.copied()
        if type(item) is bytes:
            return item
    return item.frames[0]  # type: ignore[union-attr]


class Socket(SocketOptions, Lifetime):
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

    #: How many messages ``async for`` hands out in a row without a full
    #: checkpoint when they are already there (see :meth:`__anext__`).
    ITER_BATCH: ClassVar[int] = 64

    # No __dict__: a misspelt option (``sock.lingr = 0``) raises
    # AttributeError, as in pyzmq, instead of setting nothing.  (The mixins
    # have empty slots; every attribute is listed here.)
    __slots__ = (
        "__weakref__",
        "_attached_once",
        "_closed",
        "_endpoints",
        "_entered",
        "_hub",
        "_inbox",
        "_iter_run",
        "_kind",
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
        spec = SocketSpec(
            kind=kind,
            options=options,
            compatible=pattern.compatible,
            max_peers=pattern.max_peers,
            writes_data=pattern.writes_data,
            reads_data=pattern.reads_data,
        )
        self._hub = hub = Hub(spec, pattern)
        self._waiter = Waiter(hub, self._check_open)
        self._outbox = Outbox(pattern, hub, self._check_open, options.max_msg_size)
        self._inbox = Inbox(pattern, hub, self._check_open)
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None  # the `async with` block's
        self._entered = False  # in an `async with` block
        self._started = False  # the background task runs (in a nursery or as a system task)
        self._attached_once = False  # bound or connected at least once
        self._endpoints = 0
        self._iter_run = 0  # messages `async for` gave out since a checkpoint
        # What the fast paths read, prebuilt.  The queues hold this socket's
        # pipes, which the pattern sees as PipeViews.
        self._send_ready: deque[Pipe] = pattern.queues.send  # type: ignore[assignment]
        self._recv_ready: deque[Pipe] = pattern.queues.recv  # type: ignore[assignment]
        self._rotate_recv = pattern.rotate_recv
        self._recv_cancelled = pattern.recv_cancelled
        self._plain_recv = pattern.plain_recv
        self._plain_limit = -1
        self._pace = 0
        self._derive()
        hub.limits_changed = self._derive
        self._pid = os.getpid()  # the process it belongs to (see _disown)
        _stats.track(self)
        open_sockets.add(self)

    def _derive(self) -> None:
        """Set what the fast paths read from the options and the transports."""
        self._pace = self._options.schedule_every_us * 1000  # _trio, step 3
        if self._pattern.plain_send and not self._closed:
            # A plain message at most this long goes by the send fast path
            # (-1: no message is that short): one comparison for every
            # limit, the transports', ours and the live peers'.
            hub = self._hub
            self._plain_limit = min(hub.max_simple, self._options.max_msg_size, hub.peer_limit)
        else:
            self._plain_limit = -1

    # -- statistics --------------------------------------------------------------------

    def _stats_by_endpoint(self) -> dict[str, EndpointStats]:
        """This socket's statistics by endpoint (see shmsock._stats).

        Called with ``_stats.LOCK`` held, possibly from another thread.
        """
        out = self._hub.stats()
        for endpoint, seconds in dict(self._waiter.send_blocked).items():
            out.setdefault(endpoint, EndpointStats()).send_blocked_seconds += seconds
        return out

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._hub.pipes)} peers"
        return f"<shmsock.Socket {self._kind.name} {state}>"

    # -- endpoints -----------------------------------------------------------------------

    @ki_protected
    def bind(self, endpoint: str) -> None:
        """Bind to an endpoint (``shm://NAME``, ``inproc://NAME``); peers that connect there attach.

        Synchronous and immediate.  Outside ``async with``, the first bind
        or connect starts the socket's background task (see
        :class:`Socket`).

        Raises:
            InvalidEndpoint: not an endpoint of a known scheme, or a bad NAME.
            TypeError: *endpoint* is not a str.
            AddressInUse: a live socket is bound there (a dead binder's
                endpoint is taken over).
            UnsafeFile, SharedMemoryFull: shm:// files that cannot be used or made.
            StateError: a PAIR that has bound or connected already.
            trio.ClosedResourceError: the socket is closed.
            NotInTrio: outside ``trio.run``.
        """
        self._check_open()
        transport = self._hub.transport_for(endpoint)
        self._check_endpoint_count()
        require_trio("bind()")
        transport.bind(endpoint)
        self._added_endpoint()

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

    def _peers_at_least(self, count: int) -> None:
        self._check_open()
        if self._hub.live() < count:
            raise trio.WouldBlock

    # -- sending ---------------------------------------------------------------------------

    @ki_protected
    def send_nowait(self, data: bytes) -> None:
        """Send one message now or raise trio.WouldBlock.

        *data* is any bytes-like object.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            MessageTooLarge: over ``max_msg_size``, or more than a ring can
                take at once (only ``await send()`` streams such messages).
            StateError: the socket type or its state forbids sending.
            trio.BrokenResourceError: a PAIR whose peer is gone.
            TypeError: *data* is not bytes-like.
            trio.ClosedResourceError: the socket is closed.
        """
        # Fast path: a plain message to the pipe at the head of the send
        # queue (types with no state to keep; -1 disables it).  Anything but
        # a clean write (full, gone, streaming) goes the general way.
        if type(data) is bytes and len(data) <= self._plain_limit:
            ready = self._send_ready
            if ready:
                pipe = ready[0]
                rc = pipe.try_write(data, len(data))
                if rc >= 0:
                    if rc:
                        pipe.wake()
                    ready.rotate(-1)
                    return
        self._outbox.send_nowait([as_bytes(data)])

    @ki_protected
    async def send(self, data: bytes) -> None:
        """Send one message, waiting for a peer with room.

        Waits while no peer is connected or every peer's ring is full.  A
        message larger than half the ring is streamed in fragments while
        the receiver drains them; the receiver delivers it only once
        complete.

        Raises:
            MessageTooLarge: over ``max_msg_size``.
            StateError: the socket type or its state forbids sending.
            trio.BrokenResourceError: a PAIR whose peer is gone.
            IncompatiblePeer, VersionMismatch, SharedMemoryFull, UnsafeFile,
                ConnectionRefusedError: while it has no peer, why the binder
                refused this connecting socket (see ``recv``).
            TypeError: *data* is not bytes-like.
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.

        On cancel:
            Nothing is sent, whatever the message's size.  (Only a message
            of thousands of frames is streamed: one cancelled midway is
            dropped by the receiver, never delivered in part.)
        """
        await checkpoint_if_cancelled()
        # Fast path first: send_nowait's, then step 3 of _trio inline.
        if type(data) is bytes and len(data) <= self._plain_limit:
            ready = self._send_ready
            if ready:
                pipe = ready[0]
                rc = pipe.try_write(data, len(data))
                if rc >= 0:
                    if rc:
                        pipe.wake()
                    ready.rotate(-1)
                    pace = self._pace
                    if pace and now() - clock.last < pace:
                        return
                    await shielded_checkpoint()
                    clock.last = now()
                    return
        frames = [as_bytes(data)]
        try:
            await retry(
                self._outbox.send_nowait,
                self._waiter.wait_send,
                frames,
                checked=True,
                pace=self._pace,
            )
        except MessageTooLarge:
            await self._stream(frames)

    def loan(self, size: int) -> AbstractAsyncContextManager[memoryview]:
        """Room for a one-frame message of *size* bytes, to fill in place.

        ``async with sock.loan(n) as buf:`` waits, as :meth:`send` does,
        for a peer with room, and gives ``buf``, a writable memoryview of
        *size* bytes.  Leaving the block sends what ``buf`` holds then, as
        one message.  On shm:// the view is of the memory the receiver
        reads (a frame above 64 KiB: the ring's bulk region), so nothing is
        copied; elsewhere, and for REQ and REP, it is a private buffer sent
        at the end of the block.  Do not keep ``buf``, or a view of it,
        past the block: the memory is the receiver's from then on.  While
        the block runs, other messages go to other peers (or wait).

        Raises:
            TypeError, ValueError: *size* is not an int >= 0.
            MessageTooLarge, StateError, trio.BrokenResourceError,
                IncompatiblePeer, VersionMismatch, SharedMemoryFull,
                UnsafeFile, ConnectionRefusedError, trio.ClosedResourceError:
                when the block starts, as for :meth:`send`.

        On cancel:
            Nothing is sent: a block cancelled while it waits for room, or
            while it fills ``buf``, or that raises, sends nothing.  A block
            that ended normally and then has to wait (a private buffer, or
            its peer gone meanwhile) sends nothing if cancelled there.
        """
        check_count(size, "size", 0)
        return LoanBlock(
            size,
            pattern=self._pattern,
            outbox=self._outbox,
            waiter=self._waiter,
            hub=self._hub,
            check_open=self._check_open,
            send=self.send,
        )

    @ki_protected
    def send_multipart_nowait(self, frames: Iterable[bytes]) -> None:
        """Send a multipart message now, all frames or none.

        *frames* is a list (or other iterable) of bytes-like objects, at
        least one.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            ValueError: no frame.
            TypeError: a frame is not bytes-like, or *frames* is bytes or str.
            MessageTooLarge, StateError, trio.BrokenResourceError,
                trio.ClosedResourceError: as for :meth:`send_nowait`.
        """
        self._outbox.send_nowait(frames_of(frames))

    @ki_protected
    async def send_multipart(self, frames: Iterable[bytes]) -> None:
        """Send a message of several frames, delivered all together or not at all.

        Raises:
            ValueError: no frame.
            TypeError: a frame is not bytes-like, or *frames* is bytes or str.
            MessageTooLarge, StateError, trio.BrokenResourceError,
                trio.ClosedResourceError: as for :meth:`send`.

        On cancel:
            No frame is sent.
        """
        parts = frames_of(frames)
        try:
            await retry(self._outbox.send_nowait, self._waiter.wait_send, parts, pace=self._pace)
        except MessageTooLarge:
            await self._stream(parts)

    async def _stream(self, frames: list[bytes]) -> None:
        """A message that was too large to write at once: over a limit, or streamed."""
        self._outbox.size_check(frames)  # over max_msg_size: raised again here
        await stream(
            frames,
            pattern=self._pattern,
            hub=self._hub,
            outbox=self._outbox,
            waiter=self._waiter,
            check_open=self._check_open,
        )

    @ki_protected
    def send_many_nowait(self, messages: Sequence[bytes]) -> None:
        """Send a batch of one-frame messages to one peer, all or none, now.

        One C call writes the whole batch (on shm://).

        Raises:
            trio.WouldBlock: no peer has room for all of it now (nothing sent).
            MessageTooLarge: the batch can never fit a ring at once (send
                smaller batches), or a message is over ``max_msg_size``.
            StateError: REQ and REP send one message at a time; PULL never sends.
            TypeError: *messages* is not a list of bytes-like objects.
            trio.BrokenResourceError, trio.ClosedResourceError: as for
                :meth:`send_nowait`.
        """
        self._outbox.send_batch_nowait(self._outbox.encode_batch(messages))

    @ki_protected
    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Send a batch of one-frame messages to one peer, all or none.

        One C call and at most one checkpoint per batch.  Waits like
        :meth:`send`.

        Raises:
            MessageTooLarge, StateError, TypeError, trio.BrokenResourceError,
                trio.ClosedResourceError: as for :meth:`send_many_nowait`.

        On cancel:
            Nothing is sent.
        """
        await checkpoint_if_cancelled()
        # Joined once: a batch that waits for room is not copied again.
        batch = self._outbox.encode_batch(messages)
        await retry(
            self._outbox.send_batch_nowait,
            self._waiter.wait_send,
            batch,
            checked=True,
            pace=self._pace,
        )

    # -- receiving -------------------------------------------------------------------------

    @overload
    def recv_nowait(self, *, copy: Literal[True] = True) -> bytes: ...

    @overload
    def recv_nowait(self, *, copy: Literal[False]) -> Lease: ...

    @ki_protected
    def recv_nowait(self, *, copy: bool = True) -> bytes | Lease:
        """Receive one message now or raise trio.WouldBlock.

        With ``copy=False`` the message comes as a :class:`shmsock.Lease`,
        as from :meth:`recv_lease`.

        Raises:
            trio.WouldBlock: no message now.
            MultipartMessage: the next message has several frames (it stays
                queued for :meth:`recv_multipart_nowait`).
            CorruptMessage: a peer's ring failed validation (that connection
                is closed; the socket goes on with its other peers).
            StateError: the socket type or its state forbids receiving.
            trio.BrokenResourceError: a PAIR or REQ whose peer is gone.
            trio.ClosedResourceError: the socket is closed.
        """
        # Fast path: a plain message already taken from the transport, at
        # the head pipe of the receive queue (types with no state to keep).
        if self._plain_recv and copy:
            ready = self._recv_ready
            if ready:
                inbox = ready[0].inbox
                if inbox and type(inbox[0]) is bytes:
                    if self._rotate_recv:
                        ready.rotate(-1)
                    return inbox.popleft()  # type: ignore[return-value]
        item = self._inbox.take(False)
        if not copy:
            return _leases(item)[0]
        return item if type(item) is bytes else _first(item)

    @overload
    async def recv(self, *, copy: Literal[True] = True) -> bytes: ...

    @overload
    async def recv(self, *, copy: Literal[False]) -> Lease: ...

    @ki_protected
    async def recv(self, *, copy: bool = True) -> bytes | Lease:
        """Receive one message, waiting until there is one.

        A large message (a frame above 64 KiB, on shm://) is copied once,
        into the bytes returned, and its checksum verified on that copy.
        With ``copy=False`` it comes as a :class:`shmsock.Lease` instead, a
        read-only view of the sender's memory, as from :meth:`recv_lease`.

        Raises:
            MultipartMessage: the next message has several frames (it stays
                queued for :meth:`recv_multipart`).
            CorruptMessage: a peer's ring failed validation (that connection
                is closed; the socket goes on with its other peers).
            StateError: the socket type or its state forbids receiving.
            trio.BrokenResourceError: a PAIR whose peer is gone, or a REQ
                whose REP died holding the request.
            IncompatiblePeer, VersionMismatch, SharedMemoryFull, UnsafeFile,
                ConnectionRefusedError: while it has no peer, why the binder
                refused this connecting socket (it tries again when a socket
                next binds the endpoint).
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.

        On cancel:
            Nothing is consumed.  A REQ's request is then abandoned: its
            reply, if it comes, is dropped.
        """
        await checkpoint_if_cancelled()
        # Fast path first: recv_nowait's, then step 3 of _trio inline.
        if self._plain_recv and copy:
            ready = self._recv_ready
            if ready:
                inbox = ready[0].inbox
                if inbox and type(inbox[0]) is bytes:
                    if self._rotate_recv:
                        ready.rotate(-1)
                    data: bytes = inbox.popleft()  # type: ignore[assignment]
                    pace = self._pace
                    if pace and now() - clock.last < pace:
                        return data
                    await shielded_checkpoint()
                    clock.last = now()
                    return data
        if self._options.spin_us:
            item = await self._recv_spinning(False)
        else:
            item = await retry(
                self._inbox.take,
                self._waiter.wait_recv_parked,
                False,
                None,  # poll unless it would wait on its one pipe directly
                checked=True,
                on_cancel=self._recv_cancelled,
                pace=self._pace,
            )
        if not copy:
            return _leases(item)[0]
        return item if type(item) is bytes else _first(item)

    @overload
    def recv_multipart_nowait(self, *, copy: Literal[True] = True) -> list[bytes]: ...

    @overload
    def recv_multipart_nowait(self, *, copy: Literal[False]) -> list[Lease]: ...

    @ki_protected
    def recv_multipart_nowait(self, *, copy: bool = True) -> list[bytes] | list[Lease]:
        """Receive one message as its list of frames, now (``copy=False``: Leases).

        Raises:
            trio.WouldBlock: no message now.
            CorruptMessage, StateError, trio.BrokenResourceError,
                trio.ClosedResourceError: as for :meth:`recv_nowait`.
        """
        item = self._inbox.take(True)
        return _frames(item) if copy else _leases(item)

    @overload
    async def recv_multipart(self, *, copy: Literal[True] = True) -> list[bytes]: ...

    @overload
    async def recv_multipart(self, *, copy: Literal[False]) -> list[Lease]: ...

    @ki_protected
    async def recv_multipart(self, *, copy: bool = True) -> list[bytes] | list[Lease]:
        """Receive one message as its list of frames (one frame or several).

        With ``copy=False`` each frame is a :class:`shmsock.Lease` (see
        :meth:`recv_lease`).

        Raises:
            CorruptMessage, StateError, trio.BrokenResourceError,
                trio.ClosedResourceError: as for :meth:`recv`.

        On cancel:
            Nothing is consumed, as for :meth:`recv`.
        """
        if self._options.spin_us:
            item = await self._recv_spinning(True)
        else:
            item = await retry(
                self._inbox.take,
                self._waiter.wait_recv_parked,
                True,
                None,
                on_cancel=self._recv_cancelled,
                pace=self._pace,
            )
        return _frames(item) if copy else _leases(item)

    @ki_protected
    async def recv_lease(self) -> Lease:
        """Receive one message as a :class:`shmsock.Lease`: ``recv(copy=False)``.

        A frame the sender wrote into shared memory (a frame above 64 KiB,
        on shm://) is read in place: the lease's ``buffer`` is a read-only
        view of the sender's memory, with no copy.  Release the lease
        (``with lease:``, ``lease.release()``) when done: until then the
        sender cannot reuse that memory, and a sender whose memory is all
        leased waits.  Its checksum is checked once, when the lease is
        made; a lease trusts the sender not to change the bytes after.
        Past 64 leases held on one connection, a lease holds a private copy
        instead.  Any other message is a lease of its bytes.

        Raises:
            MultipartMessage, CorruptMessage, StateError,
                trio.BrokenResourceError, trio.ClosedResourceError: as for
                :meth:`recv`.

        On cancel:
            Nothing is consumed, as for :meth:`recv`.
        """
        return await self.recv(copy=False)

    def _recv_spinning(self, multipart: bool) -> Coroutine[Any, Any, Queued]:
        """A receive that spins before it parks (``spin_us``), as ``retry`` shapes it."""
        waiter = self._waiter
        # It yields first, so that once the spin sees data it can return
        # without yielding again (see WakeUps.look).
        return retry(
            waiter.look,
            partial(waiter.wait_recv, self._options.spin_us),
            self._inbox.take,
            multipart,
            None,
            yield_first=True,
            on_cancel=self._recv_cancelled,
        )

    @ki_protected
    def recv_many_nowait(self, max_count: int = 256) -> list[bytes]:
        """Up to *max_count* one-frame messages from one peer, now.

        Peers take turns: one that has messages gives up to eight batches
        in a row, then the next peer's turn comes.  A peer whose ring was
        empty when the others queued is served between their batches, not
        after their turns.

        Raises:
            trio.WouldBlock: no message now.
            MultipartMessage: the next message has several frames (it stays
                queued).
            TypeError, ValueError: *max_count* is not an int >= 1.
            StateError: PUSH, REQ and REP sockets.
            CorruptMessage, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`recv_nowait`.
        """
        # The turns: BATCH_TURN and BatchTurns in _patterns/_queues.py.
        if type(max_count) is not int or max_count < 1:
            check_count(max_count, "max_count", 1)
        return self._inbox.take_many(max_count)

    @ki_protected
    async def recv_many(self, max_count: int = 256) -> list[bytes]:
        """Wait for at least one message; return up to *max_count* of them.

        Never waits to fill the batch.  One checkpoint per call.

        Raises:
            MultipartMessage, TypeError, ValueError, StateError,
                CorruptMessage, trio.BrokenResourceError,
                trio.ClosedResourceError: as for :meth:`recv_many_nowait`.

        On cancel:
            Nothing is consumed.
        """
        spin = self._options.spin_us
        waiter = self._waiter
        if spin:
            return await retry(
                waiter.look,
                partial(waiter.wait_recv, spin),
                self.recv_many_nowait,
                max_count,
                yield_first=True,  # see _recv
            )
        return await retry(
            self.recv_many_nowait, waiter.wait_recv_parked, max_count, pace=self._pace
        )

    # -- async iteration -------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    @ki_protected
    async def __anext__(self) -> bytes:
        """The next message, as recv() gives it; the iteration ends when the socket is closed.

        Checkpoints: a message that is already here is handed out after a
        cancellation check only (``checkpoint_if_cancelled``), up to
        ITER_BATCH of them in a row.  The next one after such a run, and any
        that has to wait, goes through recv() and so a full checkpoint.  A
        loop that never waits therefore still lets other tasks run at least
        once every ITER_BATCH messages.

        Raises:
            StopAsyncIteration: the socket is closed.
            MultipartMessage, CorruptMessage, StateError,
                trio.BrokenResourceError: as for :meth:`recv`.

        On cancel:
            Nothing is consumed, as for :meth:`recv`.
        """
        if self._iter_run < self.ITER_BATCH and not self._closed:
            await checkpoint_if_cancelled()
            try:
                data = self.recv_nowait()
            except trio.WouldBlock:
                pass
            else:
                self._iter_run += 1
                return data
        self._iter_run = 0
        before = clock.last
        try:
            data = await self.recv()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None
        if clock.last == before:  # recv's pace let it skip the schedule point
            await shielded_checkpoint()
            clock.last = now()
        return data


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
    return Socket(socket_type(kind), make_options(**options))
