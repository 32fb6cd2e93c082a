"""PUB/SUB and XPUB/XSUB: topics, filtering at the publisher, drops, nodrop, conflate.

Every test runs on each scheme (``shm``, ``inproc``); the cases across OS
processes are in test_pubsub_procs.py.
"""

from __future__ import annotations

import os
import random

import pytest
import trio
import trio.lowlevel
import trio.testing
from helpers.conformance import take_now, wait_peers
from helpers.flowing import until_flowing

import shmsock
from shmsock import PUB, SUB, XPUB, XSUB

SCHEMES = ("shm", "inproc")


@pytest.fixture(params=SCHEMES)
def endpoint(request: pytest.FixtureRequest) -> str:
    return f"{request.param}://ps-{os.getpid()}-{random.randrange(1 << 30)}"


async def drain(sub: shmsock.Socket) -> list[bytes]:
    """Every message the SUB can receive without waiting (after one event pass)."""
    await trio.testing.wait_all_tasks_blocked()
    got = []
    while True:
        try:
            got.append(sub.recv_nowait())
        except trio.WouldBlock:
            return got


async def drain_multipart(sub: shmsock.Socket) -> list[list[bytes]]:
    """As :func:`drain`, whole multipart messages."""
    await trio.testing.wait_all_tasks_blocked()
    return take_now(sub)


async def test_topics_are_prefixes_of_the_first_frame(endpoint):
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB) as sub:
        pub.bind(endpoint)
        sub.subscribe(b"weather.")
        sub.subscribe("news")  # a str is UTF-8, as in pyzmq
        sub.connect(endpoint)
        await wait_peers(sub, 1)
        await wait_peers(pub, 1)
        for msg in [b"weather.paris 12", b"sport 1-0", b"news: x", b"weathe", b"newsflash"]:
            await pub.send(msg)
        await pub.send_multipart([b"weather.rome", b"20"])
        await pub.send_multipart([b"other", b"weather."])  # only the first frame counts
        await pub.send(b"end.")
        assert await sub.recv() == b"weather.paris 12"
        assert await sub.recv() == b"news: x"
        assert await sub.recv() == b"newsflash"
        assert await sub.recv_multipart() == [b"weather.rome", b"20"]
        assert await drain(sub) == []
        assert sorted(sub.subscriptions) == [b"news", b"weather."]


async def test_a_sub_with_no_subscription_receives_nothing_and_the_empty_topic_everything(
    endpoint,
):
    async with (
        shmsock.socket(PUB) as pub,
        shmsock.socket(SUB) as none,
        shmsock.socket(SUB) as every,
    ):
        pub.bind(endpoint)
        every.subscribe(b"")
        none.connect(endpoint)
        every.connect(endpoint)
        await wait_peers(pub, 2)
        for i in range(10):
            await pub.send(b"%d" % i)
        assert [await every.recv() for _ in range(10)] == [b"%d" % i for i in range(10)]
        assert await drain(none) == []
        # The publisher filtered: nothing was ever written toward `none`.
        assert [s.topics for s in pub.subscribers()] == [(b"",)]
        assert pub.stats()[endpoint].messages_sent == 10


async def test_publisher_with_no_subscriber_sends_into_nothing(endpoint):
    async with shmsock.socket(PUB) as pub:
        pub.bind(endpoint)
        with trio.testing.assert_checkpoints():
            await pub.send(b"nobody")
        pub.send_nowait(b"nobody either")
        await pub.send_multipart([b"a", b"b"])


async def test_unsubscribe_stops_even_messages_already_on_their_way(endpoint):
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB) as sub:
        pub.bind(endpoint)
        sub.subscribe(b"a")
        sub.subscribe(b"b")
        sub.connect(endpoint)
        await wait_peers(pub, 1)
        for i in range(5):
            await pub.send(b"a%d" % i)
            await pub.send(b"b%d" % i)
        # They are in the SUB's ring now; unsubscribing drops the a's.
        sub.unsubscribe(b"a")
        got = await drain(sub)
        assert got == [b"b%d" % i for i in range(5)]
        await pub.send(b"a-late")
        await pub.send(b"b-late")
        assert await sub.recv() == b"b-late"
        assert await drain(sub) == []
        assert [s.topics for s in pub.subscribers()] == [(b"b",)]


