"""The socket's reactor: one epoll set, handlers run when the socket polls, and soon()."""

from __future__ import annotations

import os
import select

import trio

from shmsock._transport._reactor import Reactor


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_soon_runs_at_the_next_poll_once_each_in_order_and_wakes_a_waiter():
    reactor = Reactor()
    ran: list[str] = []
    assert not reactor.opened.is_set()  # no epoll descriptor until one is needed
    reactor.soon(lambda: ran.append("a"))
    assert reactor.opened.is_set()
    reactor.soon(lambda: ran.append("b"))
    # The background task waiting on the epoll descriptor would wake now.
    assert readable(reactor.fileno())
    assert reactor.poll()
    assert ran == ["a", "b"]
    assert not readable(reactor.fileno())  # the eventfd was read
    assert not reactor.poll()
    assert ran == ["a", "b"]
    reactor.close()


def test_a_handler_that_asks_for_soon_runs_again_at_the_next_poll():
    reactor = Reactor()
    ran: list[int] = []

    def again() -> None:
        ran.append(len(ran))
        if len(ran) < 3:
            reactor.soon(again)

    reactor.soon(again)
    reactor.poll()
    assert ran == [0] and readable(reactor.fileno())
    reactor.poll()
    reactor.poll()
    assert ran == [0, 1, 2] and not readable(reactor.fileno())
    reactor.close()


def test_a_failing_handler_is_logged_and_the_others_still_run(caplog):
    reactor = Reactor()
    r, w = os.pipe()
    ran: list[str] = []
    reactor.register(r, lambda: ran.append("fd"))
    reactor.soon(lambda: 1 / 0)
    reactor.soon(lambda: ran.append("soon"))
    os.write(w, b"x")
    reactor.poll()
    assert ran == ["soon", "fd"]
    assert "ZeroDivisionError" in caplog.text
    reactor.close()
    os.close(r)
    os.close(w)


async def test_close_wakes_a_task_waiting_on_it_and_soon_does_nothing_after():
    reactor = Reactor()
    r, w = os.pipe()
    reactor.register(r, lambda: None)
    async with trio.open_nursery() as nursery:
        woke = trio.Event()

        async def wait() -> None:
            try:
                await trio.lowlevel.wait_readable(reactor.fileno())
            except trio.ClosedResourceError:
                woke.set()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        reactor.soon(lambda: None)  # makes its eventfd (the waiter runs later)
        reactor.close()
        await woke.wait()
    reactor.soon(lambda: None)
    assert not reactor.poll()
    os.close(r)
    os.close(w)
