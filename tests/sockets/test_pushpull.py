"""PUSH and PULL: work distribution and collection, in one process and across processes."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import os
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from helpers import peers, seam
from helpers.conformance import (
    damage_consumer_position,
    fill_then_drain,
    wait_peers,
)
from helpers.procs import Child, spawn

import shmsock
from shmsock import PULL, PUSH
from shmsock._patterns import BATCH_TURN


async def all_sent_then_exit(pushers: list[Child]) -> None:
    """Each peers.push_* child reported all it sent, and exits cleanly when told."""
    for p in pushers:
        await p.expect("ready")
        await p.expect("sent")
        await p.finish()


def digest(msgs):
    h = hashlib.sha256()
    for m in msgs:
        h.update(m)
        h.update(b"|")
    return h.hexdigest()


async def test_push_round_robins_over_connected_pulls():
    async with shmsock.socket(PUSH) as push:
        push.bind("shm://rr")
        async with trio.open_nursery() as nursery:
            counts = collections.Counter()
            all_in = trio.Event()
            for i in range(3):
                await nursery.start(_pull_task, f"w{i}", counts, all_in)
            await wait_peers(push, 3)
            for i in range(300):
                await push.send(b"%d" % i)
            await all_in.wait()
            assert counts == {"w0": 100, "w1": 100, "w2": 100}
            nursery.cancel_scope.cancel()


async def _pull_task(name, counts, all_in, task_status=trio.TASK_STATUS_IGNORED):
    async with shmsock.socket(PULL) as pull:
        pull.connect("shm://rr")
        task_status.started(pull)
        async for _msg in pull:
            counts[name] += 1
            if sum(counts.values()) == 300:
                all_in.set()


async def test_push_skips_a_peer_whose_ring_is_full():
    async with (
        shmsock.socket(PUSH, linger=0) as push,
        shmsock.socket(PULL) as slow,
        shmsock.socket(PULL) as fast,
    ):
        push.bind("shm://skip")
        slow.connect("shm://skip")
        fast.connect("shm://skip")
        await wait_peers(push, 2)
        got = 0
        payload = bytes(4000)
        # The slow PULL never reads: once its ring is full, everything goes to
        # the fast one, and the PUSH never blocks.
        for _ in range(1000):
            await push.send(payload)
            while True:
                try:
                    fast.recv_nowait()
                    got += 1
                except trio.WouldBlock:
                    break
        # What the slow PULL's ring holds (at most this many) is all that
        # did not go to the fast one.
        room = push.ring_size // (len(payload) + 24)
        stuck = 0
        while got + stuck < 1000:
            try:
                got += len(fast.recv_many_nowait())
            except trio.WouldBlock:
                try:
                    stuck += len(slow.recv_many_nowait())
                except trio.WouldBlock:
                    await trio.sleep(0.001)
        assert got + stuck == 1000 and stuck <= room


@pytest.mark.parametrize("push_binds", [True, False], ids=["push-binds", "push-connects"])
async def test_push_drops_a_peer_whose_ring_header_is_corrupt_and_sends_to_the_others(
    push_binds, caplog
):
    endpoints = ["shm://hd-a", "shm://hd-b"]
    async with (
        shmsock.socket(PUSH, ring_size=8192) as push,
        shmsock.socket(PULL) as victim,
        shmsock.socket(PULL) as healthy,
    ):
        if push_binds:
            push.bind(endpoints[0])
            victim.connect(endpoints[0])
            healthy.connect(endpoints[0])
        else:
            victim.bind(endpoints[0])
            healthy.bind(endpoints[1])
            push.connect(endpoints[0])
            push.connect(endpoints[1])
        await wait_peers(push, 2)
        fill_then_drain(push, [victim, healthy], b"fill 0000")
        # The victim's incoming ring now claims a read position the PUSH
        # never wrote up to: the PUSH finds that on its next write there.
        damage_consumer_position(seam.connections(victim)[0].rx_seg.ring)
        sent = [b"send %04d" % i for i in range(100)]
        for msg in sent:  # no checkpoint: nobody can reconnect meanwhile
            push.send_nowait(msg)
        assert push.peer_count == 1
        got = []
        while len(got) < len(sent):
            got.append(await healthy.recv())
        assert got == sent
        stats = push._stats_by_endpoint()
        assert sum(st.corrupt for st in stats.values()) == 1
        assert stats[endpoints[0]].corrupt == 1
        assert "closing the connection" in caplog.text
        # The victim's side dials again and gets a fresh ring: both are used.
        await wait_peers(push, 2)
        await push.send(b"after 0")
        await push.send(b"after 1")
        with trio.fail_after(10):
            assert {await victim.recv(), await healthy.recv()} == {b"after 0", b"after 1"}


async def test_push_waits_for_a_peer_and_sends_when_one_connects():
    async with shmsock.socket(PUSH) as push:
        push.bind("shm://wait-peer")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push.send, b"patient")
            await trio.testing.wait_all_tasks_blocked()
            async with shmsock.socket(PULL) as pull:
                pull.connect("shm://wait-peer")
                assert await pull.recv() == b"patient"


@contextlib.asynccontextmanager
async def tagged_pushers(endpoint: str) -> AsyncIterator[list[tuple[shmsock.Socket, bytes]]]:
    """Three PUSH sockets connected to *endpoint*, each with its tag a, b, c."""
    async with contextlib.AsyncExitStack() as stack:
        pushers = []
        for tag in (b"a", b"b", b"c"):
            s = await stack.enter_async_context(shmsock.socket(PUSH))
            s.connect(endpoint)
            await s.wait_peers(1)
            pushers.append((s, tag))
        yield pushers


async def test_pull_fair_queues_between_pushers():
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://fair")
        async with tagged_pushers("shm://fair") as pushers:
            for s, tag in pushers:
                for i in range(200):
                    await s.send(tag + b"%d" % i)
            got = [await pull.recv() for _ in range(600)]
        first = [m[:1] for m in got[:30]]
        assert collections.Counter(first) == {b"a": 10, b"b": 10, b"c": 10}
        for tag in b"abc":
            mine = [m for m in got if m[0] == tag]
            assert mine == [bytes([tag]) + b"%d" % i for i in range(200)]  # order per peer


async def test_recv_many_gives_each_peer_a_turn_of_several_batches():
    # recv_many stays with one peer for BATCH_TURN batches while it has
    # messages, then moves on; every peer gets its turn, and one that runs
    # dry hands over at once.
    turn = BATCH_TURN
    size = 25
    counts = {b"a": 4 * turn * size, b"b": 4 * turn * size, b"c": 2 * size}
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://turns")
        async with tagged_pushers("shm://turns") as pushers:
            for s, tag in pushers:
                await s.send_many([tag + b"%d" % i for i in range(counts[tag])])
            batches = []
            with trio.fail_after(10):
                while sum(map(len, batches)) < sum(counts.values()):
                    batches.append(await pull.recv_many(size))
    for batch in batches:
        assert len({m[:1] for m in batch}) == 1  # a batch comes from one peer
    runs = [(tag, len(list(group))) for tag, group in itertools.groupby(b[0][:1] for b in batches)]
    # Each run is one turn: a full one, or c's two batches and then it is dry.
    assert all(n == turn for tag, n in runs if tag != b"c"), runs
    assert [n for tag, n in runs if tag == b"c"] == [2], runs
    # Turns go round: while a and b both have messages, they alternate.
    busy = [tag for tag, _ in runs if tag != b"c"]
    assert all(x != y for x, y in itertools.pairwise(busy)), runs
    for tag, n in counts.items():
        mine = [m for batch in batches for m in batch if m[:1] == tag]
        assert mine == [tag + b"%d" % i for i in range(n)]  # each once, in order


@contextlib.asynccontextmanager
async def idle_pushers(endpoint: str) -> AsyncIterator[tuple[shmsock.Socket, list[shmsock.Socket]]]:
    """A PULL bound to *endpoint* and three PUSH peers of it that sent nothing.

    The PULL has looked at each, found it empty, and taken it out of its
    ready queue: a peer comes back when it sends.
    """
    async with shmsock.socket(PULL) as pull:
        pull.bind(endpoint)
        async with tagged_pushers(endpoint) as pushers:
            with pytest.raises(trio.WouldBlock):
                pull.recv_many_nowait()
            yield pull, [s for s, _ in pushers]


async def recv_batches(
    pull: shmsock.Socket, batches: list[list[bytes]], total: int, size: int
) -> None:
    """recv_many(*size*) into *batches* until they hold *total* messages."""
    with trio.fail_after(10):
        while sum(map(len, batches)) < total:
            batches.append(await pull.recv_many(size))


def each_once_in_order(batches: list[list[bytes]], counts: dict[bytes, int]) -> bool:
    """Whether the tagged messages came once each, in each sender's order."""
    return all(
        [m for batch in batches for m in batch if m[:1] == tag]
        == [tag + b"%d" % i for i in range(n)]
        for tag, n in counts.items()
    )