async def test_subscriptions_are_counted_as_in_libzmq(endpoint):
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB) as sub:
        pub.bind(endpoint)
        sub.connect(endpoint)
        await wait_peers(pub, 1)
        # Subscribed after connecting: in effect once the SUB has attached too
        # (docs/pubsub.md, "When a subscription takes effect").
        await wait_peers(sub, 1)
        sub.subscribe(b"t")
        sub.subscribe(b"t")
        sub.unsubscribe(b"t")  # one left
        await pub.send(b"t1")
        assert await sub.recv() == b"t1"
        sub.unsubscribe(b"t")
        sub.unsubscribe(b"t")  # nothing left to undo: no error
        await pub.send(b"t2")
        assert await drain(sub) == []
        assert sub.subscriptions == []


async def test_setsockopt_subscribe_as_pyzmq(endpoint):
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB) as sub:
        pub.bind(endpoint)
        sub.setsockopt(shmsock.SUBSCRIBE, b"x")
        sub.connect(endpoint)
        await wait_peers(pub, 1)
        await pub.send(b"y")
        await pub.send(b"x1")
        assert await sub.recv() == b"x1"
        sub.setsockopt(shmsock.UNSUBSCRIBE, b"x")
        assert sub.subscriptions == []


async def test_bad_topics_are_refused(endpoint):
    async with shmsock.socket(SUB) as sub:
        with pytest.raises(TypeError, match="topic must be bytes"):
            sub.subscribe(5)  # type: ignore[arg-type]
        with pytest.raises(shmsock.MessageTooLarge, match="at most 1024 bytes"):
            sub.subscribe(b"x" * 2000)
        assert sub.subscriptions == []


async def test_every_matching_subscriber_gets_each_message_once(endpoint):
    async with shmsock.socket(PUB) as pub:
        pub.bind(endpoint)
        async with (
            shmsock.socket(SUB) as s1,
            shmsock.socket(SUB) as s2,
            shmsock.socket(SUB) as s3,
        ):
            s1.subscribe(b"a")
            s2.subscribe(b"")
            s2.subscribe(b"a")  # overlapping: still one copy
            s3.subscribe(b"b")
            for s in (s1, s2, s3):
                s.connect(endpoint)
            await wait_peers(pub, 3)
            for i in range(50):
                await pub.send(b"a%d" % i)
                await pub.send_multipart([b"b%d" % i, b"x" * 3000])
            assert await drain(s1) == [b"a%d" % i for i in range(50)]
            got2 = []
            while len(got2) < 100:
                got2.append(await s2.recv_multipart())
            expect2 = []
            for i in range(50):
                expect2 += [[b"a%d" % i], [b"b%d" % i, b"x" * 3000]]
            assert got2 == expect2
            got3 = [await s3.recv_multipart() for _ in range(50)]
            assert got3 == [[b"b%d" % i, b"x" * 3000] for i in range(50)]
            assert await drain(s2) == []


