"""Races of the EVENTS discipline, driven in their losing order (``shmsock._transport.zmq``).

libzmq's descriptor signals once per batch of commands, and whichever call
into the socket processes them consumes the signal.  Under load a libzmq
I/O thread's news ("room came", "a message came") can land in the window
between a call and the EVENTS read that follows it, and that read then
consumes it: only what that read returns can say it happened.  These tests
make the window wide on purpose: they stand inside the link's EVENTS read,
let the peer act and wait until its news is in the socket's mailbox, and
then let the read consume it.  Before the fixes each one hung (on a loaded
machine ``TestRouterToDealer::test_order_and_exactly_once[tcp]`` hung about
once in 200 runs the same way).

The peer is a plain pyzmq socket in this process: the test drives it from
inside the link's call, where no Trio task may run.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import trio
import zmq
from helpers import seam
from zmq_helpers import LOOPBACK, zsocket

from shmsock import PUSH, REP, ROUTER

pytestmark = pytest.mark.timeout(60)

_POLLOUT = int(zmq.POLLOUT)


@contextmanager
def zmq_peer(kind: int, **options: Any) -> Iterator[zmq.Socket[bytes]]:
    ctx = zmq.Context()
    sock = ctx.socket(kind)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    try:
        yield sock
    finally:
        sock.close(0)
        ctx.term()


def drain(sock: zmq.Socket[bytes], quiet_ms: int = 200) -> list[list[bytes]]:
    """Everything *sock* receives until nothing came for *quiet_ms*."""
    got = []
    while sock.poll(quiet_ms):
        got.append(sock.recv_multipart())
    return got


def consume_inside_again_send(link: Any, act: Callable[[], None]) -> dict[str, bool]:
    """On the link's first Again on a send: *act*, then let its EVENTS read consume the news.

    Returns a dict whose "done" turns True once that happened.
    """
    state = {"armed": False, "done": False}
    real_again, real_events = link.again_send, link.events_now

    def again_send(pipe: Any) -> bool:
        state["armed"] = True
        try:
            result: bool = real_again(pipe)
            return result
        finally:
            state["armed"] = False

    def events_now() -> int:
        if not state["armed"] or state["done"]:
            return int(real_events())
        state["done"] = True
        act()
        # Wait for libzmq's "room came" to be in the mailbox, and consume it
        # here, as a read that lost the race would.
        for _ in range(100):
            if select.select([link.fd], [], [], 0.1)[0]:
                ev = int(real_events())
                if ev & _POLLOUT:
                    return ev
        raise AssertionError("libzmq never said there was room")

    link.again_send = again_send
    link.events_now = events_now
    return state


@pytest.mark.parametrize("others", [0, 1], ids=["one-peer", "two-peers"])
async def test_a_routers_room_that_comes_inside_its_again_check_wakes_the_sender(others):
    # A ROUTER's POLLOUT says "some peer has room", so a link used to take
    # it for this send's room only from its descriptor's handler, and a
    # read made just after an Again, which consumed the descriptor's signal,
    # was thrown away: the sender parked for good.  With one peer, POLLOUT
    # is that peer's room; with two (the other one idle, with room), the
    # link cannot tell and looks again a moment later.
    payload = bytes(128 << 10)
    async with zsocket(ROUTER, sndhwm=1) as router:
        endpoint = router.bind(LOOPBACK)
        [link] = seam.zmq(router).bound.values()
        with contextlib.ExitStack() as stack:
            names = [b"d"] + [b"idle%d" % i for i in range(others)]
            dealers = {}
            for name in names:
                dealer = dealers[name] = stack.enter_context(
                    zmq_peer(zmq.DEALER, ROUTING_ID=name, RCVHWM=1, RCVBUF=1 << 16)
                )
                dealer.connect(endpoint)
                dealer.send(b"hi")
                with trio.fail_after(10):
                    assert await router.recv_multipart() == [name, b"hi"]
            await seam.until(router, lambda: link.shaken == len(names))
            dealer = dealers[b"d"]
            got: list[list[bytes]] = []
            state = consume_inside_again_send(link, lambda: got.extend(drain(dealer)))
            sent = 0
            with trio.fail_after(10):  # the lost wake-up hangs here
                while not state["done"] or sent < 3:
                    await router.send_multipart([b"d", b"%d" % sent, payload])
                    sent += 1
                    assert sent < 10_000, "the buffers never filled"
            got.extend(drain(dealer))
            assert [m[0] for m in got] == [b"%d" % i for i in range(sent)]


async def test_a_message_sent_while_a_batch_waits_in_the_link_goes_after_the_batch():
    # What libzmq had no room for in a send_many waits in the link (rule 6),
    # and the pipe stays at the head of the send queue.  When libzmq's
    # socket learns of room (any call into it may process that news: here
    # an EVENTS read) before the link's handler has run, send_nowait's fast
    # path used to hand its message to libzmq at once, ahead of the batch.
    payload = bytes(64 << 10)
    batch = [b"%04d" % i + payload for i in range(200)]  # 12.5 MiB: more than the buffers
    async with zsocket(PUSH, sndhwm=1) as push:
        with zmq_peer(zmq.PULL, RCVHWM=1, RCVBUF=1 << 16) as pull:
            port = pull.bind_to_random_port("tcp://127.0.0.1")
            push.connect(f"tcp://127.0.0.1:{port}")
            await push.wait_peers(1)
            await push.send_many(batch)
            [pipe] = seam.pipes(push)
            assert pipe.unread()  # the link holds the rest of the batch
            [[link]] = seam.zmq(push).connected.values()
            # The peer takes the first message, which leaves libzmq room (at
            # least one went), and libzmq's news of it reaches the socket's
            # mailbox: the link's handler has not run.  Any call into the
            # socket now processes that news, once libzmq's command throttle
            # (about 1 ms after the last call that processed its mailbox) lets it.
            got = [pull.recv()]
            assert select.select([link.fd], [], [], 10)[0]
            time.sleep(0.01)  # noqa: ASYNC251 - on purpose: no task (no handler) runs meanwhile
            try:
                push.send_nowait(b"late")
                late_sent = True
            except trio.WouldBlock:
                late_sent = False

            async def receive() -> None:
                while len(got) < len(batch) + 1:
                    got.append(await trio.to_thread.run_sync(pull.recv))

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    if not late_sent:
                        await push.send(b"late")
            assert got == [*batch, b"late"]


@asynccontextmanager
async def rep_whose_requester_left() -> AsyncIterator[tuple[Any, str, Any]]:
    """A REP bound on tcp://, answered one requester, which left: (rep, endpoint, link).

    The link's pipe is gone and still reads (``Link.draining``).
    """
    async with zsocket(REP) as rep:
        endpoint = rep.bind(LOOPBACK)
        [link] = seam.zmq(rep).bound.values()
        with zmq_peer(zmq.REQ) as first:
            first.connect(endpoint)
            first.send(b"q1")
            with trio.fail_after(10):
                assert await rep.recv() == b"q1"
                await rep.send(b"r1")
            assert first.poll(10_000) and first.recv() == b"r1"
        await seam.until(rep, lambda: link.pipe is None and link.draining is not None)
        yield rep, endpoint, link


async def test_a_request_that_comes_before_its_peers_pipe_is_answered():
    # A REP's bound link: its last requester left (the gone pipe still
    # reads), and a new one's handshake succeeded but POLLOUT has not come
    # yet (the pipe waits for it, see Link._arrive).  The new requester's
    # message comes first.  Read through the gone pipe, the REP answered the
    # gone pipe, which drops it: the new requester waited forever (the test
    # of a requester that died failed so, about once in 30 runs under load).
    async with rep_whose_requester_left() as (rep, endpoint, link):
        real = link.events_now
        link.events_now = lambda: real() & ~_POLLOUT  # POLLOUT is late
        try:
            with zmq_peer(zmq.REQ) as second:
                second.connect(endpoint)
                second.send(b"q2")
                with trio.fail_after(10):
                    assert await rep.recv() == b"q2"
                link.events_now = real
                with trio.fail_after(10):
                    await rep.send(b"r2")
                assert second.poll(5_000), "the answer went to the gone pipe"
                assert second.recv() == b"r2"
        finally:
            link.events_now = real


async def test_a_request_read_before_the_monitor_tells_of_its_peer_is_answered():
    # The same, when the data descriptor is handled before the monitor's:
    # the new requester's message could be read through the gone pipe
    # before the link knew of a new peer at all.
    async with rep_whose_requester_left() as (rep, endpoint, link):
        link.reactor.unregister(link.mfd)  # the monitor's descriptor is not looked at
        try:
            with zmq_peer(zmq.REQ) as second:
                second.connect(endpoint)
                second.send(b"q2")
                with trio.fail_after(10):
                    assert await rep.recv() == b"q2"
                    await rep.send(b"r2")
                assert second.poll(5_000), "the answer went to the gone pipe"
                assert second.recv() == b"r2"
        finally:
            link.reactor.register(link.mfd, link._on_monitor)