async def test_recv_many_serves_a_peer_that_was_idle_between_the_batches_of_a_turn():
    # A peer whose ring was empty, and that sends during another peer's
    # turn, waits for one batch, not for the busy peers' turns, for as long
    # as each batch empties its ring; left with more, it waits its turn.
    turn = BATCH_TURN
    size = 25
    counts = {b"a": 2 * turn * size, b"b": 2 * turn * size, b"c": 0}
    bursts = [1, 1, size + 3]  # the last is more than a batch
    batches: list[list[bytes]] = []
    async with idle_pushers("shm://newcomer") as (pull, (a, b, c)):
        for s, tag in ((a, b"a"), (b, b"b")):
            await s.send_many([tag + b"%d" % i for i in range(counts[tag])])
        await trio.testing.wait_all_tasks_blocked()  # both doorbells heard: a, b queued
        await recv_batches(pull, batches, 1, size)  # a's turn begins
        for n in bursts:
            sent = counts[b"c"]
            await c.send_many([b"c%d" % i for i in range(sent, sent + n)])
            counts[b"c"] += n
            await trio.testing.wait_all_tasks_blocked()  # its doorbell is heard
            batches.append(await pull.recv_many(size))
            batches.append(await pull.recv_many(size))
        await recv_batches(pull, batches, sum(counts.values()), size)
    for batch in batches:
        assert len({m[:1] for m in batch}) == 1  # a batch comes from one peer
    tags = [batch[0][:1] for batch in batches]
    # c's messages came at once, a batch between two of a's, until a batch
    # left some behind; those waited for a's turn to end and for b's.
    start = [b"a"] + [b"c", b"a"] * len(bursts) + [b"a"]
    assert tags[: len(start)] == start
    assert tags[len(start) :] == (
        [b"a"] * (turn - start.count(b"a")) + [b"b"] * turn + [b"c"] + [b"a"] * turn + [b"b"] * turn
    )
    assert [len(batch) for batch in batches if batch[0][:1] == b"c"] == [1, 1, size, 3]
    assert each_once_in_order(batches, counts)