async def test_a_slow_subscriber_never_blocks_the_publisher_and_its_drops_are_counted(endpoint):
    async with (
        shmsock.socket(PUB, ring_size=64 * 1024) as pub,
        shmsock.socket(SUB) as slow,
        shmsock.socket(SUB) as fast,
    ):
        pub.bind(endpoint)
        slow.subscribe(b"")
        fast.subscribe(b"")
        slow.connect(endpoint)
        fast.connect(endpoint)
        await wait_peers(pub, 2)
        payload = bytes(1000)
        n = 1000  # about 16 rings' worth
        got_fast: list[bytes] = []

        async def read_fast() -> None:
            while len(got_fast) < n:
                got_fast.extend(await fast.recv_many(1000))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_fast)
            for i in range(n):
                # Never waits: the slow subscriber's ring fills, and it misses the rest.
                pub.send_nowait(b"%04d" % i + payload)
                if i % 50 == 0:
                    await trio.lowlevel.checkpoint()  # let the fast reader keep up
                    await trio.testing.wait_all_tasks_blocked()
        assert [m[:4] for m in got_fast] == [b"%04d" % i for i in range(n)]
        got_slow = await drain(slow)
        assert 0 < len(got_slow) < n
        # It got a prefix of the stream, in order, each message whole.
        assert got_slow == [b"%04d" % i + payload for i in range(len(got_slow))]
        subs = {s.dropped for s in pub.subscribers()}
        assert subs == {0, n - len(got_slow)}
        assert pub.stats()[endpoint].dropped == n - len(got_slow)


@pytest.mark.parametrize("way", ["send", "send_nowait", "send_many", "send_many_nowait"])
async def test_a_subscriber_that_accepts_less_misses_larger_messages_only(endpoint, way):
    """Each subscriber's max_msg_size is looked at for every message, on the
    socket's fast path too: the one that accepts 100 bytes misses (and counts)
    the larger messages; the other gets them all."""
    async with (
        shmsock.socket(PUB) as pub,
        shmsock.socket(SUB, max_msg_size=100) as small,
        shmsock.socket(SUB) as big,
    ):
        pub.bind(endpoint)
        for sub in (small, big):
            sub.subscribe(b"")
            sub.connect(endpoint)
        await wait_peers(pub, 2)
        sizes = [50, 200, 100, 101, 1]
        if way == "send_many":
            await pub.send_many([b"x" * size for size in sizes])
        elif way == "send_many_nowait":
            pub.send_many_nowait([b"x" * size for size in sizes])
        for size in sizes if not way.startswith("send_many") else ():
            if way == "send":
                await pub.send(b"x" * size)
            else:
                pub.send_nowait(b"x" * size)
        assert [len(m) for m in await drain(big)] == sizes
        assert [len(m) for m in await drain(small)] == [50, 100, 1]
        assert sorted(s.dropped for s in pub.subscribers()) == [0, 2]
        # A batch that only the one that accepts less is offered: missed, and counted.
        big.unsubscribe(b"")
        await trio.testing.wait_all_tasks_blocked()
        if way.startswith("send_many"):
            await pub.send_many([b"x" * 200, b"x" * 300])
        else:
            await pub.send(b"x" * 200)
            await pub.send(b"x" * 300)
        assert await drain(small) == []
        assert sorted(s.dropped for s in pub.subscribers()) == [4]


async def test_nodrop_waits_for_every_matching_subscriber_and_a_cancelled_send_sends_to_none(
    endpoint,
):
    async with (
        shmsock.socket(PUB, ring_size=64 * 1024, nodrop=True) as pub,
        shmsock.socket(SUB) as slow,
        shmsock.socket(SUB) as fast,
    ):
        pub.bind(endpoint)
        slow.subscribe(b"")
        fast.subscribe(b"")
        slow.connect(endpoint)
        fast.connect(endpoint)
        await wait_peers(pub, 2)
        sent = 0
        got_fast: list[bytes] = []
        while True:
            try:
                pub.send_nowait(b"%05d" % sent + bytes(1000))
            except trio.WouldBlock:
                break
            sent += 1
            got_fast += await drain(fast)  # the fast one keeps up
        assert sent > 0
        got_fast += await drain(fast)
        # The fast one has room now, the slow one none: a send waits...
        with trio.move_on_after(0.05) as cs:
            await pub.send(b"never" + bytes(1000))
        assert cs.cancelled_caught
        # ...and, cancelled, went to neither.
        got_fast += await drain(fast)
        got_slow = await drain(slow)
        assert [m[:5] for m in got_slow] == [b"%05d" % i for i in range(sent)]
        assert [m[:5] for m in got_fast] == [b"%05d" % i for i in range(sent)]
        assert all(s.dropped == 0 for s in pub.subscribers())
        # With room everywhere, the next send goes to both.
        await pub.send(b"after")
        assert await slow.recv() == b"after"
        assert await fast.recv() == b"after"


