"""Sending a message too large to write at once: piece by piece, waiting for room.

Only ``await send()`` (and ``send_multipart``) streams, and only a message
that a transport of the socket cannot write at once (``check_atomic``
raised; for shm, more than half a ring: ``_transport/shm/_framing.py``).
The pattern places it as any message; the pipe it chose is reserved for
it (``streaming``) until its last piece is written, and the receiver
delivers it only once complete.  A send cancelled midway, or a pipe lost
midway, leaves the receiver with a part it drops: never a part delivered.
A pipe lost midway makes the message start over on the next pipe the
pattern offers.

Issue 22's bulk region makes shm write every message at once, and this
path unused by shm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import trio

from ._errors import MessageTooLarge
from ._hub import Hub
from ._outbox import Outbox
from ._patterns import Dropped, Fanout, Pattern
from ._transport import Pipe
from ._trio import shielded_checkpoint
from ._waiting import Waiter

__all__ = ["stream"]


async def stream(
    frames: list[bytes],
    *,
    pattern: Pattern,
    hub: Hub,
    outbox: Outbox,
    waiter: Waiter,
    check_open: Callable[[], None],
) -> None:
    """Send *frames* piece by piece (the caller has been through its first checkpoint)."""
    given = frames
    passes = 0
    while True:
        check_open()
        pattern.check_send()
        if pattern.shapes_send:  # asked again each time: the peers change
            frames, aux = pattern.outgoing(given)
        else:
            aux = -1
        size = outbox.size_check(frames)
        if size > hub.peer_limit:  # the peers may have changed meanwhile
            outbox.check_peer_limits(size)
        if aux < 0:
            aux = pattern.send_aux()
        target = pattern.route()
        if isinstance(target, Dropped):
            await shielded_checkpoint()
            return
        if isinstance(target, Fanout):
            raise MessageTooLarge(
                "a message too large to write at once cannot go to several peers at once"
            )
        if target is None or passes > len(pattern.queues.send):
            passes = 0
            try:
                outbox.nothing_to_send()
            except trio.WouldBlock:
                await waiter.wait_send()
            continue
        pipe = cast(Pipe, target)
        if size > pipe.peer_limit:
            pattern.passed_over(pipe)  # another peer accepts it (checked above)
            passes += 1
            continue
        writer = pipe.stream(frames, aux)
        try:
            while (done := writer.step()) == 0:
                await waiter.wait_room(pipe.endpoint)
        finally:
            writer.close()
            hub.wake(False, True)  # other messages may use this pipe again
        if done > 0:
            pattern.sent(pipe)
            await shielded_checkpoint()
            return
        # The pipe went away mid-message; its receiver drops the part it
        # got.  Start over with whichever pipe the pattern offers next.
