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
- **spinning** first, when the receive call asked for it (``spin_us``,
  rule 5 there): in C with the GIL released, yielding the CPU between
  looks, for as long as :class:`SpinPolicy` says (at most ``spin_us``).

Blocked-time accounting is here too: the time senders spend waiting for
room, shared out over the endpoints whose pipes refused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from ._hub import Hub

__all__ = ["SpinPolicy", "Waiter"]

_T = TypeVar("_T")


class SpinPolicy:
    """How long a receiver spins before it parks, learnt from its recent waits.

    Rules (those of an adaptive mutex, with the answer time for the hold
    time):

    1. Spin for about twice as long as the recent answers that a spin
       caught took, at least ``MIN_NS`` and never more than ``spin_us``.
       With no history, spin up to ``spin_us``.
    2. A spin that ends with no data (the answer took longer, the peer went
       to sleep, a doorbell had news) is a *miss*.  After *k* misses in a
       row the next ``2**(k-1) - 1`` waits park at once (at most 63), then
       one spin probes again.  So a peer that answers slowly, or not at
       all, costs a spin now and then, not at every wait.
    3. Spins that stop paying count as misses too: when the answers a spin
       caught take longer on average than the waits that parked (on a busy
       machine a spinner can delay the very peer it waits for), spinning is
       making things worse.
    4. A spin that catches its answer in time ends the run of misses.  One
       that catches it later than its budget plus ``LATE_NS`` was taken
       off the CPU meanwhile: that is a miss.
    5. No spin while the machine has more runnable threads than CPUs
       (``overcommitted``, sampled by the caller from /proc/loadavg every
       ``SAMPLE_NS``): then the peer needs the CPU a spinner would hold,
       and a spinner's CPU time also costs it the scheduler's credit for
       sleeping, which is what makes a parked wake-up prompt.

    The times are nanoseconds from the start of the wait to the answer,
    at most ``CLAMP`` times ``spin_us`` (a wait for a first peer, or a
    quiet spell, says nothing about how fast answers come), averaged with
    weight 1/4 for the newest.  Never blocks, never does I/O.
    """

    __slots__ = ("budget_ns", "cap_ns", "hit_ns", "misses", "overcommitted", "park_ns", "skip")

    #: The shortest spin worth its set-up.
    MIN_NS = 2_000
    #: The longest run of misses counted: at most 2**6 - 1 waits park between probes.
    MAX_MISSES = 7
    #: Waits are counted up to this many times the bound.
    CLAMP = 4
    #: A hit this much after the budget ran out was taken off the CPU (rule 4).
    LATE_NS = 20_000
    #: How often the caller looks at the machine's runnable threads (rule 5).
    SAMPLE_NS = 50_000_000

    def __init__(self) -> None:
        self.hit_ns = 0  # recent answers a spin caught (0: none yet)
        self.park_ns = 0  # recent waits that parked (0: none yet)
        self.misses = 0  # spins in a row that did not pay
        self.skip = 0  # waits to park at once before the next probe
        self.cap_ns = 0  # the bound of the latest wait
        self.budget_ns = 0  # the budget of the latest wait
        self.overcommitted = False  # rule 5, as last sampled

    def budget(self, cap_ns: int) -> int:
        """Nanoseconds to spin in the wait that starts now (0: park at once)."""
        self.cap_ns = cap_ns
        if self.skip:
            self.skip -= 1
            budget = 0
        elif self.overcommitted:
            budget = 0
        elif not self.hit_ns:
            budget = cap_ns
        else:
            budget = min(cap_ns, max(2 * self.hit_ns, self.MIN_NS))
        self.budget_ns = budget
        return budget

    def hit(self, waited_ns: int) -> None:
        """A spin caught the answer *waited_ns* after the wait started."""
        waited_ns = min(waited_ns, self.CLAMP * self.cap_ns)
        self.hit_ns = waited_ns if not self.hit_ns else (3 * self.hit_ns + waited_ns) // 4
        if self.park_ns and self.hit_ns > self.park_ns:
            self._miss()  # rule 3
        elif waited_ns > self.budget_ns + self.LATE_NS:
            self._miss()  # rule 4
        else:
            self.misses = 0

    def missed(self, waited_ns: int) -> None:
        """A spin found nothing; the task parked and woke *waited_ns* after the start."""
        self.parked(waited_ns)
        self._miss()

    def parked(self, waited_ns: int) -> None:
        """A wait parked (with or without spinning first) and woke after *waited_ns*."""
        waited_ns = min(waited_ns, self.CLAMP * self.cap_ns)
        self.park_ns = waited_ns if not self.park_ns else (3 * self.park_ns + waited_ns) // 4

    def _miss(self) -> None:
        self.misses = min(self.misses + 1, self.MAX_MISSES)
        self.skip = (1 << (self.misses - 1)) - 1