@pytest.mark.parametrize("topics", ["same", "mixed"])
async def test_a_nodrop_batch_waits_for_every_subscriber_and_a_cancelled_one_sends_to_none(
    endpoint, topics
):
    """send_many with nodrop is all or none over every subscriber's share of
    the batch: while the slow one has no room for its share, the fast one
    (which has room for its own) gets nothing either, and a cancelled
    send_many has sent nothing anywhere.  "mixed": the fast one subscribes
    to b"a" only, and the batch also holds messages only the slow one takes
    (each subscriber's share differs)."""
    async with (
        shmsock.socket(PUB, ring_size=64 * 1024, nodrop=True) as pub,
        shmsock.socket(SUB) as slow,
        shmsock.socket(SUB) as fast,
    ):
        pub.bind(endpoint)
        slow.subscribe(b"")
        fast.subscribe(b"" if topics == "same" else b"a")
        slow.connect(endpoint)
        fast.connect(endpoint)
        await wait_peers(pub, 2)

        def batch(k: int) -> list[bytes]:
            return [b"a%05d" % k + bytes(1000), b"b%05d" % k + bytes(1000)] * 4

        def fast_share(k: int) -> list[bytes]:
            return batch(k) if topics == "same" else batch(k)[::2]

        sent = 0
        got_fast: list[bytes] = []
        while True:
            try:
                pub.send_many_nowait(batch(sent))
            except trio.WouldBlock:
                break
            sent += 1
            got_fast += await drain(fast)  # the fast one keeps up
        assert sent > 0
        got_fast += await drain(fast)
        assert got_fast == [m for k in range(sent) for m in fast_share(k)]
        # The fast one has room for its share, the slow one none: send_many waits...
        scope = trio.CancelScope()

        async def send_it() -> None:
            with scope:
                await pub.send_many(batch(sent))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_it)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
        assert scope.cancelled_caught
        # ...and, cancelled, it went to neither.
        assert await drain(fast) == []
        got_slow = await drain(slow)
        assert got_slow == [m for k in range(sent) for m in batch(k)]
        assert all(s.dropped == 0 for s in pub.subscribers())
        # With room everywhere, the next batch goes to both.
        await pub.send_many(batch(sent + 1))
        assert await drain(slow) == batch(sent + 1)
        assert await drain(fast) == fast_share(sent + 1)


@pytest.mark.parametrize("nodrop", [False, True], ids=["drop", "nodrop"])
async def test_a_batch_too_large_for_one_subscribers_ring_is_refused_before_any_is_written(
    nodrop,
):
    """Each subscriber's share of a batch is written with its own call; when
    one share can never fit a ring at once (the PUB's rings are 64 KiB),
    send_many raises MessageTooLarge and nobody got anything, not even the
    subscriber whose share was small and comes first."""
    endpoint = f"shm://ps-{os.getpid()}-{random.randrange(1 << 30)}"
    async with (
        shmsock.socket(PUB, nodrop=nodrop, ring_size=64 * 1024) as pub,
        shmsock.socket(SUB) as a_sub,
        shmsock.socket(SUB) as b_sub,
    ):
        pub.bind(endpoint)
        a_sub.subscribe(b"a")
        b_sub.subscribe(b"b")
        a_sub.connect(endpoint)
        b_sub.connect(endpoint)
        await wait_peers(pub, 2)
        batch = [b"a" + bytes(100)] + [b"b%03d" % i + bytes(1000) for i in range(80)]
        with pytest.raises(shmsock.MessageTooLarge):
            await pub.send_many(batch)
        with pytest.raises(shmsock.MessageTooLarge):
            pub.send_many_nowait(batch)
        assert await drain(a_sub) == []
        assert await drain(b_sub) == []
        # Smaller batches go.
        await pub.send_many(batch[:40])
        assert await drain(a_sub) == batch[:1]
        assert await drain(b_sub) == batch[1:40]
        await pub.send_many(batch[40:])
        assert await drain(b_sub) == batch[40:]


