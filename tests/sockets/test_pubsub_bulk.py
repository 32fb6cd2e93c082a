"""Large PUB messages (frames above the inline limit) across real OS processes.

Over shm:// each such frame goes into each matching subscriber's bulk
region (``shmsock/_transport/shm/_fanbulk.py``).  These tests hold it to a
PUB's rules: order per subscriber across small and large messages, topic
filtering, drops per subscriber (counted everywhere), and ``nodrop``
waiting for every subscriber, a cancelled send sending to none.
"""

from __future__ import annotations

import hashlib
import os
import random

import pytest
import trio
import trio.testing
from helpers import pubsubpeers
from helpers.conformance import take_now, wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PUB, SUB, XPUB, _admin

MiB = 1 << 20


def name() -> str:
    return f"shm://psb-{os.getpid()}-{random.randrange(1 << 30)}"


def summary(frames: list[bytes]) -> tuple[bytes, tuple[int, ...], str]:
    """As the children summarise a message (``pubsubpeers._summary``)."""
    h = hashlib.sha256()
    for f in frames:
        h.update(f)
        h.update(b"|")
    return frames[0][:16], tuple(map(len, frames)), h.hexdigest()


@pytest.mark.parametrize("kind", [PUB, XPUB], ids=["PUB", "XPUB"])
async def test_large_messages_reach_subscriber_processes_in_order_with_small_ones_by_topic(kind):
    """1 MiB and 16 MiB messages, single frames, multipart with large parts,
    and batches with large messages, mixed with small ones, reach three SUB
    processes (topics a, b, and everything) whole, each the messages its
    topics match, in the order sent."""
    endpoint = name()
    big1 = os.urandom(MiB)
    big16 = os.urandom(16 * MiB)
    plan: list[tuple[str, list[bytes]]] = []  # (how, frames)
    for i in range(12):
        t = b"abc"[i % 3 : i % 3 + 1]
        plan.append(("send", [t + b"%02d-small" % i]))
        plan.append(("send", [t + b"%02d-1m" % i + big1]))
        if i % 4 == 0:
            plan.append(("multipart", [t + b"%02d-multi" % i, big16, b"tail", big1]))
        if i % 3 == 1:
            for k, body in enumerate([b"", big1, b"x"]):
                plan.append(("batch", [t + b"%02d-batch%d" % (i, k) + body]))
        if i == 5:
            plan.append(("send", [t + b"%02d-16m" % i + big16]))
    wants = {"a": [b"a"], "b": [b"b"], "all": [b""]}
    expect = {
        key: [summary(f) for _, f in plan if key == "all" or f[0][:1] == key.encode()]
        for key in wants
    }
    async with shmsock.socket(kind, nodrop=True) as pub:
        pub.bind(endpoint)
        children = {
            key: spawn(pubsubpeers.sub_summaries, endpoint, topics, len(expect[key]))
            for key, topics in wants.items()
        }
        try:
            for child in children.values():
                await child.expect("ready")
            await wait_peers(pub, 3)
            with trio.fail_after(60):
                batch: list[bytes] = []
                for how, frames in [*plan, ("end", [])]:
                    if how != "batch" and batch:
                        await pub.send_many(batch)
                        batch = []
                    if how == "send":
                        await pub.send(frames[0])
                    elif how == "multipart":
                        await pub.send_multipart(frames)
                    elif how == "batch":
                        batch.append(frames[0])
            for key, child in children.items():
                got = await child.recv(60)
                assert [g[0] for g in got] == [e[0] for e in expect[key]]
                assert got == expect[key]
            for child in children.values():
                await child.finish()
            assert all(s.dropped == 0 for s in pub.subscribers())
        finally:
            for child in children.values():
                child.close()


async def test_a_slow_subscriber_process_misses_large_messages_only_counted_everywhere():
    """Without nodrop, a subscriber process that does not read misses the 1 MiB
    messages its bulk region has no room for (the publisher never blocks, and
    send_nowait never raises WouldBlock), each counted in ``subscribers()``,
    ``stats()`` and ``shmsock stat``; it keeps every small message, and the
    large ones it has room for, in order; the subscriber that reads gets all.
    Once it has read, the next large message reaches it again."""
    endpoint = name()
    n = 24
    big = os.urandom(MiB)
    sent: list[list[bytes]] = []
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB) as fast:
        pub.bind(endpoint)
        with spawn(pubsubpeers.sub_on_demand, endpoint) as slow:
            await slow.expect("ready")
            fast.subscribe(b"")
            fast.connect(endpoint)
            await wait_peers(pub, 2)
            got: list[list[bytes]] = []
            for i in range(n):
                for frames in ([b"%02d-small" % i], [b"%02d-large" % i + big]):
                    pub.send_nowait(frames[0])  # never WouldBlock
                    sent.append(frames)
                    got += take_now(fast)
            with trio.fail_after(30):
                while len(got) < len(sent):
                    got.append(await fast.recv_multipart())
            assert got == sent
            slow.send("read")
            kept = await slow.recv()
            large = [s for s in kept if b"-large" in s[0]]
            small = [s for s in kept if b"-small" in s[0]]
            assert small == [summary(f) for f in sent if b"-small" in f[0]]
            assert 0 < len(large) < n
            # The ones it kept are the first ones, whole.
            assert large == [summary(f) for f in sent if b"-large" in f[0]][: len(large)]
            missed = n - len(large)
            dropped = {s.pid: s.dropped for s in pub.subscribers()}
            assert dropped == {slow.pid: missed, os.getpid(): 0}
            assert pub.stats()[endpoint].dropped == missed
            d = _admin.open_user_dir()
            assert d is not None
            _ep, conns = _admin.stat(d, endpoint.removeprefix("shm://"))
            by_pid = {c.slot.pid: sum(r.messages_dropped for r in c.to_connector) for c in conns}
            assert by_pid == {slow.pid: missed, os.getpid(): 0}
            # It read: there is room again.
            again = b"again" + big
            pub.send_nowait(again)
            slow.send("read")
            assert await slow.recv() == [summary([again])]
            assert take_now(fast) == [[again]]
            await slow.finish()


