"""PUB/SUB across real OS processes: no slow-joiner loss, filtering, a slow subscriber."""

from __future__ import annotations

import hashlib
import os
import random

import pytest
import trio
from helpers import pubsubpeers
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PUB, SUB, _admin


def digest(messages: list[list[bytes]]) -> str:
    h = hashlib.sha256()
    for frames in messages:
        for f in frames:
            h.update(f)
            h.update(b"|")
    return h.hexdigest()


def name() -> str:
    return f"shm://psp-{os.getpid()}-{random.randrange(1 << 30)}"


@pytest.mark.parametrize("subscribe_after", [False, True], ids=["before-connect", "after-attach"])
async def test_a_known_subscription_loses_nothing_however_soon_the_publisher_sends(
    subscribe_after,
):
    """The slow-joiner promise: each child says "ready" once attached and
    subscribed, and the very next message the PUB sends reaches it."""
    endpoint = name()
    n = 300
    wants = {"a": [b"a"], "b": [b"b"], "all": [b""]}
    async with shmsock.socket(PUB, nodrop=True) as pub:
        pub.bind(endpoint)
        children = {
            key: spawn(
                pubsubpeers.sub_collect,
                endpoint,
                topics,
                n * (3 if key == "all" else 1),
                subscribe_after,
            )
            for key, topics in wants.items()
        }
        try:
            for child in children.values():
                await child.expect("ready")
            sent: list[list[bytes]] = []
            for i in range(n):
                for t in (b"a", b"b", b"c"):
                    frames = [t, b"%d" % i]
                    sent.append(frames)
                    await pub.send_multipart(frames)
            for key, child in children.items():
                firsts, got_digest = await child.recv()
                expect = [m for m in sent if key == "all" or m[0] == key.encode()]
                assert firsts == [m[0] for m in expect]
                assert got_digest == digest(expect)
            for child in children.values():
                await child.finish()
        finally:
            for child in children.values():
                child.close()


async def test_subscribers_in_this_process_of_a_publisher_in_another():
    endpoint = name()
    with spawn(pubsubpeers.pub_numbers, endpoint, [b"x", b"y"], 500) as child:
        await child.expect("ready")
        async with shmsock.socket(SUB) as sx, shmsock.socket(SUB) as sy:
            sx.subscribe(b"x")
            sy.subscribe(b"y")
            sx.connect(endpoint)
            sy.connect(endpoint)
            child.send(2)
            got_x = [await sx.recv_multipart() for _ in range(500)]
            got_y = [await sy.recv_multipart() for _ in range(500)]
            await child.expect("sent")
            assert got_x == [[b"x", b"%d" % i] for i in range(500)]
            assert got_y == [[b"y", b"%d" % i] for i in range(500)]
            await child.finish()


async def test_a_slow_subscriber_process_never_blocks_the_publisher_and_its_drops_show_everywhere():
    endpoint = name()
    n = 2000
    payload = bytes(1000)
    async with (
        shmsock.socket(PUB, ring_size=64 * 1024) as pub,
        shmsock.socket(SUB) as fast,
    ):
        pub.bind(endpoint)
        with spawn(pubsubpeers.sub_idle, endpoint) as slow:
            await slow.expect("ready")
            fast.subscribe(b"")
            fast.connect(endpoint)
            await wait_peers(pub, 2)
            got: list[bytes] = []
            for i in range(n):
                pub.send_nowait(b"%04d" % i + payload)  # never WouldBlock
                if i % 32 == 31:
                    while True:
                        try:
                            got.append(fast.recv_nowait())
                        except trio.WouldBlock:
                            break
            while len(got) < n:
                got.append(await fast.recv())
            assert [m[:4] for m in got] == [b"%04d" % i for i in range(n)]
            slow.send("read")
            kept = await slow.recv()
            assert 0 < kept < n
            dropped = {s.pid: s.dropped for s in pub.subscribers()}
            assert dropped == {slow.pid: n - kept, os.getpid(): 0}
            assert pub.stats()[endpoint].dropped == n - kept
            # `shmsock stat` reads the same count from the ring's header.
            d = _admin.open_user_dir()
            assert d is not None
            _ep, conns = _admin.stat(d, endpoint.removeprefix("shm://"))
            by_pid = {c.slot.pid: sum(r.messages_dropped for r in c.to_connector) for c in conns}
            assert by_pid == {slow.pid: n - kept, os.getpid(): 0}
            await slow.finish()


