"""XPUB and XSUB over tcp://: libzmq's own, talking with pyzmq in other processes.

Our XPUB over tcp:// is a libzmq XPUB (not verbose): it receives each
prefix's first subscription and last unsubscription among all its
subscribers, whatever transport they came by, as on shm://.  Our XSUB is a
libzmq XSUB: it sends every subscription upstream and an unsubscription
once its count falls to zero.  A forwarder (``shmsock.proxy(xsub, xpub)``)
bridges tcp:// and shm:// either way.  Over tcp:// a subscription reaches a
publisher some time after the connection (libzmq's slow joiner): the
publishers here send probes until the subscriber has one, and the tests
check that nothing after that is lost (see helpers.zmq_peers).
"""

from __future__ import annotations

import os

import pytest
import trio
from helpers import pubsubpeers
from helpers.procs import forked, spawn
from zmq_helpers import LOOPBACK, attached, peer

import shmsock
from shmsock import SUB, XPUB, XSUB

pytestmark = pytest.mark.timeout(60)

#: pyzmq publishers keep every message for a subscriber that is slow to read.
NO_HWM = {"SNDHWM": 0}


async def recv_until(sock: shmsock.Socket, want: set[bytes]) -> list[bytes]:
    """Receive until each of *want* came (an XPUB's subscriptions come in any order
    across its links); return everything received, in order."""
    got: list[bytes] = []
    with trio.fail_after(20):
        while not want <= set(got):
            got.append(await sock.recv())
    return got


async def test_our_xpub_hears_pyzmq_subscribers_once_per_prefix_and_filters_for_them():
    async with shmsock.socket(XPUB) as xpub:
        endpoint = xpub.bind(LOOPBACK)
        async with (
            peer("collecting_subscriber", endpoint, False, "SUB", [b"a", b"b"], 2) as s1,
            peer("collecting_subscriber", endpoint, False, "SUB", [b"a"], 1) as s2,
        ):
            # Three subscriptions, two prefixes: each is told once.
            assert sorted(await recv_until(xpub, {b"\x01a", b"\x01b"})) == [b"\x01a", b"\x01b"]
            with trio.fail_after(20):
                ready = set()
                while len(ready) < 2:
                    for t in (b"a", b"b", b"c"):
                        await xpub.send_multipart([t, b"probe"])
                    for name, s in (("s1", s1), ("s2", s2)):
                        if name not in ready and s.child.conn.poll():
                            await s.expect("flowing")
                            ready.add(name)
                    await trio.sleep(0.005)
            for i in range(200):
                for t in (b"a", b"b", b"c"):
                    await xpub.send_multipart([t, b"%d" % i])
            for t in (b"a", b"b"):
                await xpub.send_multipart([t, b"END"])
            got1, got2 = await s1.expect("got"), await s2.expect("got")
            assert got1 == [[t, b"%d" % i] for i in range(200) for t in (b"a", b"b")]
            assert got2 == [[b"a", b"%d" % i] for i in range(200)]
            assert [s.topics for s in xpub.subscribers()] == [(b"a", b"b")]
            # One leaves: b was only its own, a is still held by the other.
            s1.send("leave")
            with trio.fail_after(20):
                assert await xpub.recv() == b"\x00b"
            s2.send("leave")
            with trio.fail_after(20):
                assert await xpub.recv() == b"\x00a"
        # The pipe of the link has no subscription left.
        assert xpub.subscribers() == []


