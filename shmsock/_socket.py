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
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any, Final, NoReturn

import trio

from . import _ring as R
from ._errors import MessageTooLarge, MultipartMessage, StateError
from ._options import Options, make_options
from ._patterns import make_pattern
from ._transport._engine import Engine
from ._transport._fs import parse_endpoint
from ._transport._peer import Message, Peer, Queued
from ._types import SocketType

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_MORE_START: Final = bytes([R.START | R.MORE])


def _as_bytes(data: object) -> bytes:
    if type(data) is bytes:
        return data
    try:
        return memoryview(data).cast("B").tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"a message must be a bytes-like object, not {type(data).__name__}"
        ) from None


class Socket:
    """A shmsock socket.  Create one with :func:`shmsock.socket`.

    The methods follow pyzmq's names and Trio's rules; see the module
    docstring for the rules every method keeps.
    """

    def __init__(self, kind: SocketType, options: Options) -> None:
        self._kind = kind
        self._options = options
        self._pattern = make_pattern(kind)
        self._engine = Engine(
            kind,
            options,
            self._pattern.max_peers,
            self._changed,
            self._attached,
            self._gone,
        )
        self._recv_lot = trio.lowlevel.ParkingLot()
        self._send_lot = trio.lowlevel.ParkingLot()
        self._drain_lot = trio.lowlevel.ParkingLot()
        self._peers_lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._endpoints = 0
        # The ring this socket writes has the same capacity on every
        # connection; these follow from it.
        cap = options.ring_size
        self._max_record = R.max_payload(cap)
        self._fragment = cap // 4 - R.RECORD_HEADER_SIZE
        self._max_atomic = cap // 2

    # -- read-only options ---------------------------------------------------

    @property
    def type(self) -> SocketType:
        return self._kind

    @property
    def ring_size(self) -> int:
        return self._options.ring_size

    @property
    def max_msg_size(self) -> int:
        return self._options.max_msg_size

    @property
    def spin_us(self) -> int:
        return self._options.spin_us

    @property
    def checksum(self) -> bool:
        return self._options.checksum

    @property
    def linger(self) -> float | None:
        return self._options.linger

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._engine.peers)} peers"
        return f"<shmsock.Socket {self._kind.name} {state}>"

    # -- endpoints ------------------------------------------------------------

    def bind(self, endpoint: str) -> None:
        """Bind to ``shm://NAME``; peers that connect there attach.

        Synchronous and immediate.  Raises InvalidEndpoint, AddressInUse
        when a live socket is bound there (a dead binder's endpoint is taken
        over), UnsafeFile or SharedMemoryFull, and ClosedResourceError.
        """
        name = parse_endpoint(endpoint)
        self._check_open()
        self._check_endpoint_count()
        self._engine.bind(name)
        self._endpoints += 1

    def connect(self, endpoint: str) -> None:
        """Connect to ``shm://NAME``, now or whenever a binder appears there.

        Synchronous; never waits for the binder.  The connection attaches
        in the background, and again by itself after its binder is
        replaced.  Raises InvalidEndpoint, UnsafeFile, SharedMemoryFull and
        ClosedResourceError.
        """
        name = parse_endpoint(endpoint)
        self._check_open()
        self._check_endpoint_count()
        self._engine.connect(name)
        self._endpoints += 1

    @property
    def peer_count(self) -> int:
        """Connections attached now, to live peers."""
        return sum(p.alive for p in self._engine.peers)

    async def wait_peers(self, count: int = 1) -> None:
        """Wait until at least *count* live peers are attached.

        A shmsock addition, for the "slow joiner" problem: a PUSH that
        starts sending before all its workers have connected gives every
        message to the first one.  A checkpoint; cancellable; raises
        ClosedResourceError if the socket is closed meanwhile.
        """
        await _checkpoint_if_cancelled()
        while self.peer_count < count:
            self._check_open()
            await self._peers_lot.park()
        self._check_open()
        await _shielded_checkpoint()

    def _check_endpoint_count(self) -> None:
        if self._pattern.max_peers == 1 and self._endpoints:
            raise StateError("a PAIR socket has exactly one peer: bind or connect it once")

    # -- sending ----------------------------------------------------------------

    def send_nowait(self, data: bytes) -> None:
        """Send one message now or raise trio.WouldBlock.

        *data* is any bytes-like object.  Raises MessageTooLarge if it is
        larger than ``max_msg_size``, or larger than half the ring (only
        ``await send()`` streams such messages), and StateError where the
        socket type or its state forbids sending.
        """
        self._send_nowait([_as_bytes(data)])

    async def send(self, data: bytes) -> None:
        """Send one message, waiting for a peer with room.

        Waits while no peer is connected or every peer's ring is full.  On
        cancellation nothing is sent.  A message larger than half the ring
        is streamed in fragments while the receiver drains them; the
        receiver delivers it only once complete, so if such a send is
        cancelled midway the receiver drops the part it got and nothing is
        delivered.

        Raises MessageTooLarge, StateError, trio.BrokenResourceError (PAIR
        whose peer is gone), trio.ClosedResourceError.
        """
        await self._send([_as_bytes(data)])

    def send_multipart_nowait(self, frames: Iterable[bytes]) -> None:
        """Send a multipart message now, all frames or none; see send_nowait."""
        self._send_nowait([_as_bytes(f) for f in frames])

    async def send_multipart(self, frames: Iterable[bytes]) -> None:
        """Send a message of several frames, delivered all together or not at all.

        Like :meth:`send`; a cancelled multipart send sends no frame.
        """
        await self._send([_as_bytes(f) for f in frames])

    def send_many_nowait(self, messages: Sequence[bytes]) -> None:
        """Send a batch of one-frame messages to one peer, all or none, now.

        One C call writes the whole batch.  The batch must fit in half a
        ring (MessageTooLarge otherwise).  Raises trio.WouldBlock when no
        peer has room for all of it.
        """
        self._check_open()
        self._pattern.check_send()
        if self._kind in (SocketType.REQ, SocketType.REP):
            raise StateError(f"{self._kind.name} sockets send one message at a time")
        msgs = [m if type(m) is bytes else _as_bytes(m) for m in messages]
        if not msgs:
            return
        lens = array("I", map(len, msgs))
        if max(lens) > self._options.max_msg_size:
            raise MessageTooLarge(
                f"a message of {max(lens)} bytes exceeds max_msg_size {self._options.max_msg_size}"
            )
        need = sum((n + 31) & ~7 for n in lens)
        if need > self._max_atomic:
            raise MessageTooLarge(
                f"a batch of {need} ring bytes does not fit half a ring of {self.ring_size}"
                " bytes: send it in smaller batches"
            )
        data = b"".join(msgs)
        count = len(lens)

        def offer(peer: Peer) -> bool:
            return self._offer(
                peer, lambda: peer.send_records(data, lens, None, 0, atomic=True) == count, need
            )

        self._place(offer)

    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Send a batch of one-frame messages to one peer, all or none.

        One C call and at most one checkpoint per batch.  Waits like
        :meth:`send`; on cancellation nothing is sent.
        """
        await _checkpoint_if_cancelled()
        while True:
            try:
                self.send_many_nowait(messages)
            except trio.WouldBlock:
                await self._wait_send()
                continue
            await _shielded_checkpoint()
            return

    def _send_nowait(self, frames: list[bytes]) -> None:
        self._check_open()
        pattern = self._pattern
        pattern.check_send()
        size = self._size_check(frames)
        if pattern.discard_reply():
            return
        if len(frames) == 1 and size <= self._max_record:
            data = frames[0]
            aux = pattern.send_aux()
            need = size + 31
            if aux:
                lens = array("I", [size])

                def offer(peer: Peer) -> bool:
                    return self._offer(
                        peer,
                        lambda: peer.send_records(data, lens, None, aux, atomic=True) > 0,
                        need,
                    )
            else:

                def offer(peer: Peer) -> bool:
                    return self._offer(peer, lambda: peer.send_one(data), need)

            self._place(offer)
            return
        joined, lens, flags, need = self._encode(frames)
        if need > self._max_atomic:
            raise MessageTooLarge(
                f"a message of {size} bytes takes {need} ring bytes, more than half the ring"
                f" ({self.ring_size} bytes) that send_nowait can write at once; use await send()"
            )
        aux = pattern.send_aux()

        def offer_records(peer: Peer) -> bool:
            return self._offer(
                peer, lambda: peer.send_records(joined, lens, flags, aux, atomic=True) > 0, need
            )

        self._place(offer_records)

    def _place(self, offer: Any) -> None:
        """Route a message with *offer*; raise WouldBlock if no peer takes it."""
        peer = self._pattern.route(self._engine.send_ready, offer)
        if peer is None:
            self._nothing_to_send()
        self._pattern.sent(peer)

    def _offer(self, peer: Peer, write: Any, need: int) -> bool:
        """Try *write*; if the ring is full, arrange to be woken and retry once."""
        if write():
            return True
        if peer.tx.prepare_wait(min(need, self._max_record)):
            peer.writable = False
            return False
        return bool(write())

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
        if max(lens) > self._max_record:
            need = self._max_atomic + 1
        return b"".join(frames), lens, bytes(flags), need

    def _fragments(self, frames: list[bytes]) -> list[tuple[bytes, int]]:
        """Records for a message streamed in fragments: (payload, flags)."""
        out: list[tuple[bytes, int]] = []
        step = self._fragment
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            pieces = [frame[o : o + step] for o in range(0, len(frame), step)] or [b""]
            for j, piece in enumerate(pieces):
                f = R.CONT if j < len(pieces) - 1 else (R.MORE if i < last else 0)
                out.append((piece, f))
        out[0] = (out[0][0], out[0][1] | R.START)
        return out

    async def _send(self, frames: list[bytes]) -> None:
        await _checkpoint_if_cancelled()
        while True:
            try:
                self._send_nowait(frames)
            except trio.WouldBlock:
                await self._wait_send()
                continue
            except MessageTooLarge:
                if self._size_check(frames) > self._options.max_msg_size:
                    raise
                await self._stream(frames)
                return
            await _shielded_checkpoint()
            return

    async def _wait_send(self) -> None:
        await self._send_lot.park()
        self._check_open()

    async def _stream(self, frames: list[bytes]) -> None:
        """Send a message too large to write at once, fragment by fragment."""
        records = self._fragments(frames)
        pattern = self._pattern
        while True:
            self._check_open()
            pattern.check_send()
            if pattern.discard_reply():
                await _shielded_checkpoint()
                return
            aux = pattern.send_aux()
            # Any peer that is not streaming already will do: once placed,
            # the message waits for that peer's ring, fragment by fragment.
            peer = pattern.route(self._engine.send_ready, lambda p: True)
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
                self._send_lot.unpark_all()  # others may use this peer again
            if done:
                pattern.sent(peer)
                await _shielded_checkpoint()
                return
            # The peer went away mid-message; its receiver drops the part it
            # got.  Start over with whichever peer the pattern offers next.

    async def _stream_to(self, peer: Peer, records: list[tuple[bytes, int]], aux: int) -> bool:
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
            if peer.tx.prepare_wait(len(payload)):
                peer.writable = False
                await self._send_lot.park()
                self._check_open()
        return True

    # -- receiving ------------------------------------------------------------

    def recv_nowait(self) -> bytes:
        """Receive one message now or raise trio.WouldBlock.

        Raises MultipartMessage (leaving the message queued) when the next
        message has several frames, CorruptMessage when a peer's ring fails
        validation (that connection is closed), StateError, and
        trio.BrokenResourceError (PAIR or REQ whose peer is gone).
        """
        item = self._recv_item(multipart=False)
        return item if type(item) is bytes else item.frames[0]  # type: ignore[union-attr]

    async def recv(self) -> bytes:
        """Receive one message, waiting until there is one.

        On cancellation nothing is consumed (a REQ socket's request is then
        abandoned: see shmsock.REQ).  A multipart message raises
        MultipartMessage and stays queued for recv_multipart.
        """
        item = await self._recv(multipart=False)
        return item if type(item) is bytes else item.frames[0]  # type: ignore[union-attr]

    def recv_multipart_nowait(self) -> list[bytes]:
        """Receive one message as its list of frames, now or trio.WouldBlock."""
        item = self._recv_item(multipart=True)
        return [item] if type(item) is bytes else list(item.frames)  # type: ignore[union-attr]

    async def recv_multipart(self) -> list[bytes]:
        """Receive one message as its list of frames (one frame or several)."""
        item = await self._recv(multipart=True)
        return [item] if type(item) is bytes else list(item.frames)  # type: ignore[union-attr]

    def recv_many_nowait(self, max_count: int = 256) -> list[bytes]:
        """Up to *max_count* one-frame messages from one peer, now.

        Raises trio.WouldBlock when there is none, MultipartMessage when the
        next message has several frames.
        """
        if not isinstance(max_count, int) or max_count < 1:
            raise ValueError(f"max_count must be a positive int, not {max_count!r}")
        if self._kind in (SocketType.REQ, SocketType.REP):
            raise StateError(f"{self._kind.name} sockets receive one message at a time")
        first = self._recv_item(multipart=False)
        out = [first if type(first) is bytes else first.frames[0]]  # type: ignore[union-attr]
        peer = self._last_source
        inbox = peer.inbox if peer is not None else None
        while inbox and len(out) < max_count:
            item = inbox[0]
            if type(item) is bytes:
                out.append(inbox.popleft())
            elif len(item.frames) == 1:  # type: ignore[union-attr]
                out.append(inbox.popleft().frames[0])  # type: ignore[union-attr]
            else:
                break
        return out

    async def recv_many(self, max_count: int = 256) -> list[bytes]:
        """Wait for at least one message; return up to *max_count* of them.

        Never waits to fill the batch.  One checkpoint per call.
        """
        await _checkpoint_if_cancelled()
        while True:
            try:
                out = self.recv_many_nowait(max_count)
            except trio.WouldBlock:
                await self._wait_recv()
                continue
            await _shielded_checkpoint()
            return out

    _last_source: Peer | None = None

    def _recv_item(self, multipart: bool) -> Queued:
        self._check_open()
        pattern = self._pattern
        pattern.check_recv()
        engine = self._engine
        while True:
            got = pattern.next_message(engine.recv_ready, engine.take)
            if got is None:
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
        try:
            await _checkpoint_if_cancelled()
            while True:
                try:
                    item = self._recv_item(multipart)
                except trio.WouldBlock:
                    await self._wait_recv()
                    continue
                break
        except trio.Cancelled:
            self._pattern.recv_cancelled()
            raise
        await _shielded_checkpoint()
        return item

    async def _wait_recv(self) -> None:
        spin = self._options.spin_us
        if spin and self._spin(spin):
            return
        await self._recv_lot.park()
        self._check_open()

    def _spin(self, spin_us: int) -> bool:
        """Busy-poll the rings for up to *spin_us*; True if data arrived.

        While we watch, producers need not ring the doorbell, so the waiter
        flags are withdrawn, and announced again before we give up.
        """
        deadline = time.perf_counter_ns() + spin_us * 1000
        idle = [p for p in self._engine.peers if p.alive and not p.readable]
        for peer in idle:
            peer.rx.cancel_wait()
        engine = self._engine
        while time.perf_counter_ns() < deadline:
            for peer in idle:
                if peer.rx.available():
                    peer.readable = True
                    engine.want_recv(peer)
                    return True
        found = False
        for peer in idle:
            if not peer.rx.prepare_wait():
                peer.readable = found = True
                engine.want_recv(peer)
        return found

    # -- async iteration --------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """The next message; the iteration ends when the socket is closed."""
        try:
            return await self.recv()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None

    # -- closing ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the socket is closed")

    def close(self) -> None:
        """Close now, without waiting: unread messages are discarded.

        Wakes every task blocked on the socket with ClosedResourceError and
        removes this socket's files.  Idempotent.
        """
        if self._closed:
            return
        self._mark_closed()
        self._teardown(discard=True)

    async def aclose(self) -> None:
        """Close, first waiting up to ``linger`` for peers to read what was sent.

        Blocked tasks are woken with ClosedResourceError at once.  If the
        wait is cancelled, unread messages are discarded, the socket is
        closed all the same, and Cancelled propagates.  Idempotent.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._mark_closed()
        drained = False
        try:
            drained = await self._linger()
        finally:
            self._teardown(discard=not drained)

    def _mark_closed(self) -> None:
        self._closed = True
        self._recv_lot.unpark_all()
        self._send_lot.unpark_all()
        self._peers_lot.unpark_all()

    async def _linger(self) -> bool:
        linger = self._options.linger
        if linger == 0:
            await trio.lowlevel.checkpoint()
            return False
        with trio.move_on_after(math.inf if linger is None else linger):
            while True:
                waiting = self._engine.unread_peers()
                if not waiting:
                    await trio.lowlevel.checkpoint()
                    return True
                if all(p.tx.prepare_drain() for p in waiting):
                    await self._drain_lot.park()
        return False

    def _teardown(self, *, discard: bool) -> None:
        self._engine.close(discard=discard)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # -- transport callbacks ---------------------------------------------------

    def _start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._engine.start(nursery)

    def _changed(self, recv: bool, send: bool) -> None:
        if recv:
            self._recv_lot.unpark_all()
        if send:
            self._send_lot.unpark_all()
            self._drain_lot.unpark_all()

    def _attached(self, peer: Peer) -> None:
        self._pattern.attached(peer)
        self._peers_lot.unpark_all()

    def _gone(self, peer: Peer) -> None:
        self._pattern.gone(peer)
        self._peers_lot.unpark_all()


