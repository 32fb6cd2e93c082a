"""The Trio socket: waiting, cancellation and the public methods.

Everything that waits is here.  The transport (``_transport``) moves
messages and reports readiness; the pattern (``_patterns``) picks peers and
enforces the REQ/REP state machines; this module parks tasks until the
transport says that trying again may succeed.

Trio semantics, for every socket type:

- Every ``async`` method is a checkpoint on every call, and cancellation is
  atomic: a cancelled ``recv`` consumes nothing and a cancelled ``send``
  sends nothing (see ``send`` for the one documented exception: a message
  larger than the ring, cancelled while streaming, is dropped by the
  receiver instead of delivered in part).
- ``*_nowait`` methods never wait: they raise :class:`trio.WouldBlock`.
- Several tasks may send, and several may receive, on one socket at once;
  each message goes to exactly one of them.
- ``close()``/``aclose()`` wake every task blocked on the socket with
  :class:`trio.ClosedResourceError`.
- The public methods are protected from KeyboardInterrupt, as Trio's own
  channels are: Trio raises a Ctrl-C that arrives during one in the main
  task at its next checkpoint, and a main task blocked in one is
  interrupted at its wait, as by a cancel.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from array import array
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Final, NoReturn, TypeVar, cast

import sniffio
import trio

from . import _ring as R
from . import _stats
from ._errors import InvalidEndpoint, MessageTooLarge, MultipartMessage, NotInTrio, StateError
from ._options import (
    FIXED_ONCE_ATTACHED,
    PYZMQ_HINTS,
    ZMQ_OPTIONS,
    Options,
    SocketOption,
    make_options,
    no_such_option,
    option_name,
)
from ._patterns import Dropped, Fanout, make_pattern
from ._stats import EndpointStats
from ._transport._engine import Engine, ki_protected
from ._transport._peer import Message, Peer, Queued
from ._transport.shm._fs import parse_endpoint
from ._transport.shm._wire import DATA
from ._types import SocketType

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_MORE_START: Final = bytes([R.START | R.MORE])
_T = TypeVar("_T")
# Inside Socket, `type` is the socket type's property.
_ExceptionType = type[BaseException]


def _as_bytes(data: object) -> bytes:
    """*data* as bytes; any bytes-like object is accepted, as pyzmq does.

    Raises TypeError for anything else, str included (encode it first).
    """
    if type(data) is bytes:
        return data
    try:
        # tobytes() copies any buffer, strided or multi-dimensional ones too.
        return memoryview(data).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"a message must be a bytes-like object, not {type(data).__name__}"
        ) from None


def _sequence(items: object, what: str) -> Sequence[Any]:
    """*items* as a list or tuple of messages or frames (for the batch calls).

    A bytes-like object or str is refused rather than taken for a sequence
    of ints or characters; any other iterable is read once, here, so that
    a call that has to wait and try again sees the same items.
    """
    if isinstance(items, list | tuple):
        return items
    if isinstance(items, str | bytes | bytearray | memoryview):
        raise TypeError(f"{what} takes a list of bytes-like objects, not a {type(items).__name__}")
    try:
        return list(items)  # type: ignore[call-overload,no-any-return]
    except TypeError:
        raise TypeError(
            f"{what} takes a list of bytes-like objects, not {type(items).__name__}"
        ) from None


def _frames(frames: object) -> list[bytes]:
    return [_as_bytes(f) for f in _sequence(frames, "send_multipart")]


def _require_trio(what: str) -> None:
    """Raise NotInTrio unless called from a Trio task; *what* names the call."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        pass
    else:
        return
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise NotInTrio(
            f"shmsock runs under Trio, but {what} ran outside trio.run: call it from a Trio"
            " task (from another thread, through trio.from_thread.run_sync)"
        ) from None
    raise NotInTrio(
        f"shmsock runs under Trio, but {what} ran under {library}:"
        " run the program with trio.run(main) instead"
    )


