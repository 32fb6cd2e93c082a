"""DEALER and ROUTER over libzmq (``tcp://``), against plain pyzmq sockets.

Over ``tcp://`` and ``ipc://`` a shmsock ROUTER is a libzmq ROUTER: the
routing ids are libzmq's (``router.py`` rule 6), and the envelopes are what
any ZeroMQ program sends and expects, byte for byte.
"""

from __future__ import annotations

import pytest
import trio

import shmsock
from shmsock import DEALER, REP, REQ, ROUTER

zmq = pytest.importorskip("zmq")

TCP = "tcp://127.0.0.1:0"


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def plain(ctx, kind, endpoint, **opts):
    """A pyzmq socket connected to *endpoint*, with a receive timeout."""
    s = ctx.socket(kind)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.setsockopt(zmq.LINGER, 0)
    for name, value in opts.items():
        s.setsockopt(getattr(zmq, name), value)
    s.connect(endpoint)
    return s


async def in_thread(fn, *args):
    return await trio.to_thread.run_sync(fn, *args)


async def test_a_pyzmq_req_reaches_our_router_in_libzmqs_envelope(ctx):
    async with shmsock.socket(ROUTER) as router:
        endpoint = router.bind(TCP)
        req = plain(ctx, zmq.REQ, endpoint, ROUTING_ID=b"client")
        await in_thread(req.send, b"hello")
        with trio.fail_after(10):
            assert await router.recv_multipart() == [b"client", b"", b"hello"]
            await router.send_multipart([b"client", b"", b"world"])
        assert await in_thread(req.recv) == b"world"
        req.close()


async def test_our_dealers_reach_a_pyzmq_router_by_their_ids(ctx):
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.RCVTIMEO, 5000)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        async with (
            shmsock.socket(DEALER, routing_id=b"a") as a,
            shmsock.socket(DEALER, routing_id=b"b") as b,
        ):
            for d in (a, b):
                d.connect(f"tcp://127.0.0.1:{port}")
            with trio.fail_after(10):
                await a.send_multipart([b"", b"from a"])
                await b.send_multipart([b"", b"from b"])
            got = sorted([await in_thread(router.recv_multipart) for _ in range(2)])
            assert got == [[b"a", b"", b"from a"], [b"b", b"", b"from b"]]
            await in_thread(router.send_multipart, [b"b", b"", b"to b"])
            with trio.fail_after(10):
                assert await b.recv_multipart() == [b"", b"to b"]
    finally:
        router.close(0)


async def test_our_router_answers_many_pyzmq_dealers_each_by_its_id(ctx):
    async with shmsock.socket(ROUTER) as router:
        endpoint = router.bind(TCP)
        dealers = [plain(ctx, zmq.DEALER, endpoint, ROUTING_ID=b"d%d" % i) for i in range(5)]
        for i, d in enumerate(dealers):
            await in_thread(d.send_multipart, [b"q%d" % i])
        with trio.fail_after(10):
            got = sorted([await router.recv_multipart() for _ in dealers])
            assert got == [[b"d%d" % i, b"q%d" % i] for i in range(5)]
            for i in reversed(range(5)):
                await router.send_multipart([b"d%d" % i, b"a%d" % i])
        for i, d in enumerate(dealers):
            assert await in_thread(d.recv_multipart) == [b"a%d" % i]
            d.close()


async def test_an_unknown_id_raises_over_tcp_and_is_dropped_with_mandatory_off(ctx):
    async with shmsock.socket(ROUTER) as router:
        endpoint = router.bind(TCP)
        d = plain(ctx, zmq.DEALER, endpoint, ROUTING_ID=b"known")
        await in_thread(d.send, b"hi")
        with trio.fail_after(10):
            await router.recv_multipart()
        with pytest.raises(shmsock.HostUnreachable) as info:
            await router.send_multipart([b"nobody", b"x"])
        assert info.value.routing_id == b"nobody"
        router.router_mandatory = False
        await router.send_multipart([b"nobody", b"x"])  # dropped, as plain libzmq drops it
        await router.send_multipart([b"known", b"still here"])
        assert await in_thread(d.recv) == b"still here"
        d.close()


async def test_our_dealer_and_a_pyzmq_rep_need_the_empty_delimiter(ctx):
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.RCVTIMEO, 5000)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    try:
        async with shmsock.socket(DEALER) as dealer:
            dealer.connect(f"tcp://127.0.0.1:{port}")
            with trio.fail_after(10):
                await dealer.send_multipart([b"", b"question"])
            assert await in_thread(rep.recv) == b"question"
            await in_thread(rep.send, b"answer")
            with trio.fail_after(10):
                assert await dealer.recv_multipart() == [b"", b"answer"]
    finally:
        rep.close(0)


async def test_a_pyzmq_dealer_and_our_rep(ctx):
    async with shmsock.socket(REP) as rep:
        endpoint = rep.bind(TCP)
        d = plain(ctx, zmq.DEALER, endpoint)
        await in_thread(d.send_multipart, [b"", b"question"])
        with trio.fail_after(10):
            assert await rep.recv() == b"question"
            await rep.send(b"answer")
        assert await in_thread(d.recv_multipart) == [b"", b"answer"]
        d.close()


async def test_our_req_through_our_router_over_tcp():
    async with shmsock.socket(ROUTER) as router, shmsock.socket(REQ) as req:
        req.connect(router.bind(TCP))
        with trio.fail_after(10):
            await req.send(b"ping")
            rid, request_id, empty, body = await router.recv_multipart()
            assert (len(request_id), empty, body) == (4, b"", b"ping")  # as on shm://
            await router.send_multipart([rid, request_id, b"", b"pong"])
            assert await req.recv() == b"pong"


async def test_peer_events_over_tcp_say_when_the_endpoint_gains_and_loses_its_peers(ctx):
    async with shmsock.socket(ROUTER) as router:
        endpoint = router.bind(TCP)
        async with router.peer_events() as events:
            d = plain(ctx, zmq.DEALER, endpoint, ROUTING_ID=b"remote")
            with trio.fail_after(10):
                event = await events.__anext__()
            # libzmq's one link carries every peer of the endpoint: no id, no pid.
            assert (event.kind, event.endpoint, event.routing_id, event.peer_pid) == (
                shmsock.PeerEventKind.CONNECTED,
                endpoint,
                None,
                0,
            )
            d.close()
            with trio.fail_after(10):
                event = await events.__anext__()
            assert event.kind is shmsock.PeerEventKind.DEPARTED
