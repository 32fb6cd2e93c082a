"""``shmsock.proxy``: the rules of ``shmsock/_proxy.py``, in one process.

The broker with peers in other processes, one of them killed mid-stream,
is in ``tests/robustness/test_router_procs.py``.
"""

from __future__ import annotations

import os
import random

import pytest
import trio
import trio.testing
from helpers.conformance import SCHEMES, wait_peers

import shmsock
from shmsock import DEALER, PAIR, PULL, PUSH, REP, REQ, ROUTER


@pytest.fixture(params=SCHEMES)
def scheme(request):
    return request.param


def name(scheme: str, what: str) -> str:
    where = f"px-{what}-{os.getpid()}-{random.randrange(1 << 30)}"
    if scheme == "tcp":  # libzmq's transport, by a name both ends know before binding
        return f"ipc:///tmp/shmsock-{where}"
    return f"{scheme}://{where}"


async def rep_worker(endpoint: str, tag: bytes, *, task_status=trio.TASK_STATUS_IGNORED):
    async with shmsock.socket(REP) as rep:
        rep.connect(endpoint)
        task_status.started()
        while True:
            request = await rep.recv_multipart()
            await rep.send_multipart([tag, *request])


async def test_a_request_reply_broker(scheme):
    front, back = name(scheme, "f"), name(scheme, "b")
    async with (
        shmsock.socket(ROUTER) as frontend,
        shmsock.socket(DEALER) as backend,
        trio.open_nursery() as nursery,
    ):
        frontend.bind(front)
        backend.bind(back)
        nursery.start_soon(shmsock.proxy, frontend, backend)
        for tag in (b"w1", b"w2"):
            await nursery.start(rep_worker, back, tag)
        # libzmq's bound link is one pipe for all its peers (it spreads inside it).
        local = scheme != "tcp"
        await wait_peers(backend, 2 if local else 1)

        async def client(n: int) -> None:
            async with shmsock.socket(REQ) as req:
                req.connect(front)
                for i in range(50):
                    await req.send_multipart([b"c%d" % n, b"%d" % i])
                    tag, who, what = await req.recv_multipart()
                    assert (who, what) == (b"c%d" % n, b"%d" % i)
                    served[tag] += 1

        served = {b"w1": 0, b"w2": 0}
        async with trio.open_nursery() as clients:
            for n in range(4):
                clients.start_soon(client, n)
        assert sum(served.values()) == 200
        if local:  # (libzmq's second connection may come after the work is done)
            assert served[b"w1"] and served[b"w2"]  # the DEALER spread the work
        nursery.cancel_scope.cancel()


async def test_capture_gets_a_copy_of_every_message_both_ways(scheme):
    front, back = name(scheme, "f"), name(scheme, "b")
    async with (
        shmsock.socket(ROUTER) as frontend,
        shmsock.socket(DEALER) as backend,
        shmsock.socket(PAIR) as capture,
        shmsock.socket(PAIR) as tap,
        shmsock.socket(DEALER, routing_id=b"client") as client,
        trio.open_nursery() as nursery,
    ):
        frontend.bind(front)
        backend.bind(back)
        cap = name(scheme, "c")
        capture.bind(cap)
        tap.connect(cap)
        await nursery.start(rep_worker, back, b"w")
        client.connect(front)
        nursery.start_soon(shmsock.proxy, frontend, backend, capture)
        await client.send_multipart([b"", b"ask"])
        assert await client.recv_multipart() == [b"", b"w", b"ask"]
        assert await tap.recv_multipart() == [b"client", b"", b"ask"]
        assert await tap.recv_multipart() == [b"client", b"", b"w", b"ask"]
        nursery.cancel_scope.cancel()