async def test_recv_many_queues_a_peer_that_ran_dry_in_its_turn_behind_the_others():
    # A busy peer that runs dry after more than one batch of its turn, and
    # then sends again, is no newcomer: it waits for the turn running.
    turn = BATCH_TURN
    size = 25
    batches: list[list[bytes]] = []
    async with idle_pushers("shm://ran-dry") as (pull, (a, b, _)):
        await a.send_many([b"a%d" % i for i in range(2 * size)])
        await b.send_many([b"b%d" % i for i in range(2 * turn * size)])
        await trio.testing.wait_all_tasks_blocked()
        batches += [await pull.recv_many(size) for _ in range(3)]  # a, a, dry: b's turn
        await a.send_many([b"a%d" % i for i in range(2 * size, 3 * size)])
        await trio.testing.wait_all_tasks_blocked()  # its doorbell is heard
        await recv_batches(pull, batches, 3 * size + 2 * turn * size, size)
    tags = [batch[0][:1] for batch in batches]
    assert tags == [b"a", b"a"] + [b"b"] * turn + [b"a"] + [b"b"] * turn
    assert each_once_in_order(batches, {b"a": 3 * size, b"b": 2 * turn * size})


async def test_a_spinning_pull_takes_every_message_of_several_processes_in_order():
    # Spinning looks leave announcing to the spin (or to the look's end); with
    # several peers, some empty and some not, nothing may be lost or stall.
    count = 5000
    pushers = [spawn(peers.push_numbers, "shm://spinfan", False, 0, count, t) for t in "abc"]
    try:
        async with shmsock.socket(PULL, spin_us=100) as pull:
            pull.bind("shm://spinfan")
            got: list[bytes] = []
            with trio.fail_after(60):
                while len(got) < 3 * count:
                    if len(got) % 2:
                        got.append(await pull.recv())
                    else:
                        got.extend(await pull.recv_many(50))
            for tag in "abc":
                assert [m for m in got if m.startswith(tag.encode())] == [
                    f"{tag}:{i}".encode() for i in range(count)
                ]
        await all_sent_then_exit(pushers)
    finally:
        for p in pushers:
            p.close()


