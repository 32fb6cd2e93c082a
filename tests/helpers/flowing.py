"""Publish probes until a subscriber receives them, leaving none in flight.

A subscription reaches a publisher some time after the subscriber connects
(libzmq's slow joiner over tcp://), and until then what is published is
dropped.  ``until_flowing`` publishes numbered probes until one arrives,
then receives every probe published before it knew, so that the next
``recv`` of the test gets the test's own message and never a late probe.
Nothing in it depends on how fast a probe travels: a loaded machine only
makes it publish more of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

PROBE_EVERY = 0.01  # seconds between probes: a pace, not a deadline


async def until_flowing(
    send: Callable[[bytes], Awaitable[object]],
    recv: Callable[[], Awaitable[bytes]],
    probe: bytes,
    timeout: float = 30,
) -> None:
    """Publish ``probe + number`` until one arrives; receive the rest of them.

    *recv* must be subscribed to *probe*; what it receives that is not a
    probe is skipped.  Fails the test after *timeout* seconds.
    """
    sent = 0
    arrived = trio.Event()

    async def publish() -> None:
        nonlocal sent
        while not arrived.is_set():
            sent += 1
            await send(probe + b"%d" % sent)
            with trio.move_on_after(PROBE_EVERY):
                await arrived.wait()

    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            while not (first := await recv()).startswith(probe):
                pass
            arrived.set()
        # The publisher has stopped: *sent* is the last probe, and the last
        # to arrive (once one came through, every later one comes, in order).
        last = probe + b"%d" % sent
        if first != last:
            while await recv() != last:
                pass