async def test_nodrop_large_sends_wait_for_every_subscriber_and_a_cancelled_one_sends_to_none():
    """With nodrop, once a subscriber process's bulk region is full a large
    send waits (send_nowait raises WouldBlock); a send or send_multipart
    cancelled while it waits has sent to nobody, not even the subscriber that
    had room; one that waits goes to both once the slow one reads, after
    everything sent before it."""
    endpoint = name()
    big = os.urandom(MiB)
    async with shmsock.socket(PUB, nodrop=True) as pub, shmsock.socket(SUB) as fast:
        pub.bind(endpoint)
        with spawn(pubsubpeers.sub_on_demand, endpoint) as slow:
            await slow.expect("ready")
            fast.subscribe(b"")
            fast.connect(endpoint)
            await wait_peers(pub, 2)
            sent: list[list[bytes]] = []
            while True:
                frames = [b"%02d-fill" % len(sent) + big]
                try:
                    pub.send_nowait(frames[0])
                except trio.WouldBlock:
                    break
                sent.append(frames)
            assert sent
            assert take_now(fast) == sent
            # Cancelled while waiting: sent to none.
            for way in ("send", "send_multipart"):
                async with trio.open_nursery() as nursery:
                    if way == "send":
                        nursery.start_soon(pub.send, b"cancelled" + big)
                    else:
                        nursery.start_soon(pub.send_multipart, [b"cancelled", big, b"t"])
                    await trio.testing.wait_all_tasks_blocked()
                    nursery.cancel_scope.cancel()
            assert take_now(fast) == []
            # Waiting: goes once the slow one reads, to both, after the rest.
            done = trio.Event()
            last = [b"last", big, b"small", big]

            async def send_last() -> None:
                await pub.send_multipart(last)
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_last)
                await trio.testing.wait_all_tasks_blocked()
                assert not done.is_set()
                assert take_now(fast) == []
                slow.send("read")
                # (It may find the last one too: it is sent as soon as there is room.)
                read = await slow.recv()
                with trio.fail_after(30):
                    await done.wait()
            assert take_now(fast) == [last]
            slow.send("read")
            read += await slow.recv()
            assert read == [summary(f) for f in [*sent, last]]
            assert all(s.dropped == 0 for s in pub.subscribers())
            await slow.finish()


async def test_a_forwarder_passes_large_messages_whole_and_in_order():
    """``shmsock.proxy(xsub, xpub)`` over shm:// forwards 1 MiB messages (the
    XPUB's fan-out once refused them with MessageTooLarge, and the proxy
    dropped them with a warning), in order with small ones."""
    endpoint = name()
    upstream = endpoint + "-up"
    big = os.urandom(MiB)
    async with (
        shmsock.socket(PUB, nodrop=True) as pub,
        shmsock.socket(shmsock.XSUB) as xsub,
        shmsock.socket(XPUB, nodrop=True) as xpub,
        shmsock.socket(SUB) as sub,
        trio.open_nursery() as nursery,
    ):
        pub.bind(upstream)
        xsub.connect(upstream)
        xpub.bind(endpoint)
        nursery.start_soon(shmsock.proxy, xsub, xpub)
        await wait_peers(pub, 1)
        sub.subscribe(b"keep")
        sub.connect(endpoint)
        with trio.fail_after(30):
            # Until the subscription has come through the forwarder.
            while True:
                await pub.send(b"keep-probe")
                await trio.testing.wait_all_tasks_blocked()
                if take_now(sub):
                    break
            sent = []
            for i in range(6):
                for m in (b"keep%d" % i + big, b"keep%d-small" % i, b"drop" + big):
                    await pub.send(m)
                    if m.startswith(b"keep"):
                        sent.append([m])
            got: list[list[bytes]] = []
            while len(got) < len(sent):
                frames = await sub.recv_multipart()
                if frames != [b"keep-probe"]:
                    got.append(frames)
        assert got == sent
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("nodrop", [False, True], ids=["drop", "nodrop"])
async def test_a_multipart_message_whose_large_frames_outgrow_the_region_is_published(nodrop):
    """[b"t", 16 MiB, 16 MiB, 16 MiB] after 16 MiB frames made each
    subscriber's region (it holds two of them): the regions grow for the
    whole message and it reaches both subscribers whole.  It used to be
    missed by every subscriber each time (counted as dropped), and with
    nodrop to wait for ever.  30 s is only a hang guard."""
    endpoint = name()
    big = [os.urandom(16 * MiB) for _ in range(3)]
    messages = [[b"one", big[0]], [b"t", *big], [b"t", *big[::-1]]]
    async with (
        shmsock.socket(PUB, nodrop=nodrop) as pub,
        shmsock.socket(SUB) as a,
        shmsock.socket(SUB) as b,
    ):
        pub.bind(endpoint)
        for sub in (a, b):
            sub.subscribe(b"")
            sub.connect(endpoint)
        await wait_peers(pub, 2)
        with trio.fail_after(30):
            for frames in messages:
                await pub.send_multipart(frames)
                for sub in (a, b):
                    assert await sub.recv_multipart() == frames
        assert all(s.dropped == 0 for s in pub.subscribers())
