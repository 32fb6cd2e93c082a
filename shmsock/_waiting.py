"""How a socket's tasks wait: parked, on a descriptor directly, or spinning.

A task waits only after a ``*_nowait`` attempt raised WouldBlock, and only
until trying again may succeed: a transport's Events call (through the
hub) wakes it, or its own descriptor does.  Every wait here returns
whether it went through a schedule point, so that a call that waited does
not take a second one (``_trio.retry``), and a cancelled wait raises
before anything was taken or sent.

Three ways to wait:

- **parked** in one of the hub's lots, woken by the hub (the general way);
- **directly** on the descriptor of the socket's only pipe, when its
  transport has that capability (shm's doorbell): one scheduling round
  instead of two.  The transport's wake-up protocol says what muting,
  holding and settling mean (``_transport/shm/_doorbell.py``, rules 3-4);
- **spinning** first, for up to ``spin_us``, when the receive call asked
  for it (rule 5 there).

Blocked-time accounting is here too: the time senders spend waiting for
room, shared out over the endpoints whose pipes refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from ._hub import Hub

__all__ = ["Waiter"]

_T = TypeVar("_T")


class Waiter:
    """The waiting of one socket's tasks."""

    __slots__ = ("_check_open", "_hub", "send_blocked")

    def __init__(self, hub: Hub, check_open: Callable[[], None]) -> None:
        self._hub = hub
        self._check_open = check_open
        #: Seconds senders waited for room, by endpoint (see wait_send).
        self.send_blocked: dict[str, float] = {}

    async def wait(self, lot: trio.lowlevel.ParkingLot) -> bool:
        """Sleep until a descriptor or the hub says to try again.

        With one live pipe, whose transport lets a task wait on it, and
        nobody else waiting on it: wait on that descriptor directly and
        handle what it says in this task.  Otherwise park in *lot*.

        Returns whether it slept (and so went through a schedule point).
        It does not when a held doorbell had to be read first: what it
        said may be news, so the caller looks again at once.
        """
        hub = self._hub
        bells = hub.bells
        if bells is not None and bells.held is not None:
            bells.settle()
            hub.reap()
            return False
        pipe = hub.only_pipe()
        sock = None
        if pipe is not None and bells is not None and hub.direct is None:
            sock = bells.doorbell(pipe)
        if sock is None or bells is None:
            await lot.park()
            self._check_open()
            return True
        bells.mute(pipe)
        hub.direct = sock
        try:
            await trio.lowlevel.wait_readable(sock)
        except trio.ClosedResourceError:
            pass  # woken by Hub.wake_direct, or the peer is gone: look again
        except BaseException:
            bells.unmute(pipe)  # cancelled: the descriptor is the reactor's again
            raise
        finally:
            hub.direct = None
        if lot is hub.recv_lot and not hub.send_lot and not hub.drain_lot:
            # Leaves the doorbell muted and unread; not while other tasks
            # wait for a byte (room) on it.
            bells.rang(pipe)
        else:
            bells.reopen(pipe)
            hub.reap()
        self._check_open()
        return True

    async def wait_recv(self, spin: int) -> bool:
        """Wait for a message, spinning first for *spin* microseconds.

        *spin* is the ``spin_us`` the receive call read when it started: a
        call that looked without announcing (``look``) must spin, whatever
        spin_us has become since, since the spin is what announces the
        pipes it found empty.
        """
        if spin and self._spin(spin):
            return True
        return await self.wait(self._hub.recv_lot)

    async def wait_recv_parked(self) -> bool:
        """:meth:`wait_recv` with no spin (prebuilt for the common case)."""
        return await self.wait(self._hub.recv_lot)

    def _spin(self, spin_us: int) -> bool:
        hub = self._hub
        bells = hub.bells
        if bells is None:
            return False  # nothing to watch: a writer in this thread cannot run meanwhile
        bells.settle()  # it announces again below
        if hub.queues.recv:
            return True  # something is marked readable already: go and look
        return bells.spin(spin_us)

    def look(self, take: Callable[..., _T], *args: Any) -> _T:
        """A spinning receive call's first look (see WakeUps.look)."""
        bells = self._hub.bells
        return take(*args) if bells is None else bells.look(take, *args)

    async def wait_send(self) -> bool:
        """Wait for room; the time counts as blocked if there were peers.

        With no live peer the sender waits for one, not for room: that is
        not counted.  Otherwise every live peer refused the message, and
        the wait is shared out evenly over their endpoints (so the sum over
        endpoints is the time this sender spent blocked).  Measured only
        here, when a send really waits, never per message.
        """
        endpoints = {p.endpoint for p in self._hub.pipes if p.alive}
        if not endpoints:
            return await self.wait(self._hub.send_lot)
        start = time.perf_counter()
        try:
            return await self.wait(self._hub.send_lot)
        finally:
            self._add_blocked(endpoints, time.perf_counter() - start)

    async def wait_room(self, endpoint: str) -> None:
        """Wait for room on one pipe of *endpoint* (a streamed message's)."""
        start = time.perf_counter()
        try:
            await self.wait(self._hub.send_lot)
        finally:
            self._add_blocked({endpoint}, time.perf_counter() - start)

    def _add_blocked(self, endpoints: set[str], seconds: float) -> None:
        share = seconds / len(endpoints)
        blocked = self.send_blocked
        for endpoint in endpoints:
            blocked[endpoint] = blocked.get(endpoint, 0.0) + share

    async def wait_peers(self) -> bool:
        """Park until the number of live pipes may have changed."""
        await self._hub.peers_lot.park()
        self._check_open()
        return True

    async def linger(self, seconds: float | None) -> None:
        """Wait up to *seconds* (None: no bound) for the readers to take what was sent."""
        if seconds == 0:
            await trio.lowlevel.checkpoint()
            return
        hub = self._hub
        with trio.move_on_after(float("inf") if seconds is None else seconds):
            while True:
                if hub.bells is not None:
                    hub.bells.settle()  # before announcing: see shm/_doorbell.py, rule 4
                waiting = [p for p in hub.pipes if p.unread()]
                if not waiting and not any(t.undelivered() for t in hub.transports.values()):
                    await trio.lowlevel.checkpoint()
                    return
                # The hub wakes us when a reader frees room, a peer goes,
                # or a binder attaches.
                if all(p.prepare_drain() for p in waiting):
                    await hub.drain_lot.park()
