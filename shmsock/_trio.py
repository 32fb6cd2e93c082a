"""Trio's rules for the socket's public methods, written once.

Every public ``async`` method of a socket is built on :func:`retry`, the
shape of trio's ``MemorySendChannel.send``:

1. ``checkpoint_if_cancelled()``: a call made in a cancelled scope raises
   Cancelled before it takes or sends anything.
2. Try the operation that never waits (a ``*_nowait``).  If it raises
   ``trio.WouldBlock``, wait until trying again may succeed, and try again.
   Cancellation can only land in that wait, before anything was taken or
   sent, so it is atomic.
3. A call that never waited ends with ``cancel_shielded_checkpoint()``, so
   that it is a schedule point all the same.  A call that waited went
   through one already: one scheduling round between "ready" and "done"
   is all it costs.

Issue 22's "schedule point at least every N microseconds" changes step 3,
here and nowhere else.

The public methods are also protected from KeyboardInterrupt
(:data:`ki_protected`), as Trio's own channels are: a Ctrl-C that landed
between a write and the wake-up that write claimed would leave the reader
asleep over unread data, and one between taking records from a ring and
returning them would lose them.  Trio raises it in the main task at its
next checkpoint instead, and a main task blocked in one of them is
interrupted at its wait, as by a cancel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import sniffio
import trio

from ._errors import NotInTrio

__all__ = [
    "checkpoint_if_cancelled",
    "ki_protected",
    "require_trio",
    "retry",
    "shielded_checkpoint",
]

_T = TypeVar("_T")

ki_protected: Final = trio.lowlevel.enable_ki_protection
checkpoint_if_cancelled: Final = trio.lowlevel.checkpoint_if_cancelled
shielded_checkpoint: Final = trio.lowlevel.cancel_shielded_checkpoint


async def retry(
    op: Callable[..., _T],
    wait: Callable[[], Awaitable[bool]],
    *args: Any,
    checked: bool = False,
    yield_first: bool = False,
    on_cancel: Callable[[], None] | None = None,
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
        await shielded_checkpoint()
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