async def test_nodrop_send_resumes_when_the_slow_subscriber_reads(endpoint):
    async with (
        shmsock.socket(PUB, ring_size=64 * 1024) as pub,
        shmsock.socket(SUB) as sub,
    ):
        pub.nodrop = True  # settable at any time
        pub.bind(endpoint)
        sub.subscribe(b"")
        sub.connect(endpoint)
        await wait_peers(pub, 1)
        n = 500
        got: list[bytes] = []

        async def reader() -> None:
            while len(got) < n:
                got.append(await sub.recv())
                if len(got) % 100 == 0:
                    await trio.sleep(0.01)  # slower than the publisher

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            for i in range(n):
                await pub.send(b"%04d" % i + bytes(1000))
        assert [m[:4] for m in got] == [b"%04d" % i for i in range(n)]
        assert pub.stats()[endpoint].dropped == 0


async def test_conflate_keeps_only_the_latest_of_each_subscription(endpoint):
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB, conflate=True) as sub:
        pub.bind(endpoint)
        sub.subscribe(b"a")
        sub.subscribe(b"b")
        sub.connect(endpoint)
        await wait_peers(pub, 1)
        for i in range(100):
            await pub.send(b"a%d" % i)
            await pub.send(b"b%d" % i)
        await pub.send_multipart([b"a-multi", b"body"])
        await trio.testing.wait_all_tasks_blocked()
        assert await sub.recv() == b"b99"
        assert await sub.recv_multipart() == [b"a-multi", b"body"]
        assert await drain(sub) == []


async def test_sub_cannot_send_and_pub_cannot_receive():
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB) as sub:
        with pytest.raises(shmsock.StateError):
            await sub.send(b"x")
        with pytest.raises(shmsock.StateError):
            await pub.recv()


@pytest.mark.parametrize("binder", [SUB, XSUB, shmsock.PUSH, shmsock.PULL])
async def test_a_sub_that_connected_to_an_incompatible_type_says_so(binder):
    async with shmsock.socket(binder) as x, shmsock.socket(SUB) as sub:
        name = f"shm://incompat-{os.getpid()}-{random.randrange(1 << 30)}"
        x.bind(name)
        sub.subscribe(b"")
        sub.connect(name)
        with pytest.raises(shmsock.IncompatiblePeer), trio.fail_after(10):
            await sub.recv()


# -- XPUB / XSUB -----------------------------------------------------------------------


async def test_xpub_receives_each_new_topic_once_and_its_last_unsubscription(endpoint):
    async with (
        shmsock.socket(XPUB) as xpub,
        shmsock.socket(SUB) as s1,
        shmsock.socket(SUB) as s2,
    ):
        xpub.bind(endpoint)
        s1.subscribe(b"a")
        s1.connect(endpoint)
        assert await xpub.recv() == b"\x01a"
        s2.connect(endpoint)
        s2.subscribe(b"a")  # held already: not passed on
        s2.subscribe(b"b")
        assert await xpub.recv() == b"\x01b"
        s1.unsubscribe(b"a")  # s2 still holds it
        s2.unsubscribe(b"a")
        assert await xpub.recv() == b"\x00a"
        await s2.aclose()  # its b goes with it
        assert await xpub.recv() == b"\x00b"
        await xpub.send(b"b-nobody")
        await xpub.send(b"a-nobody")
        assert await drain(s1) == []


