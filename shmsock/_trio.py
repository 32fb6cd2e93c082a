"""Trio's rules for the socket's public methods, written once.

Every public ``async`` method of a socket is built on :func:`retry`, the
shape of trio's ``MemorySendChannel.send``:

1. ``checkpoint_if_cancelled()``: a call made in a cancelled scope raises
   Cancelled before it takes or sends anything.
2. Try the operation that never waits (a ``*_nowait``).  If it raises
   ``trio.WouldBlock``, wait until trying again may succeed, and try again.
   Cancellation can only land in that wait, before anything was taken or
   sent, so it is atomic.
3. A call that never waited ends with a schedule point
   (``cancel_shielded_checkpoint()``) if this thread has not been through
   one for the socket's ``schedule_every_us`` (*pace*): every call when it
   is 0, else at least once per that many microseconds of calls that never
   wait.  A call that waited went through one already: one scheduling
   round between "ready" and "done" is all it costs.

Step 3's clock (:data:`clock`) is one timestamp per thread, which the
library sets whenever it yields or waits: trio issue #1757's
approximation, with the latitude ``trio.lowlevel.checkpoint``'s docstring
grants ("the scheduler has the option of ignoring this").  A schedule
point is one trip through Trio's run loop, a few microseconds; the
cancellation check of step 1 costs a tenth of one, so a cancelled scope
still stops the next call, which takes and sends nothing.  What the pace
delays is only a deadline that passes while a task never waits: Trio
turns it into Cancelled at a schedule point, so up to ``schedule_every_us``
late.  The socket's fast paths (``await send()``, ``await recv()``) keep
the same steps inline, with no call to :func:`retry`.

The public methods are also protected from KeyboardInterrupt
(:data:`ki_protected`), as Trio's own channels are: a Ctrl-C that landed
between a write and the wake-up that write claimed would leave the reader
asleep over unread data, and one between taking records from a ring and
returning them would lose them.  Trio raises it in the main task at its
next checkpoint instead, and a main task blocked in one of them is
interrupted at its wait, as by a cancel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import sniffio
import trio

from ._errors import NotInTrio

__all__ = [
    "checkpoint_if_cancelled",
    "clock",
    "ki_protected",
    "now",
    "paced",
    "require_trio",
    "retry",
    "shielded_checkpoint",
]

_T = TypeVar("_T")

ki_protected: Final = trio.lowlevel.enable_ki_protection
checkpoint_if_cancelled: Final = trio.lowlevel.checkpoint_if_cancelled
shielded_checkpoint: Final = trio.lowlevel.cancel_shielded_checkpoint
now: Final = time.perf_counter_ns


class _Clock(threading.local):
    #: When this thread last went through a schedule point or a wait (ns).
    last = 0


#: Step 3's clock: one per thread, since each thread runs its own trio.run.
clock: Final = _Clock()


async def paced(pace: int) -> None:
    """Step 3 for a call that never waited: a schedule point, unless one is recent.

    *pace* is the socket's ``schedule_every_us`` in nanoseconds.
    """
    if pace and now() - clock.last < pace:
        return
    await shielded_checkpoint()
    clock.last = now()


async def retry(
    op: Callable[..., _T],
    wait: Callable[[], Awaitable[bool]],
    *args: Any,
    checked: bool = False,
    yield_first: bool = False,
    on_cancel: Callable[[], None] | None = None,
    pace: int = 0,
) -> _T:
    """``op(*args)``, waiting with ``wait()`` while it raises trio.WouldBlock.

    *wait* returns whether it went through a schedule point (it may return
    False without waiting, when what it found means the caller should look
    again at once).  With *checked*, the caller has just done step 1
    itself.  With *yield_first*, step 1 is a full checkpoint instead, so
    step 3 is never needed (a spinning receiver's: it yields before it
    looks, so that once it sees data it can return without yielding
    again).  *on_cancel* is called when the call is cancelled, or
    interrupted (KeyboardInterrupt is delivered at the wait, like a
    cancel), before the exception propagates: a REQ abandons its request.
    *pace* is the socket's ``schedule_every_us`` in nanoseconds (step 3).
    Any other exception from *op* or *wait* propagates at once.
    """
    try:
        if yield_first:
            await trio.lowlevel.checkpoint()
        elif not checked:
            await checkpoint_if_cancelled()
        waited = yield_first
        while True:
            try:
                result = op(*args)
            except trio.WouldBlock:
                if await wait():
                    waited = True
                continue
            break
    except (trio.Cancelled, KeyboardInterrupt):
        if on_cancel is not None:
            on_cancel()
        raise
    if not waited:
        await paced(pace)
    else:
        clock.last = now()
    return result


def require_trio(what: str) -> None:
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