@pytest.mark.parametrize("spin_us", [0, 300])
async def test_tasks_sharing_a_pull_take_every_message_once_in_each_senders_order(spin_us):
    # Receivers of every kind share one socket, and the senders pause between
    # bursts: each task parks (or spins), is woken and runs dry over and over.
    count = 3000
    tags = "abc"
    pushers = [
        spawn(peers.push_bursts, "shm://shared", False, count, tag, seed)
        for seed, tag in enumerate(tags)
    ]
    try:
        async with shmsock.socket(PULL, spin_us=spin_us) as pull:
            pull.bind("shm://shared")
            by_task: dict[str, list[bytes]] = collections.defaultdict(list)
            taken: list[bytes] = []
            everything = trio.Event()

            def take(task: str, message: bytes) -> None:
                by_task[task].append(message)
                taken.append(message)
                if len(taken) == len(tags) * count:
                    everything.set()

            async def by_recv(task: str) -> None:
                while True:
                    take(task, await pull.recv())

            async def by_recv_many(task: str) -> None:
                while True:
                    for message in await pull.recv_many(16):
                        take(task, message)

            async def by_iteration(task: str) -> None:
                async for message in pull:
                    take(task, message)

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(by_recv, "recv 1")
                    nursery.start_soon(by_recv, "recv 2")
                    nursery.start_soon(by_recv_many, "recv_many")
                    nursery.start_soon(by_iteration, "async for")
                    await everything.wait()
                    nursery.cancel_scope.cancel()
            expected = [f"{tag}:{i}".encode() for tag in tags for i in range(count)]
            assert sorted(taken) == sorted(expected)  # each exactly once
            for task, messages in by_task.items():
                for tag in tags:
                    seq = [int(m[2:]) for m in messages if m.startswith(tag.encode())]
                    assert seq == sorted(seq), f"{task} got {tag}'s messages out of order"
        await all_sent_then_exit(pushers)
    finally:
        for p in pushers:
            p.close()


async def test_a_spinning_recv_leaves_a_parked_receiver_its_doorbells():
    # A spin withdraws every idle peer's announcement while it polls.  When it
    # finds a message on one peer, the other peers must be announced again:
    # a task parked on this socket waits for their doorbells.
    pushers = [spawn(peers.push_when_told, "shm://spinwait", False) for _ in range(2)]
    try:
        async with shmsock.socket(PULL, spin_us=500_000) as pull:
            pull.bind("shm://spinwait")
            for p in pushers:
                await p.expect("ready")
            await wait_peers(pull, 2)
            parked: list[bytes] = []
            woken = trio.Event()

            async def receive() -> None:
                parked.append(await pull.recv())
                woken.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()  # spun, then parked
                # It comes while we spin: 50 ms into a spin of up to 500 ms.
                pushers[0].send((0.05, b"for the spinner"))
                assert await pull.recv() == b"for the spinner"
                assert not parked
                pushers[1].send((0, b"for the parked task"))
                with trio.fail_after(10):
                    await woken.wait()
            assert parked == [b"for the parked task"]
        for p in pushers:
            p.send(None)
            assert await p.join() == 0
    finally:
        for p in pushers:
            p.close()


async def test_connect_before_bind_attaches_when_the_binder_appears():
    async with shmsock.socket(PUSH) as push:
        push.connect("shm://later")
        with trio.move_on_after(0.05) as cs:
            await push.send(b"too early")  # no peer yet: it waits
        assert cs.cancelled_caught
        async with shmsock.socket(PULL) as pull:
            pull.bind("shm://later")
            await push.send(b"attached")
            assert await pull.recv() == b"attached"