class _SocketContext:
    """What :func:`socket` returns: ``async with`` gives the socket."""

    def __init__(self, kind: SocketType, options: Options) -> None:
        self._socket = Socket(kind, options)
        self._nursery_manager: Any = None

    async def __aenter__(self) -> Socket:
        self._nursery_manager = trio.open_nursery()
        nursery = await self._nursery_manager.__aenter__()
        self._socket._start(nursery)
        return self._socket

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        # The body's own exception must come out as it is, not wrapped in an
        # ExceptionGroup by the nursery: the background tasks never raise,
        # so the nursery is exited as if the body had finished cleanly.
        try:
            await self._socket.aclose()
        finally:
            await self._nursery_manager.__aexit__(None, None, None)
        return False

    def __await__(self) -> Any:
        raise TypeError("use 'async with shmsock.socket(...) as sock:'")


def socket(kind: SocketType, **options: Any) -> _SocketContext:
    """Create a socket of *kind*: ``async with shmsock.socket(shmsock.PUSH) as s:``.

    The socket's background tasks live inside the ``async with`` block;
    leaving it closes the socket (see :meth:`Socket.aclose`).  Options are
    described in :class:`shmsock.Options`; unknown names and bad values
    raise TypeError or ValueError naming the option.
    """
    if not isinstance(kind, SocketType):
        try:
            kind = SocketType(kind)
        except ValueError:
            raise ValueError(
                f"unknown socket type {kind!r}; use shmsock.PUSH, PULL, PAIR, REQ or REP"
            ) from None
    return _SocketContext(kind, make_options(**options))


__all__ = ["Socket", "socket"]