async def test_an_xpub_on_shm_and_tcp_tells_each_prefix_once_whatever_the_transport():
    name = f"shm://xpub-both-{os.getpid()}"
    async with shmsock.socket(XPUB) as xpub, shmsock.socket(SUB) as local:
        xpub.bind(name)
        endpoint = xpub.bind(LOOPBACK)
        local.subscribe(b"t")
        local.connect(name)
        with trio.fail_after(20):
            assert await xpub.recv() == b"\x01t"
        async with peer("collecting_subscriber", endpoint, False, "SUB", [b"t", b"u"], 1) as far:
            # t is held already (by the shm subscriber): only u is new.
            with trio.fail_after(20):
                assert await xpub.recv() == b"\x01u"
            local.unsubscribe(b"t")  # the tcp subscriber still holds it
            assert far.child.proc.is_alive()
        # The tcp subscriber's process is killed: its prefixes go with it.
        got = await recv_until(xpub, {b"\x00t", b"\x00u"})
        assert sorted(got) == [b"\x00t", b"\x00u"]


async def test_our_xsub_sends_counted_subscriptions_to_a_pyzmq_xpub():
    # A verbose pyzmq XPUB passes on every (un)subscription it gets.
    async with (
        shmsock.socket(XSUB) as xsub,
        attached(xsub, False, "upstream_listener", {"XPUB_VERBOSER": 1}) as theirs,
    ):
        await xsub.send(b"\x01q")
        await xsub.send(b"\x01q")
        await xsub.send(b"\x00q")  # one of two undone: not passed on
        await xsub.send(b"\x00q")  # the last: passed on
        await xsub.send_multipart([b"hello", b"upstream"])
        await xsub.send(b"STOP")
        got = await theirs.expect("upstream")
        assert got == [b"\x01q", b"\x01q", b"\x00q", b"hello", b"upstream"]
        assert xsub.stats()[theirs.endpoint].messages_sent == 0  # control, not messages


async def test_our_xsub_receives_what_a_pyzmq_publisher_sends_for_its_subscriptions():
    async with shmsock.socket(XSUB) as xsub:
        await xsub.send(b"\x01k")  # before connecting: libzmq's XSUB sends it on connect
        async with attached(
            xsub, False, "probing_publisher", "PUB", [b"k", b"x"], 100, NO_HWM
        ) as theirs:
            with trio.fail_after(20):
                while (await xsub.recv_multipart())[-1] != b"probe":
                    pass
            theirs.send("go")
            got = []
            with trio.fail_after(20):
                while (frames := await xsub.recv_multipart())[-1] != b"END":
                    if frames[-1] != b"probe":
                        got.append(frames)
            assert got == [[b"k", b"%d" % i] for i in range(100)]
            await theirs.expect("sent")


# -- forwarders between hosts: shmsock.proxy(xsub, xpub), one side tcp://, one shm:// -----


async def test_a_forwarder_brings_a_pyzmq_publisher_to_shm_subscribers():
    """pyzmq PUB (process) --tcp--> XSUB | proxy | XPUB --shm--> shmsock SUB (process)."""
    name = f"shm://fwd-in-{os.getpid()}"
    async with (
        shmsock.socket(XSUB) as xsub,
        shmsock.socket(XPUB) as xpub,
        trio.open_nursery() as nursery,
    ):
        xpub.bind(name)
        nursery.start_soon(shmsock.proxy, xsub, xpub)
        async with attached(
            xsub, False, "probing_publisher", "XPUB", [b"w", b"x"], 300, NO_HWM
        ) as publisher:
            with spawn(pubsubpeers.collecting_sub, name, [b"w"], 1, ctx=forked()) as sub:
                await sub.expect("ready")
                # The subscription travels SUB -> XPUB -> proxy -> XSUB -> tcp.
                assert await publisher.expect("upstream") == b"\x01w"
                await sub.expect("flowing")
                publisher.send("go")
                got = await sub.recv()
                assert got == ("got", [[b"w", b"%d" % i] for i in range(300)])
                await sub.finish()
            await publisher.expect("sent")
        nursery.cancel_scope.cancel()