def _count(value: object, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{what} must be at least {low}, not {value}")
    return value


class Socket:
    """A shmsock socket.  Create one with :func:`shmsock.socket`.

    The methods follow pyzmq's names and Trio's rules; see the module
    docstring for the rules every method keeps.

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

    def __init__(self, kind: SocketType, options: Options) -> None:
        self._kind = kind
        self._options = options
        self._pattern = pattern = make_pattern(kind)
        self._engine = Engine(
            kind,
            options,
            pattern.queues,
            writes_data=pattern.writes_data,
            reads_data=pattern.reads_data,
            compatible=pattern.compatible,
            max_peers=pattern.max_peers,
            on_change=self._changed,
            on_attach=self._attached,
            on_gone=self._gone,
        )
        self._recv_lot = trio.lowlevel.ParkingLot()
        self._send_lot = trio.lowlevel.ParkingLot()
        self._drain_lot = trio.lowlevel.ParkingLot()
        self._peers_lot = trio.lowlevel.ParkingLot()
        # The peer whose doorbell a task is waiting on directly (see _wait).
        self._direct_peer: Peer | None = None
        self._iter_run = 0  # messages `async for` gave out since a checkpoint
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None  # the `async with` block's
        self._entered = False  # in an `async with` block
        self._started = False  # the background task runs (in a nursery or as a system task)
        self._attached_once = False  # bound or connected at least once
        self._endpoints = 0
        # Seconds senders waited for room, by endpoint (see _wait_send).
        self._send_blocked: dict[str, float] = {}
        _stats.track(self)
        # Types that move plain messages with no state to keep have a fast
        # path in their *_nowait calls.
        self._plain_send = pattern.plain_send
        self._plain_recv = pattern.plain_recv
        self._send_ready = self._engine.send_ready
        self._rotate_recv = self._pattern.rotate_recv
        self._derive()

    def _derive(self) -> None:
        """Set what the message paths read, precomputed, from the options."""
        # The ring this socket writes has the same capacity on every
        # connection; these follow from it.
        cap = self._options.ring_size
        self._max_record = R.max_payload(cap)
        # -1 when there is no fast path: no message is that short.
        self._plain_limit = (
            min(self._max_record, self._options.max_msg_size) if self._plain_send else -1
        )
        self._fragment = cap // 4 - R.RECORD_HEADER_SIZE
        self._max_atomic = cap // 2

    # -- options ---------------------------------------------------------------
    #
    # Each option is an attribute (``sock.linger = 0``) and, as in pyzmq,
    # setsockopt/getsockopt take its name.  linger, spin_us and checksum may
    # change at any time; ring_size and max_msg_size until the first bind or
    # connect, since the connections are made with them.

    @property
    def type(self) -> SocketType:
        """The socket's type, as given to :func:`shmsock.socket`."""
        return self._kind

    @property
    def ring_size(self) -> int:
        """The ``ring_size`` option, rounded up: bytes of each ring this socket writes.

        A PULL socket never writes a message, so its rings take the
        smallest size whatever this says.  Settable until the first bind or
        connect (see :meth:`setsockopt`).
        """
        return self._options.ring_size

    @ring_size.setter
    def ring_size(self, value: int) -> None:
        self._set_option("ring_size", value)

    @property
    def max_msg_size(self) -> int:
        """Largest message, in bytes over all frames, sent or accepted.

        Settable until the first bind or connect (see :meth:`setsockopt`).
        """
        return self._options.max_msg_size

    @max_msg_size.setter
    def max_msg_size(self, value: int) -> None:
        self._set_option("max_msg_size", value)

    @property
    def spin_us(self) -> int:
        """Microseconds a receiver busy-polls before it parks.

        Settable at any time; a receive call started before the change
        spins as it started.
        """
        return self._options.spin_us

    @spin_us.setter
    def spin_us(self, value: int) -> None:
        self._set_option("spin_us", value)

    @property
    def checksum(self) -> bool:
        """Whether this socket computes CRC32C over what it sends.

        Settable at any time: it applies from the next record this socket
        writes, on every connection.
        """
        return self._options.checksum

    @checksum.setter
    def checksum(self, value: bool) -> None:
        self._set_option("checksum", value)

    @property
    def linger(self) -> float | None:
        """Seconds :meth:`aclose` waits for readers to take what was sent (None: no bound).

        Settable at any time before the socket is closed.
        """
        return self._options.linger

    @linger.setter
    def linger(self, value: float | None) -> None:
        self._set_option("linger", value)

    def setsockopt(self, option: SocketOption | str, value: Any) -> None:
        """Set an option, as pyzmq does: ``sock.setsockopt(shmsock.LINGER, 0)``.

        *option* is a :class:`SocketOption` (``shmsock.LINGER`` and the
        like) or its name as a str, in any case; ``sock.linger = 0`` does
        the same.  The value is checked as :func:`shmsock.socket` checks
        it, and ``ring_size`` is rounded up the same way.  ``linger``,
        ``spin_us`` and ``checksum`` may change at any time; ``ring_size``
        and ``max_msg_size`` only before the first ``bind`` or ``connect``,
        since the socket's connections are made with them.

        Raises ValueError for a name that is not one of shmsock's options
        (for one of pyzmq's, the message says what to do instead: a Trio
        cancel scope for ``"rcvtimeo"``, ``ring_size`` for ``"sndhwm"``),
        TypeError for a name that is not a str (pyzmq's numbered constants
        included), TypeError or ValueError for a bad value, StateError for
        ``ring_size`` or ``max_msg_size`` once the socket has bound or
        connected, and trio.ClosedResourceError once it is closed.  Nothing
        changes when it raises.  Synchronous: never a checkpoint.
        """
        self._set_option(option_name(option), value)

    def getsockopt(self, option: SocketOption | str) -> Any:
        """The value of an option, as pyzmq's ``getsockopt``: ``sock.getsockopt(shmsock.LINGER)``.

        The same as reading the attribute (``sock.linger``): the value in
        force, after rounding.  Works on a closed socket too.  Raises
        ValueError or TypeError for a bad name, as :meth:`setsockopt` does.
        """
        return getattr(self._options, option_name(option))

    def _set_option(self, name: str, value: object) -> None:
        self._check_open()
        if name in FIXED_ONCE_ATTACHED and self._attached_once:
            why = (
                "the rings of its connections are made that size"
                if name == "ring_size"
                else "its connections are set up with that limit"
            )
            raise StateError(
                f"{name} cannot change once the socket has bound or connected: {why}; set it"
                f" before the first bind or connect, or pass {name}= to shmsock.socket()"
            )
        checked = getattr(make_options(**{name: value}), name)
        self._options = dataclasses.replace(self._options, **{name: checked})
        self._engine.set_options(self._options)
        self._derive()

    @property
    def closed(self) -> bool:
        """Whether the socket has been closed."""
        return self._closed

    def _stats_by_endpoint(self) -> dict[str, EndpointStats]:
        """This socket's statistics by endpoint (see shmsock._stats).

        Called with ``_stats.LOCK`` held, possibly from another thread.
        """
        out = self._engine.stats()
        for endpoint, seconds in dict(self._send_blocked).items():
            st = out.get(endpoint)
            if st is None:
                st = out[endpoint] = EndpointStats()
            st.send_blocked_seconds += seconds
        return out

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._engine.peers)} peers"
        return f"<shmsock.Socket {self._kind.name} {state}>"

    # -- endpoints ------------------------------------------------------------

    @ki_protected
    def bind(self, endpoint: str) -> None:
        """Bind to ``shm://NAME``; peers that connect there attach.

        Synchronous and immediate.  Raises InvalidEndpoint, AddressInUse
        when a live socket is bound there (a dead binder's endpoint is taken
        over), UnsafeFile or SharedMemoryFull, ClosedResourceError, and
        NotInTrio outside ``trio.run``.  Outside ``async with``, the first
        bind or connect starts the socket's background task (see
        :class:`Socket`).
        """
        self._check_open()
        name = parse_endpoint(endpoint)
        self._check_endpoint_count()
        _require_trio("bind()")
        self._engine.bind(name)
        self._added_endpoint()

    @ki_protected
    def connect(self, endpoint: str) -> None:
        """Connect to ``shm://NAME``, now or whenever a binder appears there.

        Synchronous; never waits for the binder.  The connection attaches
        in the background, and again by itself after its binder is
        replaced.  Raises InvalidEndpoint, UnsafeFile, SharedMemoryFull,
        ClosedResourceError, and NotInTrio outside ``trio.run``.
        """
        self._check_open()
        name = parse_endpoint(endpoint)
        self._check_endpoint_count()
        _require_trio("connect()")
        self._engine.connect(name)
        self._added_endpoint()

    def _added_endpoint(self) -> None:
        self._endpoints += 1
        self._attached_once = True
        if not self._started:
            self._start_system_task()

    @ki_protected
    def unbind(self, endpoint: str) -> None:
        """Stop accepting connections at an endpoint this socket bound.

        As pyzmq's ``unbind``: the endpoint's listening socket and lock go
        at once, so a socket that connects there afterwards waits for the
        next binder, and the connections accepted there end: their peers
        see them end as when this socket closes.  What this socket sent on
        them is never withdrawn: those peers still read it (the ring goes
        once the peer has seen the end).  What they sent that this socket
        has not received is discarded: the messages already taken from a
        peer's ring are counted in ``dropped``, and those still in a live
        connector's ring stay there for the next socket that binds the
        endpoint (as when a binder dies).  The socket's other endpoints are
        untouched, and it may bind the endpoint again (a PAIR may bind or
        connect anew).

        Synchronous: it never waits, so there is nothing to cancel.  Raises
        InvalidEndpoint for an endpoint
        this socket has not bound (or a malformed one), and
        trio.ClosedResourceError once the socket is closed.  A task waiting
        to send or receive on the socket goes on with the other peers, or
        waits for new ones; a PAIR is then as a new PAIR, and a REQ whose
        request went to one of the peers it let go raises
        trio.BrokenResourceError from its ``recv``, as when that peer dies.
        """
        self._check_open()
        name = parse_endpoint(endpoint)
        if name not in self._engine.bindings:
            connected = any(slot.name == name for slot in self._engine.slots)
            hint = " (it connected there: use disconnect)" if connected else ""
            raise InvalidEndpoint(f"this socket is not bound to {endpoint}{hint}")
        self._engine.unbind(name)
        self._pattern.detached()
        self._endpoints -= 1

    @ki_protected
    def disconnect(self, endpoint: str) -> None:
        """Undo :meth:`connect` to an endpoint.

        As pyzmq's ``disconnect``: the connection to the binder there ends
        (the binder sees it end as when this socket closes), and the
        socket's slot at the endpoint is released with its lock and ring
        files.  What this socket sent is never withdrawn: the binder still
        reads it.  What the binder sent that this socket has not received
        is discarded and counted in ``dropped``.  A socket that connected
        to the endpoint several times disconnects them all.  The other
        endpoints are untouched, and the socket may connect again.

        Synchronous: it never waits, so there is nothing to cancel.  Raises
        InvalidEndpoint for an endpoint this socket is not connected to (or
        a malformed one), and trio.ClosedResourceError once the socket is
        closed.  Waiting tasks go on as after :meth:`unbind`.
        """
        self._check_open()
        name = parse_endpoint(endpoint)
        undone = self._engine.disconnect(name)
        if not undone:
            hint = " (it is bound there: use unbind)" if name in self._engine.bindings else ""
            raise InvalidEndpoint(f"this socket is not connected to {endpoint}{hint}")
        self._pattern.detached()
        self._endpoints -= undone

    @property
    def peer_count(self) -> int:
        """Connections attached now, to live peers."""
        return sum(p.alive for p in self._engine.peers)

    @ki_protected
    async def wait_peers(self, count: int = 1) -> None:
        """Wait until at least *count* live peers are attached.

        A shmsock addition, for the "slow joiner" problem: a PUSH that
        starts sending before all its workers have connected gives every
        message to the first one.  A checkpoint; cancellable; raises
        ClosedResourceError if the socket is closed meanwhile, TypeError or
        ValueError unless *count* is an int >= 0.
        """
        _count(count, "count", 0)
        _require_trio("wait_peers()")
        await _checkpoint_if_cancelled()
        while self.peer_count < count:
            self._check_open()
            await self._peers_lot.park()
        self._check_open()
        await _shielded_checkpoint()

    def _check_endpoint_count(self) -> None:
        limit = self._pattern.max_endpoints
        if limit is not None and self._endpoints >= limit:
            raise StateError(
                f"a {self._kind.name} socket has exactly one peer: bind or connect it once"
                if limit == 1
                else f"a {self._kind.name} socket binds or connects at most {limit} times"
            )

    # -- sending ----------------------------------------------------------------

    @ki_protected
    def send_nowait(self, data: bytes) -> None:
        """Send one message now or raise trio.WouldBlock.

        *data* is any bytes-like object.  Raises MessageTooLarge if it is
        larger than ``max_msg_size``, or larger than half the ring (only
        ``await send()`` streams such messages), and StateError where the
        socket type or its state forbids sending.
        """
        # Fast path: a plain message to the peer at the head of the ready
        # queue (PUSH and PAIR; everything else takes the general path).
        # Anything but a clean write (full, corrupt) goes the general way,
        # which tries again and handles it.
        if type(data) is bytes and len(data) <= self._plain_limit:
            ready = self._send_ready
            if ready:
                peer = ready[0]
                if peer.alive and not peer.streaming:
                    rc = peer.tx.try_write(data, len(data))
                    if rc >= 0:
                        if rc:
                            peer.ring(DATA)
                        ready.rotate(-1)
                        return
        self._send_nowait([_as_bytes(data)])

    @ki_protected
    async def send(self, data: bytes) -> None:
        """Send one message, waiting for a peer with room.

        Waits while no peer is connected or every peer's ring is full.  A
        peer whose position in our ring is found impossible (its ring header
        is damaged) is dropped as broken, counted as corrupt, and the message
        goes to another peer as if that one had gone.  On cancellation
        nothing is sent.  A message larger than half the ring
        is streamed in fragments while the receiver drains them; the
        receiver delivers it only once complete, so if such a send is
        cancelled midway the receiver drops the part it got and nothing is
        delivered.

        Raises MessageTooLarge, StateError, trio.BrokenResourceError (PAIR
        whose peer is gone), trio.ClosedResourceError, TypeError unless
        *data* is bytes-like.  While it has no peer, a connecting socket
        whose binder refused it raises the reason (see ``recv``).
        """
        await self._send([_as_bytes(data)])

    @ki_protected
    def send_multipart_nowait(self, frames: Iterable[bytes]) -> None:
        """Send a multipart message now, all frames or none; see send_nowait.

        *frames* is a list (or other iterable) of bytes-like objects, at
        least one; a bare bytes object or str raises TypeError.
        """
        self._send_nowait(_frames(frames))

    @ki_protected
    async def send_multipart(self, frames: Iterable[bytes]) -> None:
        """Send a message of several frames, delivered all together or not at all.

        Like :meth:`send`; a cancelled multipart send sends no frame.
        """
        await self._send(_frames(frames))

    @ki_protected
    def send_many_nowait(self, messages: Sequence[bytes]) -> None:
        """Send a batch of one-frame messages to one peer, all or none, now.

        One C call writes the whole batch.  The batch must fit in the ring
        (MessageTooLarge otherwise: send smaller batches).  Raises
        trio.WouldBlock when no peer has room for all of it, TypeError
        unless *messages* is a list (or other iterable) of bytes-like
        objects.
        """
        self._send_batch_nowait(self._encode_batch(messages))

    def _encode_batch(self, messages: Sequence[bytes]) -> tuple[bytes, array[int]]:
        """A batch's payloads back to back and their lengths, checked."""
        self._check_open()
        self._pattern.check_send_many()
        messages = _sequence(messages, "send_many")
        try:
            data = b"".join(messages)
        except TypeError:
            messages = [_as_bytes(m) for m in messages]  # names the culprit's type
            data = b"".join(messages)
        lens = array("I", map(len, messages))
        if sum(lens) != len(data):  # a buffer whose items are not bytes
            return self._encode_batch([_as_bytes(m) for m in messages])
        limit = self._options.max_msg_size
        if len(data) > limit and max(lens) > limit:
            raise MessageTooLarge(f"a message of {max(lens)} bytes exceeds max_msg_size {limit}")
        return data, lens

    def _send_batch_nowait(self, batch: tuple[bytes, array[int]]) -> None:
        """Place an encoded batch with one peer, or raise trio.WouldBlock."""
        self._check_open()
        data, lens = batch
        count = len(lens)
        if not count:
            return

        def offer(peer: Peer, aux: int) -> bool:
            return peer.send_records(data, lens, None, aux, atomic=True, announce=True) == count

        try:
            self._place(offer, 0)
        except MessageTooLarge:
            raise self._batch_too_large(lens) from None

    def _batch_too_large(self, lens: array[int]) -> MessageTooLarge:
        """Say why a batch can never be written in one piece."""
        biggest = max(lens)
        if biggest > self._max_record:
            return MessageTooLarge(
                f"a message of {biggest} bytes does not fit one record of this socket's"
                f" {self.ring_size}-byte ring (at most {self._max_record}): use send()"
            )
        need = sum((n + R.RECORD_HEADER_SIZE + 7) & ~7 for n in lens)
        return MessageTooLarge(
            f"a batch of {len(lens)} messages takes {need} bytes of ring, more than this"
            f" socket's {self.ring_size}-byte ring holds: send smaller batches"
        )

    @ki_protected
    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Send a batch of one-frame messages to one peer, all or none.

        One C call and at most one checkpoint per batch.  Waits like
        :meth:`send`; on cancellation nothing is sent.
        """
        await _checkpoint_if_cancelled()
        # Joined once: a batch that waits for room is not copied again.
        batch = self._encode_batch(messages)
        waited = False
        while True:
            try:
                self._send_batch_nowait(batch)
            except trio.WouldBlock:
                if await self._wait_send():
                    waited = True
                continue
            if not waited:
                await _shielded_checkpoint()
            return

    def _send_nowait(self, frames: list[bytes]) -> None:
        self._check_open()
        pattern = self._pattern
        pattern.check_send()
        size = self._size_check(frames)
        if len(frames) == 1 and size <= self._max_record:
            data = frames[0]
            self._place(lambda peer, aux: peer.offer_one(data, aux), pattern.send_aux())
            return
        joined, lens, flags, need = self._encode(frames)
        if need > self._max_atomic:
            raise MessageTooLarge(
                f"a message of {size} bytes needs more than half the ring ({self.ring_size}"
                " bytes), the most send_nowait can write at once; use await send()"
            )
        aux = pattern.send_aux()

        def offer_records(peer: Peer, aux: int) -> bool:
            return peer.send_records(joined, lens, flags, aux, atomic=True, announce=True) > 0

        self._place(offer_records, aux)

    def _place(self, offer: Any, aux: int) -> None:
        """Place a message with *offer*; raise WouldBlock if no peer takes it."""
        pattern = self._pattern
        polled = False
        while True:
            target = pattern.route()
            if target is None:
                if not polled and self._engine.poll():  # doorbells that rang meanwhile
                    polled = True
                    continue
                self._nothing_to_send()
            if isinstance(target, Dropped):
                return  # REP: the peer owed the reply has gone
            if isinstance(target, Fanout):
                for pipe in target.pipes:
                    if not offer(pipe, aux):
                        pattern.dropped(pipe)
                return
            if offer(target, aux):
                pattern.sent(target)
                return
            pattern.refused(target)

    def _nothing_to_send(self) -> NoReturn:
        peers = self._engine.peers
        self._pattern.no_target(peers)
        if not any(p.alive for p in peers):
            self._engine.check_usable()
        raise trio.WouldBlock

    def _size_check(self, frames: list[bytes]) -> int:
        size = sum(map(len, frames)) if len(frames) > 1 else len(frames[0]) if frames else 0
        if not frames:
            raise ValueError("a message needs at least one frame")
        if size > self._options.max_msg_size:
            raise MessageTooLarge(
                f"message of {size} bytes exceeds max_msg_size {self._options.max_msg_size}"
            )
        return size

    def _encode(self, frames: list[bytes]) -> tuple[bytes, array[int], bytes, int]:
        """Records for a message whose frames each fit a record (atomic path).

        Returns (data, lens, flags, ring bytes needed); the bytes needed
        are reported as more than the atomic limit when a frame must be
        fragmented.
        """
        last = len(frames) - 1
        flags = bytearray()
        for i in range(len(frames)):
            f = R.START if i == 0 else 0
            if i < last:
                f |= R.MORE
            flags.append(f)
        lens = array("I", map(len, frames))
        need = sum((n + 31) & ~7 for n in lens)
        if max(lens) > self._max_record or need > self._max_atomic:
            return b"", lens, bytes(flags), self._max_atomic + 1  # joining would be wasted
        return b"".join(frames), lens, bytes(flags), need

    def _fragments(self, frames: list[bytes]) -> list[tuple[bytes | memoryview, int]]:
        """Records for a message streamed in fragments: (payload, flags)."""
        out: list[tuple[bytes | memoryview, int]] = []
        step = self._fragment
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            view = memoryview(frame)  # fragments are views: no copy until the ring
            pieces: list[bytes | memoryview] = [
                view[o : o + step] for o in range(0, len(frame), step)
            ] or [b""]
            for j, piece in enumerate(pieces):
                f = R.CONT if j < len(pieces) - 1 else (R.MORE if i < last else 0)
                out.append((piece, f))
        out[0] = (out[0][0], out[0][1] | R.START)
        return out

    async def _send(self, frames: list[bytes]) -> None:
        await _checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                self._send_nowait(frames)
            except trio.WouldBlock:
                if await self._wait_send():
                    waited = True
                continue
            except MessageTooLarge:
                if self._size_check(frames) > self._options.max_msg_size:
                    raise
                await self._stream(frames)
                return
            if not waited:
                await _shielded_checkpoint()
            return

    async def _wait_send(self) -> bool:
        """Wait for room; the time counts as blocked if there were peers.

        With no live peer the sender waits for one, not for room: that is
        not counted.  Otherwise every live peer refused the message, and
        the wait is shared out evenly over their endpoints (so the sum over
        endpoints is the time this sender spent blocked).  Measured only
        here, when a send really waits, never per message.  Returns
        whether it waited, as _wait does.
        """
        endpoints = {p.endpoint for p in self._engine.peers if p.alive}
        if not endpoints:
            return await self._wait(self._send_lot)
        start = time.perf_counter()
        try:
            return await self._wait(self._send_lot)
        finally:
            self._add_blocked(endpoints, time.perf_counter() - start)

    def _add_blocked(self, endpoints: set[str], seconds: float) -> None:
        share = seconds / len(endpoints)
        blocked = self._send_blocked
        for endpoint in endpoints:
            blocked[endpoint] = blocked.get(endpoint, 0.0) + share

    async def _stream(self, frames: list[bytes]) -> None:
        """Send a message too large to write at once, fragment by fragment."""
        records = self._fragments(frames)
        pattern = self._pattern
        while True:
            self._check_open()
            pattern.check_send()
            aux = pattern.send_aux()
            # Any peer that is not streaming already will do: once placed,
            # the message waits for that peer's ring, fragment by fragment.
            target = pattern.route()
            if isinstance(target, Dropped):
                await _shielded_checkpoint()
                return
            peer = cast(Peer | None, target)
            if peer is None:
                try:
                    self._nothing_to_send()
                except trio.WouldBlock:
                    await self._wait_send()
                continue
            peer.streaming = True
            try:
                done = await self._stream_to(peer, records, aux)
            finally:
                peer.streaming = False
                self._changed(False, True)  # others may use this peer again
            if done:
                pattern.sent(peer)
                await _shielded_checkpoint()
                return
            # The peer went away mid-message; its receiver drops the part it
            # got.  Start over with whichever peer the pattern offers next.

    async def _stream_to(
        self, peer: Peer, records: list[tuple[bytes | memoryview, int]], aux: int
    ) -> bool:
        i = 0
        while i < len(records):
            if not peer.alive:
                return False
            payload, flag = records[i]
            n = peer.send_records(
                payload, array("I", [len(payload)]), bytes([flag]), aux, atomic=True
            )
            if n:
                i += 1
                continue
            if not peer.alive:  # our ring to it was found corrupt and closed
                return False
            self._engine.settle()  # before announcing: see Engine.rang
            if peer.prepare_wait(len(payload)):
                peer.writable = False
                start = time.perf_counter()
                try:
                    await self._wait(self._send_lot)
                finally:
                    self._add_blocked({peer.endpoint}, time.perf_counter() - start)
        return True

    # -- receiving ------------------------------------------------------------

    @ki_protected
    def recv_nowait(self) -> bytes:
        """Receive one message now or raise trio.WouldBlock.

        Raises MultipartMessage (leaving the message queued) when the next
        message has several frames, CorruptMessage when a peer's ring fails
        validation (that connection is closed), StateError, and
        trio.BrokenResourceError (PAIR or REQ whose peer is gone).
        """
        # Fast path: a plain message already read from the ring (PULL and
        # PAIR; everything else takes the general path).
        if self._plain_recv:
            ready: deque[Peer] = self._engine.recv_ready
            if ready:
                inbox = ready[0].inbox
                if inbox and type(inbox[0]) is bytes:
                    if self._rotate_recv:
                        ready.rotate(-1)
                    return inbox.popleft()  # type: ignore[return-value]
        item = self._recv_item(multipart=False)
        return item if type(item) is bytes else item.frames[0]  # type: ignore[union-attr]

    @ki_protected
    async def recv(self) -> bytes:
        """Receive one message, waiting until there is one.

        On cancellation nothing is consumed (a REQ socket's request is then
        abandoned: see shmsock.REQ).  A multipart message raises
        MultipartMessage and stays queued for recv_multipart.

        While it has no peer, a connecting socket whose binder refused it
        raises the reason: IncompatiblePeer, VersionMismatch (naming both
        versions), SharedMemoryFull (the binder had no room for its ring),
        UnsafeFile (the binder's ring was not safe to open) or
        ConnectionRefusedError; it tries again when a socket next binds the
        endpoint.
        """
        item = await self._recv(multipart=False)
        return item if type(item) is bytes else item.frames[0]  # type: ignore[union-attr]

    @ki_protected
    def recv_multipart_nowait(self) -> list[bytes]:
        """Receive one message as its list of frames, now or trio.WouldBlock."""
        item = self._recv_item(multipart=True)
        return [item] if type(item) is bytes else list(item.frames)  # type: ignore[union-attr]

    @ki_protected
    async def recv_multipart(self) -> list[bytes]:
        """Receive one message as its list of frames (one frame or several)."""
        item = await self._recv(multipart=True)
        return [item] if type(item) is bytes else list(item.frames)  # type: ignore[union-attr]

    @ki_protected
    def recv_many_nowait(self, max_count: int = 256) -> list[bytes]:
        """Up to *max_count* one-frame messages from one peer, now.

        Peers take turns: one that has messages gives up to eight batches
        in a row, then the next peer's turn comes.  A peer whose ring was
        empty when the others queued is served between their batches, not
        after their turns.  Raises trio.WouldBlock when there is none,
        MultipartMessage when the next message has several frames (it
        stays queued).  PUSH, REQ and REP sockets raise StateError.
        """
        # The turns: BATCH_TURN and BatchTurns in _patterns/_queues.py.
        if type(max_count) is not int or max_count < 1:
            _count(max_count, "max_count", 1)
        self._check_open()
        pattern = self._pattern
        pattern.check_recv_many()
        engine = self._engine
        got = pattern.next_batch(max_count)
        if got is None and engine.poll():  # doorbells that rang meanwhile
            got = pattern.next_batch(max_count)
        if engine.retire_pending:
            engine.reap()
        if got is None:
            pattern.no_message(engine.peers)
            if not any(p.alive for p in engine.peers):
                engine.check_usable()
            raise trio.WouldBlock
        peer, batch = got
        items, plain = cast(tuple[list[Queued], bool], batch)
        if plain:
            return items  # type: ignore[return-value]
        for i, item in enumerate(items):
            if type(item) is not bytes:
                return self._unwrap_batch(cast(Peer, peer), items, i)
        return items  # type: ignore[return-value]

    @staticmethod
    def _unwrap_batch(peer: Peer, items: list[Queued], start: int) -> list[bytes]:
        """Turn one-frame Messages into bytes; stop before a multipart one."""
        out: list[bytes] = items[:start]  # type: ignore[assignment]
        for i in range(start, len(items)):
            item = items[i]
            if type(item) is bytes:
                out.append(item)
            elif len(item.frames) == 1:  # type: ignore[union-attr]
                out.append(item.frames[0])  # type: ignore[union-attr]
            else:
                peer.inbox.extendleft(reversed(items[i:]))
                if not out:
                    raise MultipartMessage(
                        f"the next message has {len(item.frames)} frames: use recv_multipart"  # type: ignore[union-attr]
                    )
                break
        return out

    @ki_protected
    async def recv_many(self, max_count: int = 256) -> list[bytes]:
        """Wait for at least one message; return up to *max_count* of them.

        Never waits to fill the batch.  One checkpoint per call.
        """
        spin = self._options.spin_us
        if spin:
            await trio.lowlevel.checkpoint()  # first: see _look
            waited = True
        else:
            await _checkpoint_if_cancelled()
            waited = False
        while True:
            try:
                if spin:
                    out = self._look(self.recv_many_nowait, max_count)
                else:
                    out = self.recv_many_nowait(max_count)
            except trio.WouldBlock:
                if await self._wait_recv(spin):
                    waited = True
                continue
            if not waited:
                await _shielded_checkpoint()
            return out

    _last_source: Peer | None = None

    def _recv_item(self, multipart: bool, poll: bool = True) -> Queued:
        # poll=False skips looking at doorbells the poller has not handled
        # yet; only a caller about to wait on that doorbell itself may skip.
        self._check_open()
        pattern = self._pattern
        pattern.check_recv()
        engine = self._engine
        polled = not poll
        while True:
            got: tuple[Peer, Queued] | None = pattern.next_message()  # type: ignore[assignment]
            if got is None:
                if not polled and engine.poll():  # doorbells that rang meanwhile
                    polled = True
                    continue
                break
            peer, item = got
            aux = item.aux if type(item) is Message else 0
            if not pattern.accept(peer, aux):
                continue  # a late reply to an abandoned request
            if not multipart and type(item) is Message and len(item.frames) > 1:
                peer.inbox.appendleft(item)
                raise MultipartMessage(
                    f"the next message has {len(item.frames)} frames: use recv_multipart"
                )
            pattern.received(peer, aux)
            self._last_source = peer
            if engine.retire_pending:
                engine.reap()
            return item
        engine.reap()
        pattern.no_message(engine.peers)
        if not any(p.alive for p in engine.peers):
            engine.check_usable()
        raise trio.WouldBlock

    async def _recv(self, multipart: bool) -> Queued:
        waited = False
        spin = self._options.spin_us
        try:
            if spin:
                await trio.lowlevel.checkpoint()  # first: see _look
                waited = True
            else:
                await _checkpoint_if_cancelled()
            while True:
                try:
                    poll = self._engine.only_peer() is None
                    if spin:
                        item = self._look(self._recv_item, multipart, poll)
                    else:
                        item = self._recv_item(multipart, poll)
                except trio.WouldBlock:
                    if await self._wait_recv(spin):
                        waited = True
                    continue
                break
        except (trio.Cancelled, KeyboardInterrupt):  # KI: delivered at the wait, like a cancel
            self._pattern.recv_cancelled()
            raise
        if not waited:
            await _shielded_checkpoint()
        return item

    # -- waiting ------------------------------------------------------------------
    #
    # A call that has to wait has been through a checkpoint when it wakes, so
    # it returns without another one: that keeps a Trio scheduling round off
    # the path from "data arrived" to "recv returned".  Cancellation stays
    # atomic: a cancelled wait raises before anything is taken.

    def _look(self, take: Callable[..., _T], *args: Any) -> _T:
        """``take(*args)`` for a spinning socket's receive call.

        Such a call takes its checkpoint before it first looks, so that once
        the spin sees data the call can return without yielding again.  And
        it looks without announcing a wait on the rings it finds empty: the
        spin that follows withdraws such announcements at once, and a sender
        that wrote in between would ring the doorbell (a system call on
        each side, and a turn of our poller task) for nothing.  That spin
        announces them when it ends; any other outcome announces them here.
        """
        engine = self._engine
        engine.quiet = True
        try:
            got = take(*args)
        except trio.WouldBlock:
            raise  # the spin that follows announces them
        except BaseException:
            self._announce_unannounced()
            raise
        finally:
            engine.quiet = False
        self._announce_unannounced()
        return got

    def _announce_unannounced(self) -> None:
        engine = self._engine
        if engine.unannounced:
            peers, engine.unannounced = engine.unannounced, []
            self._announce([p for p in peers if p.alive and not p.readable])

    async def _wait_recv(self, spin: int) -> bool:
        """Wait for a message, as _wait does, spinning first for *spin* us.

        *spin* is the spin_us the receive call read when it started: a call
        that looked with _look must spin, whatever spin_us has become since,
        since the spin is what announces the rings it found empty.
        """
        if spin and self._spin(spin):
            return True
        return await self._wait(self._recv_lot)

    async def _wait(self, lot: trio.lowlevel.ParkingLot) -> bool:
        """Sleep until a doorbell or the transport says to try again.

        With one live peer and nobody else waiting on it, wait on that
        peer's doorbell directly and handle its events in this task: one
        scheduling round instead of two (the poller task's, then ours).
        Otherwise park; the poller task wakes us.

        Returns whether it slept (and so went through a checkpoint).  It
        does not when a held doorbell had to be read first (see
        Engine.rang): what it said may be news, so the caller looks again.
        """
        engine = self._engine
        if engine.held is not None:
            engine.settle()
            engine.reap()
            return False
        peer = engine.only_peer()
        if peer is None or self._direct_peer is not None:
            await lot.park()
            self._check_open()
            return True
        engine.mute(peer)
        self._direct_peer = peer
        try:
            await trio.lowlevel.wait_readable(peer.sock)
        except trio.ClosedResourceError:
            pass  # woken by _wake_direct, or the peer is gone: look again
        except BaseException:
            engine.unmute(peer)  # cancelled: the doorbell is the poller's again
            raise
        finally:
            self._direct_peer = None
        if lot is self._recv_lot and not self._send_lot and not self._drain_lot:
            # Leaves the doorbell muted and unread; not while other tasks
            # wait for a SPACE byte on it.
            engine.rang(peer)
        else:
            engine.reopen(peer)
            engine.reap()
        self._check_open()
        return True

    def _spin(self, spin_us: int) -> bool:
        """Busy-poll the rings for up to *spin_us*; True if data arrived.

        While we watch, producers need not ring the doorbell, so the waiter
        flags are withdrawn.  They are announced again when the spin ends,
        on every ring but the one where data appeared.
        """
        deadline = time.perf_counter_ns() + spin_us * 1000
        self._engine.settle()  # we announce again below
        if self._engine.recv_ready:
            return True  # something is already marked readable: go and look
        self._engine.unannounced.clear()  # among the idle peers below
        idle = [p for p in self._engine.peers if p.alive and not p.readable]
        for peer in idle:
            peer.rx.cancel_wait()
        engine = self._engine
        while time.perf_counter_ns() < deadline:
            for peer in idle:
                if peer.rx.available():
                    peer.readable = True
                    engine.want_recv(peer)
                    if len(idle) > 1:
                        # Another task may be parked on this socket, waiting
                        # for the doorbells of the peers we stopped watching.
                        self._announce([p for p in idle if p is not peer])
                    return True
        return self._announce(idle)

    def _announce(self, peers: list[Peer]) -> bool:
        """Announce a wait on each of *peers*' rings; True if one had data after all."""
        found = False
        engine = self._engine
        for peer in peers:
            if peer.rx.prepare_wait():
                peer.rx_seg.mark_caught_up()  # as Engine._read does
            else:
                peer.readable = found = True
                engine.want_recv(peer)
        return found

    # -- async iteration --------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    @ki_protected
    async def __anext__(self) -> bytes:
        """The next message, as recv() gives it; the iteration ends when the
        socket is closed.

        Checkpoints: a message that is already here is handed out after a
        cancellation check only (``checkpoint_if_cancelled``), up to
        ITER_BATCH of them in a row.  The next one after such a run, and any
        that has to wait, goes through recv() and so a full checkpoint.  A
        loop that never waits therefore still lets other tasks run at least
        once every ITER_BATCH messages.  Cancellation is atomic as for recv().
        """
        if self._iter_run < self.ITER_BATCH and not self._closed:
            await _checkpoint_if_cancelled()
            try:
                data = self.recv_nowait()
            except trio.WouldBlock:
                pass
            else:
                self._iter_run += 1
                return data
        self._iter_run = 0
        try:
            return await self.recv()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None

    # -- closing ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the socket is closed")

    @ki_protected
    def close(self) -> None:
        """Close now, without waiting.

        Wakes every task blocked on the socket with ClosedResourceError and
        removes this socket's files.  Nothing sent is taken back: the peers
        attached now read what this socket sent them to the end.  What is
        lost is counted in ``dropped`` (see :meth:`aclose`).  Idempotent;
        never raises, and may be called outside Trio.
        """
        if self._closed:
            return
        self._mark_closed()
        self._teardown()

    @ki_protected
    async def aclose(self) -> None:
        """Close, first waiting up to ``linger`` for readers to take what was sent.

        Blocked tasks are woken with ClosedResourceError at once.  The wait
        ends once every live peer has read all this socket sent it, and
        every endpoint this socket connected to has a binder that read its
        ring.  Its end decides nothing for a peer that is attached: that
        peer reads the rest after the close.  It decides for a connected
        endpoint whose binder is gone (dead, or closed): the messages still
        in its ring are lost when the socket closes, and counted in
        ``dropped``, as are messages taken from rings and never returned
        and those a peer that went left unread.  If the wait is cancelled,
        the socket is closed all the same and Cancelled propagates.
        Idempotent.  Raises NotInTrio outside ``trio.run``, before it does
        anything.
        """
        _require_trio("aclose()")
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._mark_closed()
        try:
            await self._linger()
        finally:
            self._teardown()

    def _mark_closed(self) -> None:
        self._closed = True
        self._plain_limit, self._plain_recv = -1, False  # the general paths raise
        self._recv_lot.unpark_all()
        self._send_lot.unpark_all()
        self._peers_lot.unpark_all()
        self._wake_direct()

    async def _linger(self) -> None:
        """Wait up to ``linger`` for the readers to take what we sent (see aclose)."""
        linger = self._options.linger
        if linger == 0:
            await trio.lowlevel.checkpoint()
            return
        engine = self._engine
        with trio.move_on_after(math.inf if linger is None else linger):
            while True:
                engine.settle()  # before announcing: see Engine.rang
                waiting = engine.unread_peers()
                if not waiting and not engine.unattended():
                    await trio.lowlevel.checkpoint()
                    return
                # _changed wakes us when a reader frees room (SPACE), a
                # peer goes, or a binder attaches.
                if all(p.prepare_drain() for p in waiting):
                    await self._drain_lot.park()

    def _teardown(self) -> None:
        try:
            try:
                self._engine.count_lost()
            finally:
                _stats.closing(self)  # keep this socket's counts in the process totals
        except Exception:  # statistics must never keep a socket from closing
            logging.getLogger("shmsock").exception("shmsock: could not keep the counts")
        # The background tasks end by themselves once the engine is closed.
        # Cancelling their nursery here would cancel the caller too: the
        # nursery that ``async with`` opened also runs the body of the block.
        self._engine.close()

    # -- the background task, and `async with` --------------------------------

    @ki_protected
    async def __aenter__(self) -> Socket:
        """Run the socket's background task in a nursery of the block.

        Leaving the block closes the socket as :meth:`aclose` does, however
        it is left; an exception raised in the block comes out as it is,
        not wrapped in an ExceptionGroup.  A socket already started outside
        a block (by ``bind`` or ``connect``) keeps its task, and is closed
        on leaving all the same.  Raises ClosedResourceError for a closed
        socket, RuntimeError if the socket is in an ``async with`` block
        already, NotInTrio outside ``trio.run``.
        """
        _require_trio("`async with`")
        self._check_open()
        if self._entered:
            raise RuntimeError("this socket is in an `async with` block already")
        self._entered = True
        if not self._started:
            self._started = True
            manager = trio.open_nursery()
            nursery = await manager.__aenter__()
            self._nursery_manager, self._nursery = manager, nursery
            self._engine.start(nursery.start_soon)
            nursery.start_soon(self._engine.run)
        return self

    @ki_protected
    async def __aexit__(
        self,
        exc_type: _ExceptionType | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        # The body's own exception must come out as it is, not wrapped in an
        # ExceptionGroup by the nursery: the background tasks never raise,
        # so the nursery is exited as if the body had finished cleanly.
        manager, self._nursery_manager = self._nursery_manager, None
        try:
            await self.aclose()
        finally:
            if manager is not None:
                # The body is over, so only the socket's own tasks are left
                # in the nursery; cancelling them guarantees the exit never
                # waits.
                nursery = self._nursery
                if nursery is not None:
                    nursery.cancel_scope.cancel()
                await manager.__aexit__(None, None, None)
        return False

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "a shmsock socket is an async resource: use `async with shmsock.socket(...) as sock:`,"
            " or close it with `await sock.aclose()`"
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ raises
        pass

    def __await__(self) -> NoReturn:
        raise TypeError(
            "a socket is not awaited: use `async with shmsock.socket(...) as sock:`,"
            " or `sock = shmsock.socket(...)` and later `await sock.aclose()`"
        )

    def _start_system_task(self) -> None:
        """Start the background task of a socket used outside `async with`.

        It runs as a Trio system task, as do the short tasks the engine
        starts later (dials, spare rings).  Only from a Trio task.
        """
        self._started = True
        spawn = trio.lowlevel.spawn_system_task
        self._engine.start(spawn)
        spawn(self._serve_until_closed, name=f"shmsock {self._kind.name} socket")

    @ki_protected
    async def _serve_until_closed(self) -> None:
        # System tasks are cancelled when trio.run's main task has returned
        # (or raised): a socket still open then is closed here, so that it
        # leaves no files behind.  Nothing else cancels a system task.
        try:
            await self._engine.run()
        finally:
            self.close()

    # -- transport callbacks ---------------------------------------------------

    def _changed(self, recv: bool, send: bool) -> None:
        # Called on every doorbell a waiter handles; the lots are most often
        # empty, and an empty lot is cheaper to test than to unpark.
        if recv and self._recv_lot:
            self._recv_lot.unpark_all()
        if send:
            if self._send_lot:
                self._send_lot.unpark_all()
            if self._drain_lot:
                self._drain_lot.unpark_all()
        self._wake_direct()

    def _wake_direct(self) -> None:
        # A task waiting on a doorbell directly is woken as Trio wakes the
        # waiters of a descriptor about to close: its wait raises
        # ClosedResourceError, and it re-checks like any woken waiter.  The
        # descriptor stays open.  A cancel scope around each wait would do
        # the same, but entering and leaving one costs 7.6 us on the 2-core
        # test machine (timeit, warm), about a fifth of what the whole path
        # from a wake-up to the message took (docs/performance.md).
        peer = self._direct_peer
        if peer is not None and peer.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(peer.sock)

    def _attached(self, peer: Peer) -> None:
        self._pattern.attached(peer)
        self._peers_lot.unpark_all()
        self._wake_direct()

    def _gone(self, peer: Peer) -> None:
        self._pattern.gone(peer)
        self._peers_lot.unpark_all()
        self._wake_direct()


class _PyzmqOption:
    """An option of pyzmq's that shmsock lacks, as an attribute of Socket.

    Reading or setting it raises AttributeError that says what to do
    instead, where a plain attribute would silently take the value
    (``sock.rcvtimeo = 1000`` is a pyzmq habit).
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, obj: object, objtype: type | None = None) -> NoReturn:
        raise AttributeError(no_such_option(self._name))

    def __set__(self, obj: object, value: object) -> NoReturn:
        raise AttributeError(no_such_option(self._name))


for _name in PYZMQ_HINTS:
    setattr(Socket, _name, _PyzmqOption(_name))


class _ZmqOption:
    """An option of tcp:// and ipc:// (libzmq's), as an attribute: ``sock.sndhwm = 10``.

    The same as ``getsockopt`` and ``setsockopt`` by its name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self.__doc__ = f"The ``{name}`` option (tcp:// and ipc://; see :class:`shmsock.Options`)."

    def __get__(self, obj: Socket | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.getsockopt(self._name)

    def __set__(self, obj: Socket, value: object) -> None:
        obj.setsockopt(self._name, value)


for _name in ZMQ_OPTIONS:
    setattr(Socket, _name, _ZmqOption(_name))


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
    return Socket(_socket_type(kind), make_options(**options))


def _socket_type(kind: object) -> SocketType:
    """A SocketType from a member, its number, or its name in any case.

    Raises TypeError for another type of object, ValueError for an unknown
    number or name.
    """
    if isinstance(kind, SocketType):
        return kind
    found: SocketType | None
    if isinstance(kind, str):
        found = SocketType.__members__.get(kind.upper())
    elif isinstance(kind, int) and not isinstance(kind, bool):
        found = next((t for t in SocketType if t.value == kind), None)
    else:
        raise TypeError(
            f"socket type must be shmsock.PUSH, PULL, PAIR, REQ or REP, not {type(kind).__name__}"
        )
    if found is None:
        raise ValueError(f"unknown socket type {kind!r}; use shmsock.PUSH, PULL, PAIR, REQ or REP")
    return found


__all__ = ["Socket", "socket"]
