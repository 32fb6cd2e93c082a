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
