"""``shmsock.proxy``: libzmq's proxy, as a Trio function that runs until cancelled.

It joins a *frontend* and a *backend* socket: whatever one receives, the
other sends, both ways at once where both can (a ROUTER/DEALER broker, an
XSUB/XPUB forwarder, whose subscriptions travel back as messages), one way
where only one can (a PULL/PUSH streamer).  Rules:

1. **Whole messages.**  A message goes on with all its frames, as they
   came: a ROUTER frontend's routing id travels in front of the request,
   and the backend's reply comes back to the ROUTER with it.
2. **Atomic forwarding.**  Each message is taken from one socket and
   placed on the other in one step with no checkpoint in between: the
   proxy takes a message only when the other side takes it at once.  One
   that meets a full receiver goes back, first in its sender's queue, and
   the proxy waits for room.  So a cancel (or an error) lands between two
   messages, never in one: every message is forwarded whole, once, or not
   taken at all.  Only a message too large to write at once (over half a
   ``shm://`` ring) is sent piece by piece, after it was taken; a cancel
   in the middle of that one loses it (its receiver drops the part).
3. **Capture.**  A *capture* socket gets a copy of every message forwarded
   (either way), sent after the message was forwarded.  When it has no
   room, the proxy waits for it before it forwards more; a cancel during
   that wait costs the capture that one copy, never the message.
4. **Undeliverable messages are dropped, not fatal.**  A reply whose
   routing id names no peer of a ROUTER (a client that left) is dropped
   and counted in that ROUTER's ``unroutable``; a message the receiver
   can never take (over its ``max_msg_size``, or not a message of its
   type) is dropped and logged.  Anything else (a socket closed) ends the
   proxy with that error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

import trio

from ._errors import HostUnreachable, MessageTooLarge
from ._trio import require_trio, retry

if TYPE_CHECKING:
    from ._socket import Socket

__all__ = ["proxy"]

log = logging.getLogger("shmsock")


class _Leg:
    """One direction of a proxy: from *src* to *dst*."""

    def __init__(self, src: Socket, dst: Socket, capture: Socket | None) -> None:
        self.src = src
        self.dst = dst
        self.capture = capture
        self.full = False  # the last try found dst full: wait for its room
        self.copy: list[bytes] | None = None  # owed to the capture socket
        self.large: list[bytes] | None = None  # taken, to stream (rule 2)

    def step(self) -> None:
        """Forward one message now (rule 2), or raise trio.WouldBlock."""
        self.full = False
        self.src._inbox.take(True, True, self._deliver)

    def _deliver(self, frames: list[bytes]) -> None:
        dst = self.dst
        try:
            dst.send_multipart_nowait(frames)
        except trio.WouldBlock:
            self.full = True
            raise  # the message goes back to src
        except HostUnreachable:
            dst._pattern.unroutable += 1  # type: ignore[attr-defined]
            return
        except MessageTooLarge:
            try:
                dst._outbox.size_check(frames)
            except MessageTooLarge as exc:
                log.warning("shmsock.proxy: dropped a message: %s", exc)
                return
            self.large = frames  # too large to write at once: it is streamed
            return
        except ValueError as exc:
            log.warning("shmsock.proxy: dropped a message the %s cannot send: %s", dst.type, exc)
            return
        if self.capture is not None:
            self._copy(frames)

    def _copy(self, frames: list[bytes]) -> None:
        try:
            self.capture.send_multipart_nowait(frames)  # type: ignore[union-attr]
        except trio.WouldBlock:
            self.copy = frames

    async def wait(self) -> bool:
        if self.full:
            return await self.dst._waiter.wait_send()
        return await self.src._waiter.wait_recv_parked()

    async def run(self) -> NoReturn:
        while True:
            await retry(self.step, self.wait)
            if self.large is not None:
                frames, self.large = self.large, None
                try:
                    await self.dst.send_multipart(frames)
                except MessageTooLarge as exc:
                    log.warning("shmsock.proxy: dropped a message: %s", exc)
                else:
                    if self.capture is not None:
                        self._copy(frames)
            if self.copy is not None:
                copy, self.copy = self.copy, None
                await self.capture.send_multipart(copy)  # type: ignore[union-attr]


async def proxy(frontend: Socket, backend: Socket, capture: Socket | None = None) -> NoReturn:
    """Forward messages between *frontend* and *backend* until cancelled (libzmq's proxy).

    Both ways where both sockets can (ROUTER/DEALER, XSUB/XPUB), one way
    where one only receives (PULL/PUSH).  A *capture* socket gets a copy
    of each message.  Run it in a nursery and cancel it to stop::

        async with trio.open_nursery() as nursery:
            nursery.start_soon(shmsock.proxy, frontend, backend)
            ...
            nursery.cancel_scope.cancel()

    Every message is forwarded whole and once, or left where it was: a
    cancel never lands in the middle of one (docs/proxy.md says what
    "atomic" means here, and its one exception: a message too large to
    write at once).  Never returns.

    Raises:
        ValueError: neither socket can receive what the other sends, the
            capture socket cannot send, or a socket is given twice.
        trio.ClosedResourceError: a socket is closed, or closes meanwhile.
        StateError, CorruptMessage: as the sockets' own recv and send.
        NotInTrio: outside ``trio.run``.

    On cancel:
        It stops between two messages: each is forwarded whole, or not taken.
    """
    require_trio("proxy()")
    if frontend is backend or capture is frontend or capture is backend:
        raise ValueError("proxy() needs a frontend, a backend and a capture: distinct sockets")
    legs = [
        _Leg(src, dst, capture)
        for src, dst in ((frontend, backend), (backend, frontend))
        if src._pattern.can_recv and dst._pattern.can_send
    ]
    if not legs:
        raise ValueError(
            f"proxy(): a {frontend.type.name} frontend and a {backend.type.name} backend"
            " have no direction to forward: one must receive what the other sends"
        )
    if capture is not None and not capture._pattern.can_send:
        raise ValueError(f"proxy(): a {capture.type.name} capture socket cannot send")
    async with trio.open_nursery() as nursery:
        for leg in legs:
            nursery.start_soon(leg.run)
    raise AssertionError("unreachable")  # pragma: no cover - the legs never return
