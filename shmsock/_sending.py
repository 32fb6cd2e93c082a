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
from typing import TYPE_CHECKING

from ._args import as_bytes, frames_of
from ._errors import MessageTooLarge
from ._stream import stream
from ._trio import checkpoint_if_cancelled, ki_protected, retry, shielded_checkpoint

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
    _send_ready: deque[Pipe]

    if TYPE_CHECKING:  # the socket's own

        def _check_open(self) -> None: ...

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
            IncompatiblePeer, VersionMismatch, SharedMemoryFull, UnsafeFile, ConnectionRefusedError:
                while it has no peer, why the binder
                refused this connecting socket (see ``recv``).
            TypeError: *data* is not bytes-like.
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.

        On cancel:
            Nothing is sent.  A streamed message cancelled midway is
            dropped by the receiver, never delivered in part.
        """
        # Fast path first: send_nowait's, between steps 1 and 3 of _trio
        # inline (a schedule point, never a park).  Over tcp:// it costs a
        # libzmq send plus one trip through Trio's run loop; the general
        # path below (route, offer, retry) costs about as much again.
        if type(data) is bytes and len(data) <= self._plain_limit:
            ready = self._send_ready
            if ready:
                await checkpoint_if_cancelled()
                pipe = ready[0]
                rc = pipe.try_write(data, len(data))
                if rc >= 0:
                    if rc:
                        pipe.wake()
                    ready.rotate(-1)
                    await shielded_checkpoint()
                    return
        frames = [as_bytes(data)]
        try:
            await retry(self._outbox.send_nowait, self._waiter.wait_send, frames)
        except MessageTooLarge:
            await self._stream(frames)

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
            No frame is sent.
        """
        parts = frames_of(frames)
        try:
            await retry(self._outbox.send_nowait, self._waiter.wait_send, parts)
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
            MessageTooLarge, StateError, TypeError: as for :meth:`send_many_nowait`.
            trio.BrokenResourceError, trio.ClosedResourceError: as for
                :meth:`send_many_nowait`.

        On cancel:
            Nothing is sent.
        """
        await checkpoint_if_cancelled()
        # Joined once: a batch that waits for room is not copied again.
        batch = self._outbox.encode_batch(messages)
        await retry(self._outbox.send_batch_nowait, self._waiter.wait_send, batch, checked=True)