async def test_xsub_sends_subscriptions_upstream_and_receives_what_matches(endpoint):
    async with shmsock.socket(PUB) as pub, shmsock.socket(XSUB) as xsub:
        pub.bind(endpoint)
        xsub.connect(endpoint)
        await wait_peers(pub, 1)
        await wait_peers(xsub, 1)
        await xsub.send(b"\x01t")
        await trio.testing.wait_all_tasks_blocked()
        await pub.send(b"x")
        await pub.send(b"t1")
        assert await xsub.recv() == b"t1"
        await xsub.send(b"\x00t")
        await pub.send(b"t2")
        assert await drain(xsub) == []
        with pytest.raises(shmsock.MessageTooLarge):
            await xsub.send(b"\x01" + bytes(2000))


async def test_an_xsub_xpub_forwarder_passes_subscriptions_and_data(endpoint):
    upstream = endpoint + "-up"
    async with (
        shmsock.socket(PUB) as pub,
        shmsock.socket(XSUB) as xsub,
        shmsock.socket(XPUB) as xpub,
        shmsock.socket(SUB) as sub,
        trio.open_nursery() as nursery,
    ):
        pub.bind(upstream)
        xsub.connect(upstream)
        xpub.bind(endpoint)

        async def subscriptions() -> None:
            async for msg in xpub:
                await xsub.send(msg)

        async def data() -> None:
            while True:
                await xpub.send_multipart(await xsub.recv_multipart())

        nursery.start_soon(subscriptions)
        nursery.start_soon(data)
        await wait_peers(pub, 1)
        sub.subscribe(b"keep")
        sub.connect(endpoint)
        # The subscription reaches pub through the forwarder; then data flows.
        got: list[bytes] = []
        with trio.fail_after(10):
            while not got:
                await pub.send(b"drop")
                await pub.send(b"keep")
                await trio.sleep(0.001)
                got = await drain(sub)
        assert set(got) == {b"keep"}
        nursery.cancel_scope.cancel()


async def test_shmsock_proxy_is_an_xsub_xpub_forwarder(endpoint):
    upstream = endpoint + "-up"
    async with (
        shmsock.socket(PUB) as pub,
        shmsock.socket(XSUB) as xsub,
        shmsock.socket(XPUB) as xpub,
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
        got: list[list[bytes]] = []
        with trio.fail_after(10):
            while not got:
                await pub.send_multipart([b"drop", b"x"])
                await pub.send_multipart([b"keep", b"y"])
                await trio.sleep(0.001)
                got += take_now(sub)
        assert {tuple(m) for m in got} == {(b"keep", b"y")}
        # The subscription reached the publisher itself: it filters.
        assert [s.topics for s in pub.subscribers()] == [(b"keep",)]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "way", ["send", "send_nowait", "send_multipart", "send_many", "send_many_nowait"]
)
async def test_messages_larger_than_a_ring_reach_every_subscriber_whole_and_in_order(endpoint, way):
    """A PUB's message of 1 MiB or more (larger than its 64 KiB rings: on
    shm:// each frame above the inline limit goes through each subscriber's
    bulk region) reaches every matching subscriber whole, in order with the
    small ones, by every send form; a subscriber whose max_msg_size is smaller
    misses (and counts) only those, and one subscribed elsewhere gets nothing.
    Before, shm:// refused them with MessageTooLarge."""
    async with (
        shmsock.socket(PUB, ring_size=64 * 1024, max_msg_size=8 << 20) as pub,
        shmsock.socket(SUB) as everything,
        shmsock.socket(SUB, max_msg_size=2 << 20) as limited,
        shmsock.socket(SUB) as other,
    ):
        pub.bind(endpoint)
        everything.subscribe(b"")
        limited.subscribe(b"t")
        other.subscribe(b"other")
        for sub in (everything, limited, other):
            sub.connect(endpoint)
        await wait_peers(pub, 3)
        mib = os.urandom(1 << 20)
        messages = [b"t0", b"t1" + mib, b"t2", b"t3" + mib * 2, b"t4" + mib[:70000], b"t5"]
        got: list[bytes] = []
        got_limited: list[bytes] = []
        with trio.fail_after(30):
            if way == "send_many":
                await pub.send_many(messages)
            elif way == "send_many_nowait":
                pub.send_many_nowait(messages)
            if way.startswith("send_many"):
                got = await drain(everything)
                got_limited = await drain(limited)
            for m in messages if not way.startswith("send_many") else ():
                # Each message is read before the next goes: none is dropped.
                if way == "send":
                    await pub.send(m)
                elif way == "send_nowait":
                    pub.send_nowait(m)
                else:
                    await pub.send_multipart([m[:2], m[2:]])
                if way == "send_multipart":
                    got.append(b"".join(await everything.recv_multipart()))
                    got_limited += [b"".join(f) for f in await drain_multipart(limited)]
                else:
                    got.append(await everything.recv())
                    got_limited += await drain(limited)
        assert got == messages
        assert got_limited == [m for m in messages if len(m) <= 2 << 20]
        assert await drain(everything) == []
        assert await drain(limited) == []
        assert await drain(other) == []
        assert sorted(s.dropped for s in pub.subscribers()) == [0, 0, 1]
        # Over max_msg_size is still refused, with nothing sent.
        with pytest.raises(shmsock.MessageTooLarge):
            pub.send_nowait(bytes((8 << 20) + 1))


