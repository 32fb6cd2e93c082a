"""Receiving: the receive methods and ``async for`` of :class:`shmsock.Socket` (a mixin).

Each method is a check and one call of the one Trio shape
(``_trio.retry``): the inbox takes without waiting (``_inbox``), the
waiter waits (``_waiting``), spinning first if ``spin_us`` says so.
``recv_nowait`` has the fast path: a plain message already taken from the
transport, at the head pipe of the receive queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

import trio

from ._args import check_count
from ._transport import HeldMessage, Lease
from ._trio import (
    checkpoint_if_cancelled,
    clock,
    ki_protected,
    now,
    retry,
    shielded_checkpoint,
)

if TYPE_CHECKING:
    from ._inbox import Inbox
    from ._options import Options
    from ._transport import Pipe, Queued
    from ._waiting import Waiter

__all__ = ["Receiving"]


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


class Receiving:
    """The receive methods and ``async for`` of :class:`shmsock.Socket` (a mixin)."""

    if not TYPE_CHECKING:  # (mypy would refuse the attributes Socket's slots hold)
        __slots__ = ()

    #: How many messages ``async for`` hands out in a row without a full
    #: checkpoint when they are already there (see :meth:`__anext__`).
    ITER_BATCH: ClassVar[int] = 64

    _options: Options
    _inbox: Inbox
    _waiter: Waiter
    _closed: bool
    _iter_run: int
    _plain_recv: bool
    _rotate_recv: bool
    _recv_ready: deque[Pipe]
    _recv_cancelled: Callable[[], None]
    _pace: int

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

        A large message (a frame above 64 KiB, or a loan above 32 KiB, on
        shm://) is copied once, into the bytes returned, and its checksum
        verified on that copy.
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
            IncompatiblePeer, VersionMismatch, SharedMemoryFull, UnsafeFile, ConnectionRefusedError:
                while it has no peer, why the binder
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
        if self._options.spin_us and self._waiter.plan_spin(self._options.spin_us):
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
            CorruptMessage, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`recv_nowait`.
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
            CorruptMessage, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`recv`.

        On cancel:
            Nothing is consumed, as for :meth:`recv`.
        """
        if self._options.spin_us and self._waiter.plan_spin(self._options.spin_us):
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
        or a loan above 32 KiB, on shm://) is read in place: the lease's
        ``buffer`` is a read-only view of the sender's memory, with no copy.  Release the lease
        (``with lease:``, ``lease.release()``) when done: until then the
        sender cannot reuse that memory, and a sender whose memory is all
        leased waits.  Its checksum is checked once, when the lease is
        made; a lease trusts the sender not to change the bytes after.
        Past 64 leases held on one connection, a lease holds a private copy
        instead.  Any other message is a lease of its bytes.

        Raises:
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv`.
            trio.ClosedResourceError: as for :meth:`recv`.

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
            MultipartMessage, TypeError, ValueError, StateError, CorruptMessage: as for
                :meth:`recv_many_nowait`.
            trio.BrokenResourceError, trio.ClosedResourceError: as for
                :meth:`recv_many_nowait`.

        On cancel:
            Nothing is consumed.
        """
        spin = self._options.spin_us
        waiter = self._waiter
        if spin and waiter.plan_spin(spin):
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

    # -- async iteration ------------------------------------------------------------

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
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv`.

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
