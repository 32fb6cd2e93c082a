"""Socket options: validation, defaults, read-only exposure, and their effects."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing
from conformance import wait_peers

import shmsock
from shmsock import PAIR, PULL, PUSH

KiB, MiB = 1024, 1 << 20


async def test_defaults_are_documented_values():
    async with shmsock.socket(PUSH) as s:
        assert s.ring_size == MiB
        assert s.max_msg_size == 64 * MiB
        assert s.spin_us == 0
        assert s.checksum is True
        assert s.linger == 1.0
        assert s.type is shmsock.PUSH
        with pytest.raises(AttributeError):
            s.ring_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1, 4 * KiB),
        (4096, 4096),
        (5000, 8192),
        (65536, 65536),
        (65537, 131072),
        (MiB + 1, 2 * MiB),
        (64 * MiB, 64 * MiB),
    ],
)
async def test_ring_size_is_rounded_up_to_a_power_of_two(given, expected):
    async with shmsock.socket(PUSH, ring_size=given) as s:
        assert s.ring_size == expected


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"ring_sise": 4096}, TypeError, "unknown option 'ring_sise'"),
        ({"ring_size": "big"}, TypeError, "ring_size must be an int"),
        ({"ring_size": 4096.0}, TypeError, "ring_size must be an int"),
        ({"ring_size": True}, TypeError, "ring_size"),
        ({"ring_size": 0}, ValueError, "ring_size must be from 1 to 67108864"),
        ({"ring_size": 64 * MiB + 1}, ValueError, "ring_size must be from 1 to 67108864"),
        ({"max_msg_size": -1}, ValueError, "max_msg_size must be from 0"),
        ({"max_msg_size": 1 << 41}, ValueError, "max_msg_size"),
        ({"spin_us": -5}, ValueError, "spin_us must be from 0 to 1000000"),
        ({"spin_us": 1.5}, TypeError, "spin_us"),
        ({"checksum": 1}, TypeError, "checksum must be True or False"),
        ({"linger": -1}, ValueError, "linger must be None or >= 0"),
        ({"linger": math.nan}, ValueError, "linger"),
        ({"linger": "1s"}, TypeError, "linger must be None or a number"),
    ],
)
def test_bad_options_name_the_option_and_the_range(options, error, words):
    with pytest.raises(error, match=words):
        shmsock.socket(PUSH, **options)


def test_unknown_socket_type():
    with pytest.raises(ValueError, match="unknown socket type"):
        shmsock.socket(99)  # type: ignore[arg-type]


async def test_each_side_sizes_the_ring_it_writes():
    async with (
        shmsock.socket(PAIR, ring_size=8 * KiB) as a,
        shmsock.socket(PAIR, ring_size=64 * KiB) as b,
    ):
        a.bind("shm://sizes")
        b.connect("shm://sizes")
        await wait_peers(a, 1)
        await wait_peers(b, 1)
        assert a._engine.peers[0].tx.capacity == 8 * KiB
        assert a._engine.peers[0].rx.capacity == 64 * KiB
        assert b._engine.peers[0].tx.capacity == 64 * KiB


async def test_a_pull_socket_writes_rings_of_the_smallest_size():
    # A PULL never writes a message, so a large ring_size would only waste
    # shared memory, on the binding side and the connecting side alike.
    async with (
        shmsock.socket(PULL, ring_size=MiB) as bound,
        shmsock.socket(PULL, ring_size=MiB) as connecting,
        shmsock.socket(PUSH, ring_size=64 * KiB) as a,
        shmsock.socket(PUSH, ring_size=64 * KiB) as b,
    ):
        bound.bind("shm://pullring")
        a.connect("shm://pullring")
        b.bind("shm://pushring")
        connecting.connect("shm://pushring")
        for push in (a, b):
            await wait_peers(push, 1)
            assert push._engine.peers[0].rx.capacity == 4 * KiB
            assert push._engine.peers[0].tx.capacity == 64 * KiB
        batch = [b"%d" % i * 300 for i in range(60)]  # 60 KiB, far more than 4 KiB
        await a.send_many(batch)
        got: list[bytes] = []
        with trio.fail_after(10):
            while len(got) < len(batch):
                got += await bound.recv_many(100)
        assert got == batch


async def test_checksum_off_still_delivers():
    async with (
        shmsock.socket(PAIR, checksum=False) as a,
        shmsock.socket(PAIR) as b,
    ):
        a.bind("shm://nocrc")
        b.connect("shm://nocrc")
        await a.send(b"raw speed")
        assert await b.recv() == b"raw speed"
        await b.send(b"checked")
        assert await a.recv() == b"checked"


async def test_spin_receiver_gets_messages():
    async with shmsock.socket(PAIR, spin_us=200) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://spin")
        b.connect("shm://spin")
        for i in range(200):
            await b.send(b"%d" % i)
            assert await a.recv() == b"%d" % i
        async with trio.open_nursery() as nursery:  # and parks when spinning finds nothing
            nursery.start_soon(b.send, b"late")
            assert await a.recv() == b"late"


async def test_linger_zero_closes_at_once_and_the_peer_still_reads_everything():
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://l0")
        async with shmsock.socket(PUSH, linger=0) as push:
            push.connect("shm://l0")
            await push.send(b"read")
            assert await pull.recv() == b"read"
            for i in range(10):
                await push.send(b"%d" % i)
        # Closed before anything was read: nothing was taken back.
        with trio.fail_after(5):
            assert [await pull.recv() for _ in range(10)] == [b"%d" % i for i in range(10)]


async def test_linger_none_waits_until_the_peer_has_read_everything():
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://lnone")
        closed = trio.Event()

        async def sender():
            async with shmsock.socket(PUSH, linger=None) as push:
                push.connect("shm://lnone")
                for i in range(50):
                    await push.send(b"%d" % i)
            closed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            with trio.move_on_after(0.3):
                await closed.wait()
            assert not closed.is_set()  # still waiting: nothing was read
            got = [await pull.recv() for _ in range(50)]  # the first read drains the ring
            with trio.fail_after(5):
                await closed.wait()
        assert got == [b"%d" % i for i in range(50)]


async def test_linger_seconds_waits_then_closes_leaving_what_is_unread_readable():
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://lsec")
        async with shmsock.socket(PUSH, linger=0.1) as push:
            push.connect("shm://lsec")
            await push.send(b"one")
            assert await pull.recv() == b"one"
            await push.send(b"two")
            start = trio.current_time()
        assert trio.current_time() - start >= 0.1  # it waited for the whole linger
        with trio.fail_after(5):
            assert await pull.recv() == b"two"  # and took nothing back


async def test_cancelled_aclose_still_closes():
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://lc")
        async with shmsock.socket(PUSH, linger=None) as push:
            push.connect("shm://lc")
            await push.send(b"unread")
            with trio.move_on_after(0.05) as cs:
                await push.aclose()
            assert cs.cancelled_caught
            assert push.closed