# -- wake-ups: a publisher owes a sleeping subscriber's wake until its burst ends --------
# (rule 7 of shmsock/_transport/shm/_doorbell.py).  A wake that were never paid leaves
# a subscriber asleep with messages in its ring: these tests would then fail on the
# children's timeouts, not pass slowly.

BURSTS = [1, 2, 1, 3, 63, 64, 65, 1, 255, 256, 257, 1, 700, 1, 5, 1]


@pytest.mark.parametrize("way", ["send", "send_nowait"])
async def test_every_burst_reaches_every_sleeping_subscriber_exactly_once(way):
    """Six subscriber processes; the publisher sends a burst, then waits until
    each has it all (so each is asleep again), many times over, with burst
    sizes around the wake thresholds and larger than a small ring holds."""
    endpoint = name()
    ring = 64 << 10  # a 700-message burst of these fills it: the publisher waits
    async with shmsock.socket(PUB, nodrop=True, ring_size=ring) as pub:
        pub.bind(endpoint)
        children = [spawn(pubsubpeers.sub_exact, endpoint, b"", ring) for _ in range(6)]
        try:
            for child in children:
                await child.expect("ready")
            await wait_peers(pub, len(children))
            sent = 0
            for burst in BURSTS:
                for k in range(burst):
                    frames = [b"t", b"%d" % sent] + ([b"ack"] if k == burst - 1 else [])
                    frames[1] += b" " * 100
                    sent += 1
                    if way == "send":
                        await pub.send_multipart(frames)
                    else:
                        while True:
                            try:
                                pub.send_multipart_nowait(frames)
                                break
                            except trio.WouldBlock:
                                await trio.lowlevel.checkpoint()
                for child in children:
                    assert await child.recv() == sent
            await pub.send_multipart([b"t", b"end"])
            for child in children:
                assert await child.recv() == ("end", sent)
                await child.finish()
        finally:
            for child in children:
                child.close()


async def test_a_publisher_that_never_pauses_still_wakes_a_quiet_topics_subscriber():
    """Subscribers of topic b sleep while the publisher keeps writing topic a
    without a pause; each b message still reaches them (the publisher's writes
    or its delay bound pay the wake, since no idle moment ever comes)."""
    endpoint = name()
    ring = 1 << 20
    async with shmsock.socket(PUB, nodrop=True, ring_size=ring) as pub:
        pub.bind(endpoint)
        a_subs = [spawn(pubsubpeers.sub_exact, endpoint, b"a", ring) for _ in range(3)]
        b_subs = [spawn(pubsubpeers.sub_exact, endpoint, b"b", ring) for _ in range(3)]
        children = a_subs + b_subs
        try:
            for child in children:
                await child.expect("ready")
            await wait_peers(pub, len(children))
            a_sent = 0
            for b_sent in range(20):
                acked = trio.Event()

                async def acks(b_sent: int = b_sent, acked: trio.Event = acked) -> None:
                    for child in b_subs:
                        assert await child.recv() == b_sent + 1
                    acked.set()

                await pub.send_multipart([b"b", b"%d" % b_sent, b"ack"])
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(acks)
                    while not acked.is_set():
                        await pub.send_multipart([b"a", b"%d" % a_sent])
                        a_sent += 1
            await pub.send_multipart([b"a", b"end"])
            await pub.send_multipart([b"b", b"end"])
            for child in a_subs:
                assert await child.recv() == ("end", a_sent)
            for child in b_subs:
                assert await child.recv() == ("end", 20)
            for child in children:
                await child.finish()
        finally:
            for child in children:
                child.close()


