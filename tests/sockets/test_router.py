"""DEALER and ROUTER through the public API, on every scheme.

Routing ids (asked for, made up, refused when taken, free again once their
peer departs), unknown ids, a full peer, libzmq's envelopes byte for byte
(REQ to ROUTER, DEALER to REP), and the routing options.  Cases across
processes are in ``tests/robustness/test_router_procs.py``.
"""

from __future__ import annotations

import logging
import os
import random
import struct

import pytest
import trio
from helpers.conformance import wait_peers

import shmsock
from shmsock import DEALER, REP, REQ, ROUTER


# The rules of shmsock's own transports: routing ids in the handshake, refusals,
# per-peer rings.  Over libzmq (tcp://, ipc://) its rules apply: test_router_zmq.py.
@pytest.fixture(params=["shm", "inproc"])
def endpoint(request):
    return f"{request.param}://rt-{os.getpid()}-{random.randrange(1 << 30)}"


async def test_a_router_answers_many_dealers_each_by_its_id(endpoint):
    async with shmsock.socket(ROUTER) as router:
        router.bind(endpoint)
        dealers = [shmsock.socket(DEALER, routing_id=b"d%d" % i) for i in range(8)]
        anonymous = shmsock.socket(DEALER)
        try:
            for d in [*dealers, anonymous]:
                d.connect(endpoint)
            await wait_peers(router, 9)
            everyone = [*dealers, anonymous]
            for n in range(20):
                for d in everyone:
                    await d.send_multipart([b"req", b"%d" % n])
            seen: dict[bytes, list[bytes]] = {}
            for _ in range(20 * len(everyone)):
                rid, verb, n = await router.recv_multipart()
                assert verb == b"req"
                seen.setdefault(rid, []).append(n)
                await router.send_multipart([rid, b"rep", n])
            assert set(seen) == {b"d%d" % i for i in range(8)} | {
                rid for rid in seen if rid[0] == 0
            }
            assert len(seen) == 9
            for got in seen.values():
                assert got == [b"%d" % n for n in range(20)]  # each peer's order is kept
            for d in everyone:
                assert [await d.recv_multipart() for _ in range(20)] == [
                    [b"rep", b"%d" % n] for n in range(20)
                ]
                with pytest.raises(trio.WouldBlock):
                    d.recv_nowait()  # nobody got another's reply
        finally:
            for d in [*dealers, anonymous]:
                await d.aclose()


async def test_a_dealer_round_robins_and_fair_queues(endpoint):
    async with shmsock.socket(DEALER) as dealer:
        dealer.bind(endpoint)
        routers = [shmsock.socket(ROUTER) for _ in range(3)]
        try:
            for r in routers:
                r.connect(endpoint)
            await wait_peers(dealer, 3)
            for n in range(9):
                await dealer.send(b"%d" % n)
            got = [[(await r.recv_multipart())[1] for _ in range(3)] for r in routers]
            assert sorted(m for g in got for m in g) == sorted(b"%d" % n for n in range(9))
            assert all(len(g) == 3 for g in got)  # three each: round-robin
            for r in routers:
                (rid,) = r.peer_ids()
                await r.send_multipart([rid, b"from", b"%d" % routers.index(r)])
            replies = sorted([tuple(await dealer.recv_multipart()) for _ in range(3)])
            assert replies == [(b"from", b"0"), (b"from", b"1"), (b"from", b"2")]
        finally:
            for r in routers:
                await r.aclose()


async def test_a_duplicate_routing_id_is_refused_on_the_peer_that_asked(endpoint):
    async with (
        shmsock.socket(ROUTER) as router,
        shmsock.socket(DEALER, routing_id=b"worker") as first,
        shmsock.socket(DEALER, routing_id=b"worker") as second,
    ):
        router.bind(endpoint)
        first.connect(endpoint)
        await wait_peers(router, 1)
        second.connect(endpoint)
        with trio.fail_after(10), pytest.raises(shmsock.RoutingIdInUse, match="routing id"):
            await second.send(b"never")
        with pytest.raises(shmsock.RoutingIdInUse):
            second.recv_nowait()
        assert router.peer_ids() == [b"worker"]
        await first.send(b"still here")
        assert await router.recv_multipart() == [b"worker", b"still here"]


