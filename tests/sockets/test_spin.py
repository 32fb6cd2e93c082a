"""The adaptive spin (``spin_us``): correct whatever ends it, across processes.

The spin is C with the GIL released (tests/ring/test_spin.py checks each
way it ends); the policy of how long to spin is ``_waiting.SpinPolicy``.
Here: a spin that gives up (its bound, a peer asleep, its back-off) never
loses the wake-up; a receive cancelled around a spin consumes nothing; a
peer that dies during a spin is seen.  How fast any of it is belongs to
the bench (``shmsock bench --only latency,loaded``).
"""

from __future__ import annotations

import functools
import random

import pytest
import trio
import trio.testing
from helpers import peers, spinpeers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, PULL, REQ, _waiting
from shmsock._waiting import SpinPolicy

# -- the policy, without I/O ------------------------------------------------------------

CAP = 50_000
RUNNABLE = _waiting.runnable_threads  # the real one: conftest's fixture replaces it


def test_no_history_spins_to_the_bound_then_about_twice_the_answer_time():
    p = SpinPolicy()
    assert p.budget(CAP) == CAP
    p.hit(10_000)
    assert p.budget(CAP) == 20_000
    for _ in range(20):
        p.hit(40_000)
    assert p.budget(CAP) == CAP  # never more than the bound
    for _ in range(40):
        p.hit(100)
    assert p.budget(CAP) == SpinPolicy.MIN_NS


def test_misses_in_a_row_back_off_exponentially_and_a_probe_follows():
    p = SpinPolicy()
    skipped = []
    for _ in range(8):
        assert p.budget(CAP) > 0  # the probe
        p.missed(1_000_000)
        n = 0
        while p.budget(CAP) == 0:
            p.parked(1_000_000)
            n += 1
        # budget() just returned the next probe's: give it back.
        p.skip, skipped = 0, [*skipped, n]
    assert skipped == [0, 1, 3, 7, 15, 31, 63, 63]


def test_a_hit_ends_the_run_of_misses():
    p = SpinPolicy()
    p.budget(CAP)
    p.missed(CAP)
    p.budget(CAP)
    p.missed(CAP)
    assert p.misses == 2
    p.budget(CAP)  # skip one
    assert p.budget(CAP) > 0
    p.hit(5_000)
    assert p.misses == 0 and p.skip == 0


def test_spins_that_catch_answers_later_than_parking_would_are_misses():
    p = SpinPolicy()
    p.budget(CAP)
    p.parked(20_000)  # parked waits took 20 us
    p.hit(45_000)  # the spin caught its answer, later than that
    assert p.misses == 1
    for _ in range(3):
        p.hit(1_000)  # then caught sooner than parking: they pay again
    assert p.hit_ns < p.park_ns and p.misses == 0


def test_a_hit_long_after_the_budget_ran_out_is_a_miss():
    p = SpinPolicy()
    budget = p.budget(CAP)
    p.hit(budget + SpinPolicy.LATE_NS + 1)  # taken off the CPU while spinning
    assert p.misses == 1


def test_no_spin_while_the_machine_is_overcommitted():
    p = SpinPolicy()
    p.overcommitted = True
    assert p.budget(CAP) == 0
    p.overcommitted = False
    assert p.budget(CAP) == CAP


def test_runnable_threads_counts_at_least_this_one():
    assert RUNNABLE() >= 1


# -- across processes -------------------------------------------------------------------


async def test_late_answers_make_every_spin_give_up_and_no_wakeup_is_lost():
    # Every answer comes 20 ms late, far beyond the spin: each wait spins
    # out (or, backing off, does not spin) and parks, and the doorbell must
    # wake it every time.
    with spawn(
        functools.partial(peers.rep_server, spin_us=300), "shm://spin-late", True, "r"
    ) as rep:
        await rep.expect("ready")
        async with shmsock.socket(REQ, spin_us=300) as req:
            req.connect("shm://spin-late")
            policy = req._waiter.spin_policy
            most = 0
            for i in range(12):
                await req.send(b"nap")
                assert await req.recv() == b"r:nap", i
                most = max(most, policy.misses)
            assert most >= 4  # it backed off: waits that parked without spinning
            await req.send(b"quit")
            assert await req.recv() == b"r:quit"
        await rep.expect("done")
        await rep.finish()


