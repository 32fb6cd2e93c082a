"""Filling a message in place: ``async with sock.loan(n) as buf:``.

The pattern picks the pipe as for a send (PUSH and PAIR); a pipe that can
lend (shm://: an extent of its ring's bulk region, :class:`~._transport.Lends`)
hands out a writable view of its own memory, and the message is sent, with
no copy, when the block ends.  Nothing is visible to the peer before then:
a block that raises, or is cancelled, sends nothing.  The pipe takes no
other message meanwhile (it is ``streaming``), so the room it lent, and the
ring's room for the record that will name it, are still there at the end.

Everything else lends a private buffer, sent (copied) when the block ends:
a pipe that cannot lend, the types with a state to keep (REQ, REP), and a
pipe that went away during the block (its message goes to the next pipe).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType

from ._errors import MessageTooLarge
from ._hub import Hub
from ._outbox import Outbox
from ._patterns import Pattern
from ._transport import Loan
from ._trio import checkpoint_if_cancelled, ki_protected, paced, retry, shielded_checkpoint
from ._waiting import Waiter

__all__ = ["LoanBlock"]


class LoanBlock:
    """The ``async with`` block of one :meth:`Socket.loan`."""

    __slots__ = (
        "_check_open",
        "_hub",
        "_loan",
        "_outbox",
        "_pace",
        "_pattern",
        "_private",
        "_send",
        "_size",
        "_view",
        "_waiter",
    )

    def __init__(
        self,
        size: int,
        *,
        pattern: Pattern,
        outbox: Outbox,
        waiter: Waiter,
        hub: Hub,
        check_open: Callable[[], None],
        send: Callable[[bytes], Awaitable[None]],
        pace: int = 0,
    ) -> None:
        self._size = size
        self._pace = pace  # the socket's schedule_every_us, in ns (_trio, step 3)
        self._pattern = pattern
        self._outbox = outbox
        self._waiter = waiter
        self._hub = hub
        self._check_open = check_open
        self._send = send
        self._loan: Loan | None = None
        self._private: bytearray | None = None
        self._view: memoryview | None = None

    @ki_protected
    async def __aenter__(self) -> memoryview:
        if self._pattern.plain_send:
            loan = await retry(
                self._outbox.loan_nowait, self._waiter.wait_send, self._size, pace=self._pace
            )
            if loan is not None:
                self._loan = loan
                return loan.buffer
        else:
            await checkpoint_if_cancelled()
            self._check_open()
            self._pattern.check_send()  # a REQ that owes a recv says so now
            limit = self._outbox.max_msg_size
            if self._size > limit:
                raise MessageTooLarge(f"a loan of {self._size} bytes exceeds max_msg_size {limit}")
            await shielded_checkpoint()
        self._private = bytearray(self._size)
        self._view = memoryview(self._private)
        return self._view

    @ki_protected
    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loan, self._loan = self._loan, None
        private, self._private = self._private, None
        if self._view is not None:
            self._view.release()
            self._view = None
        if kind is not None:  # the block raised (or was cancelled): send nothing
            if loan is not None:
                loan.abandon()
                self._hub.wake(False, True)
            return
        if loan is not None:
            try:
                if loan.commit():
                    # Sent: a schedule point, shielded so that a cancel
                    # cannot say otherwise, as often as the socket's pace asks.
                    await paced(self._pace)
                    return
                data = loan.buffer.tobytes()  # the pipe went: the next one takes a copy
            finally:
                loan.abandon()
                self._hub.wake(False, True)  # the pipe takes other messages again
            await self._send(data)
            return
        assert private is not None
        await self._send(bytes(private))