async def test_a_connecting_router_hangs_up_on_a_binder_whose_id_it_has(endpoint, caplog):
    caplog.set_level(logging.INFO, "shmsock")
    other = endpoint + "-2"
    async with (
        shmsock.socket(ROUTER) as router,
        shmsock.socket(DEALER, routing_id=b"same") as first,
        shmsock.socket(DEALER, routing_id=b"same") as second,
    ):
        first.bind(endpoint)
        second.bind(other)
        router.connect(endpoint)
        await wait_peers(router, 1)
        router.connect(other)
        await first.send(b"one")
        assert await router.recv_multipart() == [b"same", b"one"]
        with trio.fail_after(10):
            while not any("routing id" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                await trio.sleep(0.01)  # the binder's log line (no event to wait on)
        assert router.peer_ids() == [b"same"]
        assert router.peer_count == 1


async def test_a_departed_peers_id_may_be_had_again_at_once(endpoint):
    async with shmsock.socket(ROUTER) as router:
        router.bind(endpoint)
        for round_ in range(3):
            async with shmsock.socket(DEALER, routing_id=b"restarting") as d:
                d.connect(endpoint)
                await d.send(b"%d" % round_)
                assert await router.recv_multipart() == [b"restarting", b"%d" % round_]
                await router.send_multipart([b"restarting", b"ack"])
                assert await d.recv() == b"ack"


async def test_an_unknown_id_raises_and_with_mandatory_off_is_dropped_and_counted(endpoint):
    async with shmsock.socket(ROUTER) as router, shmsock.socket(DEALER, routing_id=b"d") as d:
        router.bind(endpoint)
        d.connect(endpoint)
        await wait_peers(router, 1)
        with pytest.raises(shmsock.HostUnreachable, match="b'ghost'") as info:
            await router.send_multipart([b"ghost", b"x"])
        assert info.value.routing_id == b"ghost"
        with pytest.raises(shmsock.HostUnreachable):
            router.send_multipart_nowait([b"ghost", b"x"])
        router.router_mandatory = False
        with trio.testing.assert_checkpoints():
            await router.send_multipart([b"ghost", b"x"])
        router.send_multipart_nowait([b"ghost", b"y"])
        assert router.unroutable == 2
        await router.send_multipart([b"d", b"real"])
        assert await d.recv() == b"real"
        with pytest.raises(ValueError, match="two frames"):
            await router.send(b"no id")


async def test_a_full_peer_blocks_only_sends_to_it(endpoint):
    async with (
        shmsock.socket(ROUTER, ring_size=4096) as router,
        shmsock.socket(DEALER, routing_id=b"slow") as slow,
        shmsock.socket(DEALER, routing_id=b"fast") as fast,
    ):
        router.bind(endpoint)
        slow.connect(endpoint)
        fast.connect(endpoint)
        await wait_peers(router, 2)
        sent = 0
        while True:
            try:
                router.send_multipart_nowait([b"slow", bytes(500)])
            except trio.WouldBlock:
                break
            sent += 1
        assert sent > 0
        router.send_multipart_nowait([b"fast", b"unhindered"])
        assert await fast.recv() == b"unhindered"
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def blocked() -> None:
                await router.send_multipart([b"slow", b"last"])
                done.set()

            nursery.start_soon(blocked)
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            for _ in range(sent):
                assert await slow.recv() == bytes(500)
            await done.wait()
        assert await slow.recv() == b"last"


async def test_a_cancelled_send_to_a_full_peer_sends_nothing(endpoint):
    async with (
        shmsock.socket(ROUTER, ring_size=4096) as router,
        shmsock.socket(DEALER, routing_id=b"p") as peer,
    ):
        router.bind(endpoint)
        peer.connect(endpoint)
        await wait_peers(router, 1)
        n = 0
        while True:
            try:
                router.send_multipart_nowait([b"p", b"%d" % n])
            except trio.WouldBlock:
                break
            n += 1
        with trio.move_on_after(0.05) as cs:
            await router.send_multipart([b"p", b"cancelled"])
        assert cs.cancelled_caught
        assert [await peer.recv() for _ in range(n)] == [b"%d" % i for i in range(n)]
        with pytest.raises(trio.WouldBlock):
            peer.recv_nowait()


async def test_a_peer_departing_while_a_send_waits_for_it_is_unreachable(endpoint):
    async with shmsock.socket(ROUTER, ring_size=4096) as router:
        router.bind(endpoint)
        peer = shmsock.socket(DEALER, routing_id=b"p", linger=0)
        peer.connect(endpoint)
        await wait_peers(router, 1)
        while True:
            try:
                router.send_multipart_nowait([b"p", bytes(100)])
            except trio.WouldBlock:
                break
        async with trio.open_nursery() as nursery:

            async def blocked() -> None:
                with pytest.raises(shmsock.HostUnreachable):
                    await router.send_multipart([b"p", b"x"])

            nursery.start_soon(blocked)
            await trio.testing.wait_all_tasks_blocked()
            await peer.aclose()


# -- libzmq's envelopes, byte for byte ---------------------------------------------------


async def test_req_to_router_envelope_is_libzmqs(endpoint):
    async with shmsock.socket(ROUTER) as router, shmsock.socket(REQ, routing_id=b"client") as req:
        router.bind(endpoint)
        req.connect(endpoint)
        ids = set()
        for n in (1, 2, 3):
            await req.send_multipart([b"ask", b"%d" % n])
            frames = await router.recv_multipart()
            # [routing id, request id (4 bytes, native order), b"", body...]:
            # what a libzmq ROUTER gets from a REQ with REQ_CORRELATE.
            (request_id,) = struct.unpack("=I", frames[1])
            assert frames == [b"client", struct.pack("=I", request_id), b"", b"ask", b"%d" % n]
            assert request_id not in ids
            ids.add(request_id)
            if n == 2:
                await router.send_multipart([b"client", b"", b"plain form"])
                assert await req.recv() == b"plain form"
            else:
                await router.send_multipart([*frames[:3], b"answer", b"%d" % n])
                assert await req.recv_multipart() == [b"answer", b"%d" % n]
        with pytest.raises(ValueError, match="is a REQ"):
            await router.send_multipart([b"client", b"no envelope"])


async def test_a_late_reply_through_a_router_is_dropped_by_the_req(endpoint):
    async with shmsock.socket(ROUTER) as router, shmsock.socket(REQ) as req:
        router.bind(endpoint)
        req.connect(endpoint)
        await req.send(b"first")
        first = await router.recv_multipart()
        with trio.move_on_after(0.01):
            await req.recv()  # abandoned: its reply must not answer the next request
        await req.send(b"second")
        second = await router.recv_multipart()
        await router.send_multipart([*first[:3], b"late"])
        await router.send_multipart([*second[:3], b"right"])
        assert await req.recv() == b"right"


async def test_dealer_to_rep_envelope_is_libzmqs(endpoint):
    async with shmsock.socket(REP) as rep, shmsock.socket(DEALER) as dealer:
        rep.bind(endpoint)
        dealer.connect(endpoint)
        # The application writes the delimiter; everything before it comes back.
        await dealer.send_multipart([b"hop1", b"hop2", b"", b"ask", b"more"])
        assert await rep.recv_multipart() == [b"ask", b"more"]
        await rep.send(b"answer")
        assert await dealer.recv_multipart() == [b"hop1", b"hop2", b"", b"answer"]
        await dealer.send(b"not a request")  # no delimiter: dropped, as by libzmq
        await dealer.send_multipart([b"", b"next"])
        assert await rep.recv() == b"next"
        await rep.send(b"ok")
        assert await dealer.recv_multipart() == [b"", b"ok"]


async def test_a_rep_serves_reqs_and_dealers_at_once(endpoint):
    async with (
        shmsock.socket(REP) as rep,
        shmsock.socket(DEALER) as dealer,
        shmsock.socket(REQ) as req,
    ):
        rep.bind(endpoint)
        dealer.connect(endpoint)
        req.connect(endpoint)
        await dealer.send_multipart([b"", b"from dealer"])
        await req.send(b"from req")
        for _ in range(2):
            ask = await rep.recv()
            await rep.send(ask.upper())
        assert await dealer.recv_multipart() == [b"", b"FROM DEALER"]
        assert await req.recv() == b"FROM REQ"


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (b"", ValueError, "1 to 255 bytes"),
        (b"x" * 256, ValueError, "1 to 255 bytes"),
        (b"\x00abc", ValueError, "zero byte"),
        ("text", TypeError, "bytes or None"),
        (5, TypeError, "bytes or None"),
    ],
)
def test_a_bad_routing_id_is_refused(value, error, words):
    with pytest.raises(error, match=words):
        shmsock.socket(DEALER, routing_id=value)
    sock = shmsock.socket(DEALER)
    with pytest.raises(error, match=words):
        sock.routing_id = value


async def test_routing_id_is_fixed_once_attached_and_router_mandatory_is_not(endpoint):
    async with shmsock.socket(DEALER) as dealer, shmsock.socket(ROUTER) as router:
        dealer.setsockopt(shmsock.ROUTING_ID, bytearray(b"me"))
        assert dealer.routing_id == b"me" == dealer.getsockopt("routing_id")
        router.bind(endpoint)
        dealer.connect(endpoint)
        with pytest.raises(shmsock.StateError, match="routing_id"):
            dealer.routing_id = b"other"
        assert router.router_mandatory is True
        router.setsockopt(shmsock.ROUTER_MANDATORY, False)
        assert router.router_mandatory is False
        with pytest.raises(TypeError):
            router.router_mandatory = 0
        with pytest.raises(ValueError, match="called routing_id"):
            dealer.setsockopt("identity", b"x")


async def test_incompatible_types_are_refused(endpoint):
    async with shmsock.socket(ROUTER) as router, shmsock.socket(shmsock.PUSH) as push:
        router.bind(endpoint)
        push.connect(endpoint)
        with trio.fail_after(10), pytest.raises(shmsock.IncompatiblePeer):
            await push.send(b"x")