async def test_cancelled_at_random_points_it_loses_and_duplicates_nothing(scheme):
    # Producers and a consumer run throughout; the proxy is started and
    # cancelled over and over, at random points.  Every message must reach
    # the consumer exactly once, in each producer's order.
    rnd = random.Random(20)
    front, back = name(scheme, "f"), name(scheme, "b")
    count = 600
    async with (
        shmsock.socket(ROUTER, ring_size=4096) as frontend,
        shmsock.socket(DEALER, ring_size=4096) as backend,
        shmsock.socket(DEALER, routing_id=b"sink", ring_size=4096) as sink,
    ):
        frontend.bind(front)
        backend.bind(back)
        sink.connect(back)
        producers = [shmsock.socket(DEALER, routing_id=b"p%d" % n) for n in range(3)]
        for p in producers:
            p.connect(front)
        got: dict[bytes, list[bytes]] = {}

        async def produce(p: shmsock.Socket) -> None:
            for i in range(count):
                await p.send_multipart([b"%d" % i, bytes(rnd.randrange(300))])

        async def consume() -> None:
            for _ in range(count * len(producers)):
                rid, i, _body = await sink.recv_multipart()
                got.setdefault(rid, []).append(i)
                if rnd.random() < 0.05:
                    await trio.sleep(0.001)  # let the rings fill now and then

        async with trio.open_nursery() as nursery:
            for p in producers:
                nursery.start_soon(produce, p)
            nursery.start_soon(consume)
            with trio.fail_after(60):
                while sum(map(len, got.values())) < count * len(producers):
                    with trio.move_on_after(rnd.random() * 0.003):
                        await shmsock.proxy(frontend, backend)
        for p in producers:
            await p.aclose()
        assert got == {b"p%d" % n: [b"%d" % i for i in range(count)] for n in range(3)}


@pytest.mark.parametrize("scheme", ["shm", "inproc"])  # a ring to fill (libzmq has kernel buffers)
async def test_a_message_that_meets_a_full_receiver_stays_with_its_sender(scheme):
    front, back = name(scheme, "f"), name(scheme, "b")
    async with (
        shmsock.socket(PULL) as frontend,
        shmsock.socket(PUSH, ring_size=4096) as backend,
        shmsock.socket(PUSH) as source,
        shmsock.socket(PULL) as sink,
    ):
        frontend.bind(front)
        backend.bind(back)
        source.connect(front)
        sink.connect(back)
        await wait_peers(backend, 1)
        for i in range(100):
            await source.send(b"%d" % i + bytes(200))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shmsock.proxy, frontend, backend)  # a one-way streamer
            # Once every task waits, the proxy waits for room: the sink is full.
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        forwarded = []
        while True:
            try:
                forwarded.append(sink.recv_nowait())
            except trio.WouldBlock:
                break
        assert 0 < len(forwarded) < 100
        left = [await frontend.recv() for _ in range(100 - len(forwarded))]
        assert forwarded + left == [b"%d" % i + bytes(200) for i in range(100)]


async def test_replies_to_departed_clients_are_dropped_and_counted(scheme):
    front, back = name(scheme, "f"), name(scheme, "b")
    async with (
        shmsock.socket(ROUTER) as frontend,
        shmsock.socket(DEALER) as backend,
        shmsock.socket(DEALER) as worker,
        shmsock.socket(DEALER, routing_id=b"stays") as stays,
        trio.open_nursery() as nursery,
    ):
        frontend.bind(front)
        backend.bind(back)
        worker.connect(back)
        stays.connect(front)
        nursery.start_soon(shmsock.proxy, frontend, backend)
        async with shmsock.socket(DEALER, routing_id=b"leaves") as leaves:
            leaves.connect(front)
            await leaves.send(b"ask")
            request = await worker.recv_multipart()
        assert request == [b"leaves", b"ask"]
        await worker.send_multipart([b"leaves", b"too late"])
        await stays.send(b"ask")
        assert await worker.recv_multipart() == [b"stays", b"ask"]
        await worker.send_multipart([b"stays", b"answer"])
        assert await stays.recv() == b"answer"
        if scheme == "tcp":
            # libzmq learns of the departure in its own thread: a reply that
            # comes first goes to the departing pipe, and libzmq drops it
            # uncounted (the rule of ROUTER_MANDATORY over tcp://).
            assert frontend.unroutable in (0, 1)
        else:
            assert frontend.unroutable == 1
        nursery.cancel_scope.cancel()


async def test_what_cannot_be_proxied_is_refused_at_once():
    async with (
        shmsock.socket(PUSH) as push,
        shmsock.socket(PUSH) as push2,
        shmsock.socket(PULL) as pull,
        shmsock.socket(DEALER) as dealer,
    ):
        with pytest.raises(ValueError, match="no direction"):
            await shmsock.proxy(push, push2)  # neither receives
        with pytest.raises(ValueError, match="cannot send"):
            await shmsock.proxy(dealer, push, pull)
        with pytest.raises(ValueError, match="distinct"):
            await shmsock.proxy(dealer, dealer)
