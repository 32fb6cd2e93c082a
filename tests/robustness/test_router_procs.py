"""DEALER, ROUTER and the proxy across real processes: many peers, hostile ids, deaths.

The single-process rules are in ``tests/sockets/test_router.py``,
``test_peer_events.py`` and ``test_proxy.py``; here the peers are other
OS processes, some SIGKILLed, some running a library modified to ask for
routing ids no honest socket may ask for.
"""

from __future__ import annotations

import os
import random

import trio
from helpers import peers, routerpeers
from helpers.conformance import wait_peers
from helpers.procs import forked, spawn

import shmsock
from shmsock import DEALER, REQ, ROUTER, PeerEventKind

DEPARTED = PeerEventKind.DEPARTED


def name(what: str) -> str:
    return f"shm://rp-{what}-{os.getpid()}-{random.randrange(1 << 30)}"


async def test_a_router_serves_many_dealer_processes_each_by_its_id():
    endpoint = name("many")
    count = 50
    async with shmsock.socket(ROUTER) as router:
        router.bind(endpoint)
        children = [
            spawn(routerpeers.dealer_client, endpoint, b"p%d" % i if i % 2 else None, count,
                  ctx=forked())
            for i in range(6)
        ]  # fmt: skip
        try:
            for child in children:
                await child.expect("connected")
            seen: dict[bytes, list[bytes]] = {}
            with trio.fail_after(30):
                for _ in range(6 * count):
                    rid, body = await router.recv_multipart()
                    seen.setdefault(rid, []).append(body)
                    await router.send_multipart([rid, b"%s:%s" % (rid.hex().encode(), body)])
            assert len(seen) == 6
            assert {rid for rid in seen if rid[0] != 0} == {b"p1", b"p3", b"p5"}
            for bodies in seen.values():
                assert bodies == [b"%d" % i for i in range(count)]  # each in its order, once
            replies = []
            for child in children:
                kind, got = await child.recv()
                assert kind == "replies"
                replies.append(got)
            # Each process got the answers to its own messages, and only those.
            for got in replies:
                tag = got[0].split(b":")[0]
                assert got == [b"%s:%d" % (tag, i) for i in range(count)]
            assert len({got[0].split(b":")[0] for got in replies}) == 6
        finally:
            for child in children:
                child.close()


async def test_forged_and_duplicate_ids_are_refused_on_the_asker_and_honest_peers_lose_nothing():
    endpoint = name("forge")
    async with shmsock.socket(ROUTER) as router:
        router.bind(endpoint)
        with (
            spawn(routerpeers.dealer_client, endpoint, None, 3, ctx=forked()) as anonymous,
            spawn(routerpeers.dealer_client, endpoint, b"honest", 3, ctx=forked()) as named,
        ):
            await anonymous.expect("connected")
            await named.expect("connected")
            got: dict[bytes, list[bytes]] = {}
            with trio.fail_after(30):
                received = 0
                while len(got) < 2:  # until each has been heard from
                    rid, body = await router.recv_multipart()
                    got.setdefault(rid, []).append(body)
                    received += 1
            made_up = next(rid for rid in got if rid != b"honest")
            assert made_up[0] == 0  # an id the ROUTER made up

            # A modified library asks for the made-up id (to take that peer's
            # replies), and another for the named peer's id.
            with (
                spawn(routerpeers.dealer_client, endpoint, made_up, 1, True, ctx=forked()) as f1,
                spawn(routerpeers.dealer_client, endpoint, b"honest", 1, ctx=forked()) as f2,
            ):
                await f1.expect("connected")
                await f2.expect("connected")
                kind, error, message = await f1.recv()
                assert (kind, error) == ("error", "ConnectionRefusedError")
                assert "routing id starts with a zero byte" in message
                kind, error, message = await f2.recv()
                assert (kind, error) == ("error", "RoutingIdInUse")
                assert "routing_id of its own" in message

            assert sorted(router.peer_ids()) == sorted([made_up, b"honest"])
            with trio.fail_after(30):
                for _ in range(6 - received):
                    rid, body = await router.recv_multipart()
                    got[rid].append(body)
            assert got == {made_up: [b"0", b"1", b"2"], b"honest": [b"0", b"1", b"2"]}
            for rid in (made_up, b"honest"):
                for body in got[rid]:
                    await router.send_multipart([rid, b"to " + rid + b" " + body])
            for child, rid in ((anonymous, made_up), (named, b"honest")):
                assert await child.recv() == (
                    "replies",
                    [b"to " + rid + b" %d" % i for i in range(3)],
                )


async def test_a_broker_goes_on_when_a_worker_and_a_client_are_killed_mid_stream():
    front, back = name("front"), name("back")
    async with (
        shmsock.socket(ROUTER) as frontend,
        shmsock.socket(DEALER) as backend,
        trio.open_nursery() as broker,
    ):
        frontend.bind(front)
        backend.bind(back)
        worker_events = backend.peer_events()
        client_events = frontend.peer_events()
        broker.start_soon(shmsock.proxy, frontend, backend)
        with (
            spawn(peers.rep_server, back, False, "a", ctx=forked()) as worker,
            spawn(peers.rep_hold, back, False, ctx=forked()) as holder,
            spawn(routerpeers.req_forever, front, ctx=forked()) as doomed,
        ):
            await worker.expect("ready")
            await holder.expect("ready")
            await doomed.expect("ready")
            await wait_peers(backend, 2)
            died = trio.Event()
            replies: dict[int, list[bytes]] = {}

            async def client(n: int) -> None:
                # The Guide's "lazy pirate": a request whose worker died is
                # abandoned (the REQ then drops any late reply) and sent again.
                async with shmsock.socket(REQ) as req:
                    req.connect(front)
                    got = replies[n] = []
                    for i in range(30):
                        body = b"c%d-%d" % (n, i)
                        while True:
                            await req.send(body)
                            watching = not died.is_set()
                            reply = None
                            async with trio.open_nursery() as waiting:

                                async def receive() -> None:
                                    nonlocal reply
                                    reply = await req.recv()
                                    waiting.cancel_scope.cancel()

                                async def abandon() -> None:
                                    await died.wait()
                                    waiting.cancel_scope.cancel()

                                waiting.start_soon(receive)
                                if watching:
                                    waiting.start_soon(abandon)
                            if reply is not None:
                                break
                        got.append(reply)

            with trio.fail_after(60):  # (a proxy that stopped would leave them waiting)
                async with trio.open_nursery() as clients:
                    for n in range(4):
                        clients.start_soon(client, n)
                    held = await holder.recv()  # the holder has a request and never answers
                    assert held.startswith((b"c", b"forever-"))
                    doomed.kill()  # a client, in the middle of its requests
                    holder.kill()  # a worker, holding one
                    with trio.fail_after(30):
                        async for event in worker_events:
                            if event.kind is DEPARTED:
                                assert event.peer_pid == holder.pid  # known at once, by whom
                                break
                        died.set()
                        async for event in client_events:
                            if event.kind is DEPARTED and event.peer_pid == doomed.pid:
                                break

            for n in range(4):  # every request answered once, in order, by the live worker
                assert replies[n] == [b"a:c%d-%d" % (n, i) for i in range(30)]
            assert not broker.cancel_scope.cancel_called  # the proxy never stopped
            broker.cancel_scope.cancel()