# -- batches: send_many on a PUB -------------------------------------------------------

BATCHES = [1, 2, 63, 65, 200, 1, 700, 3]


async def test_batches_of_mixed_topics_reach_each_subscriber_process_in_order():
    """send_many over subscriber processes of topic a, topic b and everything:
    each gets exactly the messages of the batches it matches, in order and
    once (each subscriber's share is written with one call, and the wakes of
    sleeping subscribers are paid after the burst).  The 700-message batch of
    1 KiB messages overfills a ring (up to 256 KiB are written at once), so
    the nodrop publisher waits too."""
    endpoint = name()
    ring = 256 << 10
    wants = {"a": [b"a"], "b": [b"b"], "all": [b""]}
    sent: list[bytes] = []
    batches: list[list[bytes]] = []
    for size in BATCHES:
        batch = []
        for _ in range(size):
            topic = b"abc"[len(sent) % 3 : len(sent) % 3 + 1]
            batch.append(topic + b"%06d" % len(sent) + bytes(1000))
            sent.append(batch[-1])
        batches.append(batch)
    async with shmsock.socket(PUB, nodrop=True, ring_size=ring) as pub:
        pub.bind(endpoint)
        children = {
            key: spawn(
                pubsubpeers.sub_collect,
                endpoint,
                topics,
                sum(1 for m in sent if key == "all" or m[:1] == key.encode()),
                False,
            )
            for key, topics in wants.items()
        }
        try:
            for child in children.values():
                await child.expect("ready")
            await wait_peers(pub, len(children))
            for batch in batches:
                if len(batch) * 1024 > ring // 4:
                    for i in range(0, len(batch), 200):
                        await pub.send_many(batch[i : i + 200])
                else:
                    await pub.send_many(batch)
            for key, child in children.items():
                firsts, _digest = await child.recv()
                assert firsts == [m for m in sent if key == "all" or m[:1] == key.encode()]
            for child in children.values():
                await child.finish()
            assert all(s.dropped == 0 for s in pub.subscribers())
        finally:
            for child in children.values():
                child.close()


async def test_a_slow_subscriber_process_misses_whole_batches_each_message_counted():
    """Without nodrop, a subscriber process that does not read misses each
    batch it has no room for, all of it, and each message of it is counted in
    its drops (``subscribers()``, ``stats()`` and ``shmsock stat``); the
    subscriber that reads gets every batch."""
    endpoint = name()
    n, size = 200, 8
    payload = bytes(1000)
    async with (
        shmsock.socket(PUB, ring_size=64 * 1024) as pub,
        shmsock.socket(SUB) as fast,
    ):
        pub.bind(endpoint)
        with spawn(pubsubpeers.sub_idle, endpoint) as slow:
            await slow.expect("ready")
            fast.subscribe(b"")
            fast.connect(endpoint)
            await wait_peers(pub, 2)
            got: list[bytes] = []
            for i in range(n):
                pub.send_many_nowait([b"%05d" % (i * size + k) + payload for k in range(size)])
                while True:
                    try:
                        got += fast.recv_many_nowait(1000)
                    except trio.WouldBlock:
                        break
            while len(got) < n * size:
                got += await fast.recv_many(1000)
            assert [m[:5] for m in got] == [b"%05d" % i for i in range(n * size)]
            slow.send("read")
            kept = await slow.recv()
            assert 0 < kept < n * size
            assert kept % size == 0  # whole batches
            missed = n * size - kept
            dropped = {s.pid: s.dropped for s in pub.subscribers()}
            assert dropped == {slow.pid: missed, os.getpid(): 0}
            assert pub.stats()[endpoint].dropped == missed
            d = _admin.open_user_dir()
            assert d is not None
            _ep, conns = _admin.stat(d, endpoint.removeprefix("shm://"))
            by_pid = {c.slot.pid: sum(r.messages_dropped for r in c.to_connector) for c in conns}
            assert by_pid == {slow.pid: missed, os.getpid(): 0}
            await slow.finish()
