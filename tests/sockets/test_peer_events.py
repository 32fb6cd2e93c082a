"""Peer events (``Socket.peer_events``): the rules of ``shmsock/_peerevents.py``.

A death across processes, known at once, is in
``tests/robustness/test_router_procs.py``.
"""

from __future__ import annotations

import os
import random

import pytest
import trio
import trio.testing
from helpers.conformance import wait_peers

import shmsock
from shmsock import DEALER, PULL, PUSH, ROUTER, PeerEventKind

CONNECTED, DEPARTED = PeerEventKind.CONNECTED, PeerEventKind.DEPARTED


# The rules of shmsock's own transports: routing ids in the handshake, refusals,
# per-peer rings.  Over libzmq (tcp://, ipc://) its rules apply: test_router_zmq.py.
@pytest.fixture(params=["shm", "inproc"])
def endpoint(request):
    return f"{request.param}://pe-{os.getpid()}-{random.randrange(1 << 30)}"


async def next_event(events):
    with trio.fail_after(10):
        return await events.__anext__()


async def test_connect_and_depart_with_the_routing_id_and_endpoint(endpoint):
    async with shmsock.socket(ROUTER) as router:
        router.bind(endpoint)
        events = router.peer_events()
        named = shmsock.socket(DEALER, routing_id=b"named")
        named.connect(endpoint)
        e = await next_event(events)
        assert (e.kind, e.endpoint, e.routing_id, e.peer_type) == (
            CONNECTED,
            endpoint,
            b"named",
            DEALER,
        )
        assert e.peer_pid == os.getpid()
        anonymous = shmsock.socket(DEALER)
        anonymous.connect(endpoint)
        e = await next_event(events)
        assert e.kind == CONNECTED and e.routing_id in router.peer_ids() and e.routing_id[0] == 0
        made_up = e.routing_id
        await named.aclose()
        e = await next_event(events)
        assert (e.kind, e.routing_id) == (DEPARTED, b"named")
        await anonymous.aclose()
        e = await next_event(events)
        assert (e.kind, e.routing_id) == (DEPARTED, made_up)


async def test_a_new_iterator_starts_with_the_peers_attached_now(endpoint):
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH, routing_id=b"p") as push:
        pull.bind(endpoint)
        push.connect(endpoint)
        await wait_peers(pull, 1)
        events = pull.peer_events()
        e = events.receive_nowait()
        # Not a ROUTER: the id the peer stated, if any.
        assert (e.kind, e.routing_id, e.peer_type) == (CONNECTED, b"p", PUSH)
        with pytest.raises(trio.WouldBlock):
            events.receive_nowait()


async def test_unbind_and_disconnect_make_departed_events(endpoint):
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind(endpoint)
        push.connect(endpoint)
        await wait_peers(pull, 1)
        await wait_peers(push, 1)
        pulls, pushes = pull.peer_events(), push.peer_events()
        assert pulls.receive_nowait().kind == CONNECTED
        assert pushes.receive_nowait().kind == CONNECTED
        pull.unbind(endpoint)
        assert (await next_event(pulls)).kind == DEPARTED
        assert (await next_event(pushes)).kind == DEPARTED  # the peer saw it too


async def test_unread_events_are_bounded_and_the_oldest_dropped_are_counted(endpoint):
    async with shmsock.socket(PULL) as pull:
        pull.bind(endpoint)
        events = pull.peer_events(max_events=3)
        watch = pull.peer_events()  # read as they come: says when each has happened
        for _ in range(4):
            async with shmsock.socket(PUSH) as push:
                push.connect(endpoint)
                assert (await next_event(watch)).kind == CONNECTED
            assert (await next_event(watch)).kind == DEPARTED
        assert watch.missed == 0
        # 8 events came, 3 are kept: the last three.
        kept = [events.receive_nowait().kind for _ in range(3)]
        assert kept == [DEPARTED, CONNECTED, DEPARTED]
        assert events.missed == 5
        with pytest.raises(ValueError, match="max_events"):
            pull.peer_events(max_events=0)


async def test_the_iteration_ends_after_what_it_holds_when_the_socket_closes(endpoint):
    pull = shmsock.socket(PULL)
    pull.bind(endpoint)
    events = pull.peer_events()
    async with shmsock.socket(PUSH) as push:
        push.connect(endpoint)
        await wait_peers(pull, 1)
        await pull.aclose()
    got = [e.kind async for e in events]
    assert got == [CONNECTED]
    with pytest.raises(trio.ClosedResourceError):
        pull.peer_events()


async def test_a_closed_iterator_keeps_nothing_and_wakes_its_reader(endpoint):
    async with shmsock.socket(PULL) as pull:
        pull.bind(endpoint)
        async with pull.peer_events() as events:

            async def reader() -> None:
                async for _ in events:
                    pytest.fail("no event was due")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await events.aclose()
        async with shmsock.socket(PUSH) as push:
            push.connect(endpoint)
            await wait_peers(pull, 1)
        with pytest.raises(trio.EndOfChannel):
            events.receive_nowait()


async def test_anext_is_a_checkpoint_and_a_cancelled_wait_takes_nothing(endpoint):
    async with shmsock.socket(PULL) as pull:
        pull.bind(endpoint)
        events = pull.peer_events()
        with trio.move_on_after(0.01) as cs:
            await events.__anext__()
        assert cs.cancelled_caught
        async with shmsock.socket(PUSH) as push:
            push.connect(endpoint)
            await wait_peers(pull, 1)
            with trio.testing.assert_checkpoints():
                assert (await events.__anext__()).kind == CONNECTED


async def test_each_iterator_gets_every_event(endpoint):
    async with shmsock.socket(PULL) as pull:
        pull.bind(endpoint)
        a, b = pull.peer_events(), pull.peer_events()
        async with shmsock.socket(PUSH) as push:
            push.connect(endpoint)
            assert (await next_event(a)).kind == CONNECTED
            assert (await next_event(b)).kind == CONNECTED