# -- statistics ------------------------------------------------------------------------


def total(sock: shmsock.Socket) -> shmsock.EndpointStats:
    out = shmsock.EndpointStats()
    for st in sock.stats().values():
        out.add(st)
    return out


@pytest.mark.parametrize("kinds", [(PUB, SUB), (XPUB, XSUB)], ids=["pub-sub", "xpub-xsub"])
@pytest.mark.parametrize("scheme", ["shm", "inproc", "tcp"])
async def test_subscriptions_are_not_counted_as_messages(scheme, kinds):
    """Subscription records are control, not messages: a publisher's
    ``messages_received`` and a subscriber's ``messages_sent`` stay 0 however
    many (un)subscriptions travel, on every transport."""
    pub_kind, sub_kind = kinds
    name = "tcp://127.0.0.1:0" if scheme == "tcp" else f"{scheme}://ps-{os.getpid()}-stats"
    async with shmsock.socket(pub_kind) as pub, shmsock.socket(sub_kind) as sub:

        def subscribe(topic: bytes) -> None:
            if sub_kind == SUB:
                sub.subscribe(topic)
            else:
                sub.send_nowait(b"\x01" + topic)

        def unsubscribe(topic: bytes) -> None:
            if sub_kind == SUB:
                sub.unsubscribe(topic)
            else:
                sub.send_nowait(b"\x00" + topic)

        subscribe(b"early")
        sub.connect(pub.bind(name))
        await wait_peers(pub, 1)
        for topic in (b"a", b"b", b"c"):
            subscribe(topic)
        unsubscribe(b"b")
        with trio.fail_after(10):
            if pub_kind == XPUB:
                heard = [await pub.recv() for _ in range(5)]
                assert heard == [b"\x01early", b"\x01a", b"\x01b", b"\x01c", b"\x00b"]
        # Until the publisher knows of "c" (libzmq's, over tcp://).
        await until_flowing(pub.send, sub.recv, b"c-probe")
        await pub.send(b"a-last")
        assert await sub.recv() == b"a-last"
        pub_stats, sub_stats = total(pub), total(sub)
        assert pub_stats.messages_received == 0
        assert pub_stats.bytes_received == 0
        assert sub_stats.messages_sent == 0
        assert sub_stats.bytes_sent == 0
        assert pub_stats.messages_sent >= 2  # the probes that went, and a-last
        if scheme == "tcp":
            # libzmq's PUB drops what it was handed before it heard of "c"
            # (it counts as sent: libzmq took it).
            assert 2 <= sub_stats.messages_received <= pub_stats.messages_sent
        else:
            assert sub_stats.messages_received == pub_stats.messages_sent
