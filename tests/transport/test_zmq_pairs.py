"""Every pair over tcp://, with a plain pyzmq program on the other end, both ways round.

Ours binds and theirs connects, and the reverse; PUSH to PULL, PULL from
PUSH, PAIR with PAIR, our REQ with their REP (and a ROUTER broker), their
REQ (with and without REQ_CORRELATE and REQ_RELAXED) with our REP.  Each
peer runs in its own process.  Messages mix one frame and several, so
that multipart is kept whole on the wire both ways.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import pytest
import trio
from helpers import seam
from zmq_helpers import LOOPBACK, attached, peer, zsocket

from shmsock import PAIR, PULL, PUSH, REP, REQ

pytestmark = pytest.mark.timeout(60)

BIND = pytest.mark.parametrize("ours_bind", [True, False], ids=["ours-binds", "theirs-binds"])


def messages(n: int, tag: bytes = b"m") -> list[list[bytes]]:
    """One frame, mostly; every fifth message three frames, one of them empty."""
    return [[tag + b"%d" % i] if i % 5 else [tag + b"%d" % i, b"", b"tail"] for i in range(n)]


@BIND
async def test_our_push_to_their_pull(ours_bind):
    sent = messages(200)
    async with (
        zsocket(PUSH) as push,
        attached(push, ours_bind, "sink", "PULL", len(sent)) as theirs,
    ):
        for frames in sent:
            await push.send_multipart(frames)
        assert await theirs.expect("got") == sent
        theirs.send("exit")


@BIND
async def test_their_push_to_our_pull(ours_bind):
    sent = messages(200)
    async with zsocket(PULL) as pull, attached(pull, ours_bind, "source", "PUSH", sent) as theirs:
        got = [await pull.recv_multipart() for _ in sent]
        assert got == sent
        await theirs.expect("sent")
        theirs.send("exit")


@BIND
async def test_our_pair_with_their_pair(ours_bind):
    async with zsocket(PAIR) as pair, attached(pair, ours_bind, "echo", "PAIR") as theirs:
        for frames in messages(50):
            await pair.send_multipart(frames)
            assert await pair.recv_multipart() == [b"re:" + f for f in frames]
        # several in flight at once
        batch = messages(100, b"w")
        for frames in batch:
            await pair.send_multipart(frames)
        for frames in batch:
            assert await pair.recv_multipart() == [b"re:" + f for f in frames]
        theirs.send("exit")


@BIND
@pytest.mark.parametrize("kind", ["REP", "ROUTER"])
async def test_our_req_with_their_rep_or_router(ours_bind, kind):
    async with zsocket(REQ) as req, attached(req, ours_bind, "echo", kind) as theirs:
        for frames in messages(60):
            await req.send_multipart(frames)
            assert await req.recv_multipart() == [b"re:" + f for f in frames]
        theirs.send("exit")


REQ_OPTIONS = [
    pytest.param({}, id="plain"),
    pytest.param({"REQ_CORRELATE": 1}, id="correlate"),
    pytest.param({"REQ_RELAXED": 1}, id="relaxed"),
    pytest.param({"REQ_CORRELATE": 1, "REQ_RELAXED": 1}, id="correlate-relaxed"),
]


async def serve(rep, count: int) -> None:
    for _ in range(count):
        frames = await rep.recv_multipart()
        await rep.send_multipart([b"re:" + f for f in frames])


@BIND
@pytest.mark.parametrize("options", REQ_OPTIONS)
async def test_their_req_with_our_rep(ours_bind, options):
    count = 30
    async with zsocket(REP) as rep, attached(rep, ours_bind, "requester", count, options) as theirs:
        await serve(rep, count)
        replies = await theirs.expect("replies")
        expect = [[b"re:q%d" % i, b"re:part2"] if i % 3 == 2 else [b"re:q%d" % i]
                      for i in range(count)]  # fmt: skip
        assert replies == expect
        theirs.send("exit")


async def test_a_late_reply_to_an_abandoned_request_is_not_taken_for_the_next():
    # Their REQ_RELAXED + REQ_CORRELATE gives up on "first" and asks "second";
    # our REP answers "first" late (it must: REP answers in turn), then
    # "second".  libzmq's REQ sees the request id of the late answer and
    # drops it: our REP echoed the envelope it came with.
    async with zsocket(REP) as rep:
        ep = rep.bind(LOOPBACK)
        options = {"REQ_RELAXED": 1, "REQ_CORRELATE": 1}
        async with peer("stubborn_requester", ep, False, options) as p:
            assert await rep.recv() == b"first"
            p.send("resend")
            await p.expect("resent")
            await rep.send(b"re:first")
            assert await rep.recv() == b"second"
            await rep.send(b"re:second")
            assert await p.expect("reply") == [b"re:second"]
            p.send("exit")


async def test_ours_on_both_ends():
    async with zsocket(PULL) as pull, zsocket(PUSH) as push:
        push.connect(pull.bind(LOOPBACK))
        for frames in messages(100):
            await push.send_multipart(frames)
        assert [await pull.recv_multipart() for _ in range(100)] == messages(100)
    async with zsocket(REP) as rep, zsocket(REQ) as req:
        req.connect(rep.bind(LOOPBACK))
        for frames in messages(20):
            await req.send_multipart(frames)
            assert await rep.recv_multipart() == frames
            await rep.send_multipart(frames[::-1])
            assert await req.recv_multipart() == frames[::-1]
    async with zsocket(PAIR) as a, zsocket(PAIR) as b:
        b.connect(a.bind(LOOPBACK))
        await a.send(b"ping")
        assert await b.recv() == b"ping"
        await b.send(b"pong")
        assert await a.recv() == b"pong"


@pytest.mark.parametrize("where", ["ipv6", "ipc"])
async def test_ipv6_loopback_and_ipc(where):
    if where == "ipv6":
        endpoint = "tcp://[::1]:0"
    else:
        endpoint = f"ipc://{tempfile.gettempdir()}/shmsock-zmq-{os.getpid()}-{id(where)}"
    sent = messages(50)
    async with zsocket(PULL) as pull:
        ep = pull.bind(endpoint)
        assert ep.startswith("tcp://[::1]:" if where == "ipv6" else endpoint)
        async with peer("source", ep, False, "PUSH", sent) as theirs:
            got = [await pull.recv_multipart() for _ in sent]
            assert got == sent
            theirs.send("exit")


async def test_batches_both_ways():
    async with zsocket(PULL) as pull, zsocket(PUSH, sndhwm=50) as push:
        push.connect(pull.bind(LOOPBACK))
        sent = [b"b%d" % i for i in range(2000)]
        got: list[bytes] = []

        async def receive() -> None:
            while len(got) < len(sent):
                got.extend(await pull.recv_many(100))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            for i in range(0, len(sent), 500):
                await push.send_many(sent[i : i + 500])  # more than the HWM at once
        assert got == sent


async def test_16_mib_messages_both_ways():
    sizes = [16 << 20, 1, 16 << 20]
    async with zsocket(PULL) as pull, peer("big_source", LOOPBACK, True, sizes) as theirs:
        pull.connect(theirs.endpoint)
        got = [await pull.recv() for _ in sizes]
        digests = await theirs.expect("sent")
        assert [[(len(m), hashlib.sha256(m).hexdigest())] for m in got] == digests
        theirs.send("exit")
    big = os.urandom(16 << 20)
    frames = [big, b"", big[::-1]]
    async with zsocket(PUSH) as push, peer("sink", LOOPBACK, True, "PULL", 2, None, True) as theirs:
        push.connect(theirs.endpoint)
        await push.send(big)
        await push.send_multipart(frames)
        got = await theirs.expect("got")
        view = [[(len(f), hashlib.sha256(f).hexdigest()) for f in m] for m in ([big], frames)]
        assert got == view
        theirs.send("exit")


async def test_a_message_over_max_msg_size_is_dropped_and_counted():
    async with zsocket(PULL, max_msg_size=1000) as pull:
        endpoint = pull.bind(LOOPBACK)
        sent = [[b"small"], [b"x" * 600, b"y" * 600], [b"after"]]  # 1200 bytes over two frames
        async with peer("source", endpoint, False, "PUSH", sent) as theirs:
            assert await pull.recv() == b"small"
            assert await pull.recv() == b"after"
            [st] = seam.stats(pull).values()
            assert st.corrupt == 1 and st.messages_received == 2
            theirs.send("exit")
