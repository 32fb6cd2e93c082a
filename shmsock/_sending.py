"""Sending: the send methods of :class:`shmsock.Socket` (a mixin).

Each method is a check and one call of the one Trio shape
(``_trio.retry``): the outbox places without waiting (``_outbox``), the
waiter waits (``_waiting``).  ``send_nowait`` has the fast path: a plain
message written straight to the pipe at the head of the send queue.  A
message too large to write at once is streamed (``_stream``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from trio import WouldBlock

from ._args import as_bytes, check_count, frames_of
from ._errors import MessageTooLarge
from ._loan import LoanBlock
from ._stream import stream
from ._trio import (
    checkpoint_if_cancelled,
    clock,
    ki_protected,
    now,
    retry,
    shielded_checkpoint,
)

if TYPE_CHECKING:
    from ._hub import Hub
    from ._outbox import Outbox
    from ._patterns import Pattern
    from ._transport import Pipe
    from ._waiting import Waiter

__all__ = ["Sending"]


class Sending:
    """The send methods of :class:`shmsock.Socket` (a mixin)."""

    if not TYPE_CHECKING:  # (mypy would refuse the attributes Socket's slots hold)
        __slots__ = ()

    _hub: Hub
    _outbox: Outbox
    _pattern: Pattern
    _waiter: Waiter
    _plain_limit: int
    _fan_limit: int
    _send_ready: deque[Pipe]
    _pace: int

    if TYPE_CHECKING:  # the socket's own

        def _check_open(self) -> None: ...

    # -- sending ---------------------------------------------------------------------------

    @ki_protected
    def send_nowait(self, data: bytes) -> None:
        """Send one message now or raise trio.WouldBlock.

        *data* is any bytes-like object.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            MessageTooLarge: over ``max_msg_size`` (a large message goes
                whole, through the ring's bulk region on shm://).
            StateError: the socket type or its state forbids sending.
            trio.BrokenResourceError: a PAIR whose peer is gone.
            TypeError: *data* is not bytes-like.
            trio.ClosedResourceError: the socket is closed.
        """
        # Fast path: a plain message to the pipe at the head of the send
        # queue (types with no state to keep; -1 disables it).  Anything but
        # a clean write (full, gone, streaming) goes the general way.  A
        # PUB's one-frame message within every limit is published at once.
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
        elif type(data) is bytes and len(data) <= self._fan_limit:
            self._outbox.publish_one(data)
            return
        self._outbox.send_nowait([as_bytes(data)])

    @ki_protected
    async def send(self, data: bytes) -> None:
        """Send one message, waiting for a peer with room.

        Waits while no peer is connected or every peer's ring is full.  A
        large message (a frame above 64 KiB, on shm://) is copied once into
        the ring's bulk region, and goes whole, as any message.

        Raises:
            MessageTooLarge: over ``max_msg_size`` (a PUB's or XPUB's
                large message goes into each subscriber's bulk region on
                shm://: docs/pubsub.md, "Large messages on shm://").
            StateError: the socket type or its state forbids sending.
            trio.BrokenResourceError: a PAIR whose peer is gone.
            IncompatiblePeer, VersionMismatch, SharedMemoryFull, UnsafeFile, ConnectionRefusedError:
                while it has no peer, why the binder
                refused this connecting socket (see ``recv``).
            TypeError: *data* is not bytes-like.
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.

        On cancel:
            Nothing is sent, whatever the message's size.
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
        elif type(data) is bytes and len(data) <= self._fan_limit:
            try:
                self._outbox.publish_one(data)
            except WouldBlock:
                pass  # (nodrop) the general way waits for room
            else:
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
        except MessageTooLarge as exc:
            await self._stream(frames, exc)

    @ki_protected
    def send_multipart_nowait(self, frames: Iterable[bytes]) -> None:
        """Send a multipart message now, all frames or none.

        *frames* is a list (or other iterable) of bytes-like objects, at
        least one.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            ValueError: no frame.
            TypeError: a frame is not bytes-like, or *frames* is bytes or str.
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send_nowait`.
        """
        self._outbox.send_nowait(frames_of(frames))

    @ki_protected
    async def send_multipart(self, frames: Iterable[bytes]) -> None:
        """Send a message of several frames, delivered all together or not at all.

        Raises:
            ValueError: no frame.
            TypeError: a frame is not bytes-like, or *frames* is bytes or str.
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send`.

        On cancel:
            No frame is sent.  (Only a message of thousands of frames, whose
            records alone take more than half a ring, is streamed: one
            cancelled midway is dropped by the receiver, never delivered in
            part.)
        """
        parts = frames_of(frames)
        try:
            await retry(self._outbox.send_nowait, self._waiter.wait_send, parts, pace=self._pace)
        except MessageTooLarge as exc:
            await self._stream(parts, exc)

    async def _stream(self, frames: list[bytes], refused: MessageTooLarge) -> None:
        """A message that was too large to write at once: over a limit, or streamed.

        A fan-out (PUB, XPUB) writes each message at once into every
        subscriber's pipe, and a stream goes to one pipe: so it raises
        *refused*, send_nowait's own error, with nothing written.
        """
        self._outbox.size_check(frames)  # over max_msg_size: raised again here
        if self._pattern.fans_out:
            raise refused
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

        One C call writes the whole batch (on shm://).  A PUB or XPUB
        publishes it instead: each message to the subscribers it matches,
        in order, with ``nodrop`` all or none over every subscriber (a
        subscriber without room otherwise misses its whole share, each
        message counted); see docs/pubsub.md, "Batches".

        Raises:
            trio.WouldBlock: no peer has room for all of it now (nothing sent).
            MessageTooLarge: the batch can never fit a ring at once (send
                smaller batches), or a message is over ``max_msg_size``.
                On shm://, messages above 64 KiB go whole into the bulk
                region, and one batch may take half of it (4 MiB for
                messages up to 1 MiB): beyond that, send smaller batches.
            StateError: REQ, REP and ROUTER send one message at a time; PULL and
                SUB never send.
            TypeError: *messages* is not a list of bytes-like objects.
            trio.BrokenResourceError, trio.ClosedResourceError: as for
                :meth:`send_nowait`.
        """
        outbox = self._outbox
        if self._pattern.fans_out:
            outbox.publish_batch_nowait(outbox.encode_fan_batch(messages))
            return
        outbox.send_batch_nowait(outbox.encode_batch(messages))

    @ki_protected
    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Send a batch of one-frame messages to one peer, all or none.

        One C call and at most one checkpoint per batch.  Waits like
        :meth:`send`.

        Raises:
            MessageTooLarge, StateError, TypeError: as for :meth:`send_many_nowait`.
            trio.BrokenResourceError, trio.ClosedResourceError: as for
                :meth:`send_many_nowait`.

        On cancel:
            Nothing is sent.
        """
        await checkpoint_if_cancelled()
        outbox = self._outbox
        if self._pattern.fans_out:
            await retry(
                outbox.publish_batch_nowait,
                self._waiter.wait_send,
                outbox.encode_fan_batch(messages),
                checked=True,
                pace=self._pace,
            )
            return
        # Joined once: a batch that waits for room is not copied again.
        batch = outbox.encode_batch(messages)
        await retry(
            self._outbox.send_batch_nowait,
            self._waiter.wait_send,
            batch,
            checked=True,
            pace=self._pace,
        )

    def loan(self, size: int) -> AbstractAsyncContextManager[memoryview]:
        """Room for a one-frame message of *size* bytes, to fill in place.

        ``async with sock.loan(n) as buf:`` waits, as :meth:`send` does,
        for a peer with room, and gives ``buf``, a writable memoryview of
        *size* bytes.  Leaving the block sends what ``buf`` holds then, as
        one message.  On shm:// the view is of the memory the receiver
        reads (a frame above 32 KiB: the ring's bulk region), so nothing is
        copied; elsewhere, and for REQ and REP, it is a private buffer sent
        at the end of the block.  Do not keep ``buf``, or a view of it,
        past the block: the memory is the receiver's from then on.  While
        the block runs, other messages go to other peers (or wait).

        Raises:
            TypeError, ValueError: *size* is not an int >= 0.
            MessageTooLarge, StateError, trio.BrokenResourceError: when the
                block starts, as for :meth:`send`.
            IncompatiblePeer, VersionMismatch, SharedMemoryFull, UnsafeFile, ConnectionRefusedError:
                when the block starts, as for :meth:`send`.
            trio.ClosedResourceError: the socket is closed.

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
            pace=self._pace,
        )