async def test_a_spin_that_sees_its_peer_asleep_gives_up_and_is_woken_later():
    # The peer parks in recv: its waiter flag says that no answer is coming,
    # so our spin (bound: 1 s) gives up and parks.  Only then is the peer
    # told to send, and its doorbell must wake us.
    count = 5
    async with shmsock.socket(PAIR, spin_us=1_000_000) as pair:
        pair.bind("shm://spin-asleep")
        with spawn(spinpeers.pair_asleep_then_send, "shm://spin-asleep", count) as peer:
            await peer.expect("ready")
            await pair.wait_peers()
            policy = pair._waiter.spin_policy
            for i in range(count):
                async with trio.open_nursery() as nursery:

                    async def tell_once_parked() -> None:
                        await trio.testing.wait_all_tasks_blocked()
                        peer.send("send")

                    nursery.start_soon(tell_once_parked)
                    assert await pair.recv() == b"%d" % i
                # The spin did not catch it: it gave up, and the doorbell woke us.
                assert policy.hit_ns == 0 and policy.misses >= 1
            peer.send("done")
            await peer.finish()


async def test_a_receive_cancelled_around_spins_consumes_nothing():
    # Receives with random short deadlines, while a PUSH sends in bursts
    # with pauses: whether a deadline passes during a spin, during the
    # park after it, or not at all, every message arrives once, in order.
    count = 300
    rng = random.Random(23)
    async with shmsock.socket(PULL, spin_us=2000) as pull:
        pull.bind("shm://spin-cancel")
        with spawn(peers.push_bursts, "shm://spin-cancel", False, count, "b", 7) as push:
            await push.expect("ready")
            got: list[bytes] = []
            cancelled = 0
            with trio.fail_after(60):
                while len(got) < count:
                    with trio.move_on_after(rng.choice((0, 0.0001, 0.0005, 0.002))) as scope:
                        got.append(await pull.recv())
                    cancelled += scope.cancelled_caught
            assert got == [b"b:%d" % i for i in range(count)]
            assert cancelled > 0
            push.send("exit")
            await push.finish()


async def test_a_peer_that_dies_during_a_spin_is_seen():
    # The REP is killed holding our request while we spin (bound: 1 s);
    # the spin ends on the doorbell's hang-up and the REQ reports the loss.
    async with shmsock.socket(REQ, spin_us=1_000_000) as req:
        req.bind("shm://spin-death")
        with spawn(spinpeers.rep_dies_on_request, "shm://spin-death") as rep:
            await rep.expect("ready")
            await req.send(b"are you there")
            with pytest.raises(trio.BrokenResourceError):
                await req.recv()
            await rep.join()


async def test_a_spin_waits_out_a_push_peer_idle_in_its_control_ring(monkeypatch):
    # A PUSH reads no data, only control messages, and waits on our ring for
    # them all the time: its announcement there does not mean that it sleeps
    # until we answer, so our spin must not give up on seeing it.
    monkeypatch.setattr(_waiting, "runnable_threads", lambda: 1)  # rule 5 aside
    with spawn(peers.push_when_told, "shm://spin-push", False) as push:
        async with shmsock.socket(PULL, spin_us=1_000_000) as pull:
            pull.bind("shm://spin-push")
            await push.expect("ready")
            await pull.wait_peers()
            push.send((0, b"first"))  # once it is sent, the PUSH has attached
            assert await pull.recv() == b"first"
            policy = pull._waiter.spin_policy = SpinPolicy()
            push.send((0.05, b"late"))  # 50 ms into a spin bounded at 1 s
            assert await pull.recv() == b"late"
            # The spin caught it: it did not give up and park.
            assert policy.misses == 0 and policy.hit_ns > 0
            push.send(None)
            assert await push.join() == 0