async def test_binder_restart_reattaches_and_keeps_what_was_queued():
    async with shmsock.socket(PUSH) as push:
        push.connect("shm://restart")
        async with shmsock.socket(PULL) as pull:
            pull.bind("shm://restart")
            await push.send(b"one")
            assert await pull.recv() == b"one"
        # No binder now: the PUSH has no peer, so sends wait.  A new binder:
        async with shmsock.socket(PULL) as pull2:
            pull2.bind("shm://restart")
            await push.send(b"two")
            assert await pull2.recv() == b"two"


async def test_one_socket_binds_and_connects_to_several_endpoints():
    async with (
        shmsock.socket(PULL) as sink,
        shmsock.socket(PUSH) as p1,
        shmsock.socket(PUSH) as p2,
        shmsock.socket(PULL) as remote,
    ):
        sink.bind("shm://sink-a")
        remote.bind("shm://sink-b")
        sink.connect("shm://sink-c")
        p1.connect("shm://sink-a")
        p2.bind("shm://sink-c")
        p2.connect("shm://sink-b")
        await p1.send(b"via a")
        assert await sink.recv() == b"via a"
        got = set()
        for _ in range(2):
            await p2.send(b"from p2")
        got.add(await sink.recv())
        got.add(await remote.recv())
        assert got == {b"from p2"}


@pytest.mark.parametrize("push_binds", [True, False])
async def test_hundred_thousand_messages_across_processes_exactly_once_in_order(push_binds):
    count = 100_000
    with spawn(peers.push_numbers, "shm://xproc", push_binds, 0, count) as child:
        async with shmsock.socket(PULL) as pull:
            if push_binds:
                await child.expect("ready")
                pull.connect("shm://xproc")
            else:
                pull.bind("shm://xproc")
                await child.expect("ready")
            got = []
            while len(got) < count:
                got.extend(await pull.recv_many(1000))
            assert got == [f":{i}".encode() for i in range(count)]
            await child.expect("sent")
            await child.finish()


async def test_pull_child_receives_what_a_bound_push_sends():
    msgs = [os.urandom(i % 5000) for i in range(3000)]
    with spawn(peers.pull_digest, "shm://xproc2", False, len(msgs)) as child:
        async with shmsock.socket(PUSH) as push:
            push.bind("shm://xproc2")
            await child.expect("ready")
            for m in msgs:
                await push.send(m)
            assert await child.recv() == (len(msgs), digest(msgs))
            await child.finish()


async def test_sigkilled_pull_releases_a_push_blocked_on_its_full_ring(userdir):
    with spawn(peers.pull_idle, "shm://victim", False) as child:
        async with shmsock.socket(PUSH, linger=0) as push, shmsock.socket(PULL) as other:
            push.bind("shm://victim")
            await child.expect("ready")
            await wait_peers(push, 1)
            payload = bytes(10_000)
            while True:  # fill the child's ring
                try:
                    push.send_nowait(payload)
                except trio.WouldBlock:
                    break

            async def blocked_send():
                await push.send(b"goes elsewhere")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_send)
                await trio.testing.wait_all_tasks_blocked()
                child.kill()
                other.connect("shm://victim")  # a live peer to move on to
            assert await other.recv() == b"goes elsewhere"
            # The dead peer was retired and its files reclaimed: only the
            # live connection's remain.
            assert child.pid not in [p.pid for p in seam.connections(push)]
            live = {p.tx_seg.name for p in seam.connections(push)}
            assert {n for n in os.listdir(userdir) if ".b." in n} == live
            assert len([n for n in os.listdir(userdir) if n.endswith(".c")]) == 1


async def test_sigkilled_push_is_noticed_and_its_messages_still_delivered(userdir):
    with spawn(peers.push_numbers, "shm://dying", False, 0, 50) as child:
        async with shmsock.socket(PULL) as pull:
            pull.bind("shm://dying")
            await child.expect("ready")
            await child.expect("sent")
            child.kill()
            got = [await pull.recv() for _ in range(50)]
            assert got == [f":{i}".encode() for i in range(50)]
            with trio.fail_after(10):
                while seam.connections(pull):  # retired once read to the end
                    with trio.move_on_after(0.01):
                        await pull.recv()
            left = sorted(n for n in os.listdir(userdir) if "@spare." not in n)
            assert left == ["dying@lock", "dying@sock"]
