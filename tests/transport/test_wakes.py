"""Rule 7 of the wake-up protocol: a publisher's owed wakes and when they are paid.

The policy alone, with stand-in connections and a stand-in scheduler: which
call rings which doorbell, once.  Across processes, tests/sockets/
test_pubsub_procs.py checks that no subscriber is left asleep.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shmsock._transport.shm import _doorbell
from shmsock._transport.shm._doorbell import WAKE_DELAY_NS, WAKE_WRITES, Wakes


class Conn:
    def __init__(self) -> None:
        self.rung = 0

    def wake(self) -> None:
        self.rung += 1


class Later:
    """call_later(0, fn) as a list: the test plays the scheduler's passes."""

    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []

    def __call__(self, seconds: float, fn: Callable[[], None]) -> None:
        assert seconds == 0
        self.calls.append(fn)

    def run_pass(self) -> None:
        calls, self.calls = self.calls, []
        for fn in calls:
            fn()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    t = [0]
    monkeypatch.setattr(_doorbell, "now", lambda: t[0])
    return t


def test_a_wake_is_paid_at_the_first_pass_without_a_write(clock):
    later = Later()
    wakes = Wakes(later)
    a, b = Conn(), Conn()
    wakes.owe(a)
    wakes.wrote(100, 1 << 20)
    wakes.owe(b)
    wakes.owe(a)  # the same reader again: still one byte
    wakes.wrote(100, 1 << 20)
    assert (a.rung, b.rung) == (0, 0)
    later.run_pass()  # a write came since the check was scheduled
    assert (a.rung, b.rung) == (0, 0)
    later.run_pass()  # none since the last pass: the burst is over
    assert (a.rung, b.rung) == (1, 1)
    later.run_pass()
    assert later.calls == [] and (a.rung, b.rung) == (1, 1)


def test_a_publisher_that_keeps_writing_pays_every_wake_writes(clock):
    later = Later()
    wakes = Wakes(later)
    a = Conn()
    wakes.owe(a)
    for _ in range(WAKE_WRITES - 1):
        wakes.wrote(10, 1 << 20)
    assert a.rung == 0
    wakes.wrote(10, 1 << 20)
    assert a.rung == 1


def test_a_publisher_that_keeps_writing_pays_before_an_eighth_of_the_ring(clock):
    later = Later()
    wakes = Wakes(later)
    a = Conn()
    wakes.owe(a)
    wakes.wrote(1000, 4000)
    wakes.wrote(1000, 4000)
    wakes.wrote(1000, 4000)
    assert a.rung == 0
    wakes.wrote(1000, 4000)
    assert a.rung == 1


def test_a_publisher_that_writes_at_every_pass_pays_after_the_delay(clock):
    later = Later()
    wakes = Wakes(later)
    a = Conn()
    wakes.owe(a)
    wakes.wrote(10, 1 << 20)
    for _ in range(10):
        clock[0] += WAKE_DELAY_NS // 20
        wakes.wrote(10, 1 << 20)
        later.run_pass()
    assert a.rung == 0
    clock[0] += WAKE_DELAY_NS
    wakes.wrote(10, 1 << 20)
    later.run_pass()
    assert a.rung == 1


def test_paying_and_forgetting(clock):
    later = Later()
    wakes = Wakes(later)
    a = Conn()
    wakes.owe(a)
    wakes.pay()
    wakes.pay()
    assert a.rung == 1
    wakes.owe(a)
    wakes.forget()  # a fork child rings nothing
    wakes.pay()
    later.run_pass()
    assert a.rung == 1