async def test_a_forwarder_brings_a_shm_publisher_to_pyzmq_subscribers():
    """shmsock PUB (process) --shm--> XSUB | proxy | XPUB --tcp--> pyzmq SUB (process)."""
    name = f"shm://fwd-out-{os.getpid()}"
    with spawn(pubsubpeers.probing_pub, name, [b"w", b"x"], 300, ctx=forked()) as publisher:
        await publisher.expect("ready")
        async with (
            shmsock.socket(XSUB) as xsub,
            shmsock.socket(XPUB) as xpub,
            trio.open_nursery() as nursery,
        ):
            xsub.connect(name)
            endpoint = xpub.bind(LOOPBACK)
            nursery.start_soon(shmsock.proxy, xsub, xpub)
            async with peer("collecting_subscriber", endpoint, False, "SUB", [b"w"], 1) as sub:
                await sub.expect("flowing")
                publisher.send("go")
                got = await sub.expect("got")
                assert got == [[b"w", b"%d" % i] for i in range(300)]
                await publisher.expect("sent")
                await publisher.finish()  # it removes its files as it leaves
            nursery.cancel_scope.cancel()


# -- peers coming and going, ipc://, and what an XSUB sends besides subscriptions ------


@pytest.mark.parametrize("scheme", ["tcp", "ipc"])
async def test_a_new_subscriber_after_the_last_one_left_is_told_and_served(scheme, tmp_path):
    """The link's pipe ends with its last peer and a new one starts with the
    next: the XPUB hears the departure's unsubscription and the newcomer's
    subscription, and the newcomer gets what is published after."""
    where = LOOPBACK if scheme == "tcp" else f"ipc://{tmp_path}/xpub"
    async with shmsock.socket(XPUB) as xpub:
        endpoint = xpub.bind(where)
        for round_ in range(3):
            async with peer("collecting_subscriber", endpoint, False, "SUB", [b"r"], 1) as sub:
                with trio.fail_after(20):
                    assert await xpub.recv() == b"\x01r"
                    while not sub.child.conn.poll():
                        await xpub.send_multipart([b"r", b"probe"])
                        await trio.sleep(0.005)
                await sub.expect("flowing")
                for i in range(50):
                    await xpub.send_multipart([b"r", b"%d-%d" % (round_, i)])
                await xpub.send_multipart([b"r", b"END"])
                got = await sub.expect("got")
                assert got == [[b"r", b"%d-%d" % (round_, i)] for i in range(50)]
                assert [s.topics for s in xpub.subscribers()] == [(b"r",)]
            with trio.fail_after(20):
                assert await xpub.recv() == b"\x00r"


async def test_a_pyzmq_xsub_process_sends_subscriptions_and_messages_to_our_xpub():
    async with shmsock.socket(XPUB) as xpub:
        endpoint = xpub.bind(LOOPBACK)
        async with peer("collecting_subscriber", endpoint, False, "XSUB", [b"m"], 1) as xsub:
            with trio.fail_after(20):
                assert await xpub.recv() == b"\x01m"
                while not xsub.child.conn.poll():
                    await xpub.send_multipart([b"m", b"probe"])
                    await trio.sleep(0.005)
            await xsub.expect("flowing")
            await xpub.send_multipart([b"other", b"x"])  # not subscribed: filtered
            await xpub.send_multipart([b"m", b"1"])
            await xpub.send_multipart([b"m", b"END"])
            assert await xsub.expect("got") == [[b"m", b"1"]]


async def test_our_xpub_receives_what_a_pyzmq_xsub_sends_upstream_in_order():
    upstream = [[b"\x01a"], [b"hi", b"there"], [b"plain"], [b"\x00a"]]
    async with shmsock.socket(XPUB) as xpub:
        endpoint = xpub.bind(LOOPBACK)
        async with peer("upstream_sender", endpoint, False, upstream) as xsub:
            await xsub.expect("sent")
            with trio.fail_after(20):
                got = [await xpub.recv_multipart() for _ in upstream]
            assert got == upstream
            assert xpub.stats()[endpoint].messages_received == 0  # control, not messages