def runnable_threads() -> int:
    """Threads the machine has runnable now (running or waiting for a CPU); 0 if unknown."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 0


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Waiter:
    """The waiting of one socket's tasks."""

    __slots__ = (
        "_check_open",
        "_cpus",
        "_hub",
        "_planned",
        "_sampled",
        "send_blocked",
        "spin_policy",
    )

    def __init__(self, hub: Hub, check_open: Callable[[], None]) -> None:
        self._hub = hub
        self._check_open = check_open
        self.spin_policy = SpinPolicy()
        self._sampled = 0  # when the policy's overcommitted was last sampled
        self._cpus = 0  # the CPUs this process may run on, once known
        self._planned = -1  # the budget plan_spin chose for the next spin (-1: none)
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
            if bells is not None:
                bells.release()  # a doorbell kept for a direct wait: none follows
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
        """Wait for a message, spinning first for up to *spin* microseconds.

        *spin* is the ``spin_us`` the receive call read when it started: a
        call that looked without announcing (``look``) must go through the
        spin, whatever spin_us has become since, since the spin is what
        announces the pipes it found empty (a spin of no time announces
        them and parks).  How long it really spins is the
        :class:`SpinPolicy`'s.
        """
        hub = self._hub
        bells = hub.bells
        if not spin or bells is None:
            # Nothing to watch: a writer in this thread cannot run meanwhile.
            return await self.wait(hub.recv_lot)
        bells.settle()  # the spin announces again
        if hub.queues.recv:
            return True  # something is marked readable already: go and look
        policy = self.spin_policy
        start = time.perf_counter_ns()
        budget, self._planned = self._planned, -1
        if budget < 0:
            budget = policy.budget(spin * 1000)
        if bells.spin(budget / 1000):
            if budget:
                policy.hit(time.perf_counter_ns() - start)
            return True
        try:
            return await self.wait(hub.recv_lot)
        finally:
            waited = time.perf_counter_ns() - start
            if budget:
                policy.missed(waited)
            else:
                policy.parked(waited)

    def plan_spin(self, spin: int) -> bool:
        """Whether a receive call that starts now should take the spinning way.

        The spinning way costs a scheduling round of its own (it yields
        before it looks, ``_receiving``), so when the :class:`SpinPolicy`
        would not spin (backing off, or the machine is overcommitted) the
        call takes the parked way instead, and costs what a parked one
        does.  The budget chosen here is the first spin's.
        """
        policy = self.spin_policy
        now = time.perf_counter_ns()
        if now - self._sampled > SpinPolicy.SAMPLE_NS:
            self._sampled = now
            if not self._cpus:
                self._cpus = _cpus()
            policy.overcommitted = runnable_threads() > self._cpus
        if policy.overcommitted or self._hub.bells is None:
            # The common case on a busy machine first, as cheap as it can be.
            # No bells: nothing to watch, a writer in this thread cannot run.
            return False
        self._planned = policy.budget(spin * 1000)
        return self._planned > 0

    async def wait_recv_parked(self) -> bool:
        """:meth:`wait_recv` with no spin (prebuilt for the common case)."""
        return await self.wait(self._hub.recv_lot)

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
