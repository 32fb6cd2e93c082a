"""Socket options: validation, defaults, read-only exposure, and their effects."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing
from helpers import seam
from helpers.conformance import wait_peers

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
            s.type = shmsock.PULL  # type: ignore[misc]


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
        assert seam.connections(a)[0].tx.capacity == 8 * KiB
        assert seam.connections(a)[0].rx.capacity == 64 * KiB
        assert seam.connections(b)[0].tx.capacity == 64 * KiB


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
            assert seam.connections(push)[0].rx.capacity == 4 * KiB
            assert seam.connections(push)[0].tx.capacity == 64 * KiB
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
        with trio.fail_after(30):
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
            with trio.fail_after(30):
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
        with trio.fail_after(30):
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


# -- options as pyzmq spells them: setsockopt, getsockopt, attributes ----------

# (option, value given, value in force)
SETTABLE = [
    ("ring_size", 5000, 8192),
    ("max_msg_size", 1000, 1000),
    ("spin_us", 50, 50),
    ("checksum", False, False),
    ("linger", 0, 0.0),
    ("linger", None, None),
    ("linger", 2.5, 2.5),
]


def _spellings(name: str) -> list[object]:
    """Every way to name an option: the constant, its name in either case."""
    return [getattr(shmsock, name.upper()), name, name.upper()]


@pytest.mark.parametrize(("name", "given", "expected"), SETTABLE)
def test_each_option_by_attribute_setsockopt_and_getsockopt(name, given, expected):
    for spelling in _spellings(name):
        s = shmsock.socket(PUSH)
        s.setsockopt(spelling, given)
        for read in _spellings(name):
            assert s.getsockopt(read) == expected
        assert getattr(s, name) == expected
    s = shmsock.socket(PUSH)
    setattr(s, name, given)
    assert s.getsockopt(name) == expected
    assert getattr(s, name) == expected


def test_the_option_constants_are_their_names():
    assert [shmsock.RING_SIZE, shmsock.MAX_MSG_SIZE, shmsock.SPIN_US] == [
        "ring_size",
        "max_msg_size",
        "spin_us",
    ]
    assert shmsock.CHECKSUM == "checksum" and shmsock.LINGER == "linger"
    assert all(isinstance(c, shmsock.SocketOption) for c in shmsock.SocketOption)
    # pyzmq's options that shmsock does not have get no constant.
    for missing in ("RCVTIMEO", "SNDTIMEO", "SNDHWM", "RCVHWM", "HWM", "IDENTITY"):
        assert not hasattr(shmsock, missing)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("rcvtimeo", r"trio\.fail_after.*trio\.move_on_after.*recv takes nothing"),
        ("RCVTIMEO", r"trio\.fail_after"),
        ("sndtimeo", r"trio\.fail_after.*send sends nothing"),
        ("hwm", "set ring_size, in bytes.*sndhwm and rcvhwm"),
        ("maxmsgsize", "max_msg_size"),
        ("identity", "called routing_id"),
        ("subscribe", r"only a SUB socket subscribes \(sub\.subscribe\(topic\)\)"),
        ("ring_sise", "unknown option 'ring_sise'; the options are ring_size, max_msg_size"),
    ],
)
async def test_an_option_shmsock_lacks_says_what_to_do_instead(name, words):
    async with shmsock.socket(PULL) as s:
        with pytest.raises(ValueError, match=words):
            s.setsockopt(name, 1000)
        with pytest.raises(ValueError, match=words):
            s.getsockopt(name)
        with pytest.raises(TypeError, match=words):
            shmsock.socket(PULL, **{name: 1000})
        assert s.linger == 1.0 and s.ring_size == MiB  # nothing changed


@pytest.mark.parametrize("name", ["rcvtimeo", "sndtimeo", "hwm", "identity"])
def test_pyzmq_attribute_style_for_an_option_shmsock_lacks_raises(name):
    # pyzmq's `sock.rcvtimeo = 1000` must not quietly set a plain attribute.
    s = shmsock.socket(PULL)
    with pytest.raises(AttributeError, match=f"no option '{name}'"):
        setattr(s, name, 1000)
    with pytest.raises(AttributeError, match=f"no option '{name}'"):
        getattr(s, name)
    assert not hasattr(s, name)


@pytest.mark.parametrize("name", [17, None, b"linger", 1.5])
def test_an_option_named_by_anything_but_a_str_is_a_type_error(name):
    # pyzmq's constants are numbers (zmq.LINGER is 17, in milliseconds).
    s = shmsock.socket(PULL)
    with pytest.raises(TypeError, match=r"shmsock\.LINGER"):
        s.setsockopt(name, 0)
    with pytest.raises(TypeError, match=r"shmsock\.LINGER"):
        s.getsockopt(name)


@pytest.mark.parametrize(
    ("name", "value", "error", "words"),
    [
        ("ring_size", "big", TypeError, "ring_size must be an int"),
        ("ring_size", 4096.0, TypeError, "ring_size must be an int"),
        ("ring_size", 0, ValueError, "ring_size must be from 1 to 67108864"),
        ("max_msg_size", -1, ValueError, "max_msg_size must be from 0"),
        ("spin_us", -5, ValueError, "spin_us must be from 0 to 1000000"),
        ("spin_us", True, TypeError, "spin_us"),
        ("checksum", 1, TypeError, "checksum must be True or False"),
        ("linger", -1, ValueError, "linger must be None or >= 0"),
        ("linger", math.nan, ValueError, "linger"),
        ("linger", "1s", TypeError, "linger must be None or a number"),
    ],
)
def test_a_bad_value_is_refused_in_both_spellings_and_changes_nothing(name, value, error, words):
    s = shmsock.socket(PUSH)
    before = s.getsockopt(name)
    with pytest.raises(error, match=words):
        s.setsockopt(name, value)
    with pytest.raises(error, match=words):
        setattr(s, name, value)
    assert s.getsockopt(name) == before


@pytest.mark.parametrize("attach", ["bind", "connect"])
async def test_ring_size_and_max_msg_size_are_fixed_once_bound_or_connected(attach):
    async with shmsock.socket(PUSH, ring_size=8 * KiB) as s:
        s.ring_size = 16 * KiB  # before: allowed
        getattr(s, attach)("shm://fixed")
        for name, value in (("ring_size", 64 * KiB), ("max_msg_size", 100)):
            with pytest.raises(shmsock.StateError, match=f"{name} cannot change once the socket"):
                s.setsockopt(name, value)
            with pytest.raises(shmsock.StateError, match="before the first bind or connect"):
                setattr(s, name, value)
        assert s.ring_size == 16 * KiB and s.max_msg_size == 64 * MiB
        # The others change at any time.
        s.linger, s.spin_us, s.checksum = 0, 10, False
        assert (s.linger, s.spin_us, s.checksum) == (0.0, 10, False)
        if attach == "bind":
            s.unbind("shm://fixed")
        else:
            s.disconnect("shm://fixed")
        with pytest.raises(shmsock.StateError):  # fixed for good, not while attached
            s.ring_size = 4 * KiB


async def test_options_of_a_closed_socket_can_be_read_not_set():
    s = shmsock.socket(PUSH, linger=0)
    await s.aclose()
    assert s.getsockopt(shmsock.LINGER) == 0.0 and s.linger == 0.0
    with pytest.raises(trio.ClosedResourceError):
        s.setsockopt(shmsock.LINGER, 1)
    with pytest.raises(trio.ClosedResourceError):
        s.spin_us = 5


async def test_a_ring_size_set_before_bind_sizes_the_rings_and_the_send_limits():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.ring_size = 4 * KiB
        b.setsockopt(shmsock.RING_SIZE, 64 * KiB)
        a.bind("shm://setsize")
        b.connect("shm://setsize")
        await wait_peers(a, 1)
        await wait_peers(b, 1)
        assert seam.connections(a)[0].tx.capacity == 4 * KiB
        assert seam.connections(b)[0].tx.capacity == 64 * KiB
        # What a ring takes inline follows its size (a record at most half
        # of it); larger frames go through the bulk region, on either ring.
        assert seam.connections(a)[0].home.framing.inline_max == 4 * KiB // 2 - 24
        assert seam.connections(b)[0].home.framing.inline_max == 64 * KiB // 2 - 24
        # What send_nowait can write at once follows the new size too: the
        # records of a message at most half the ring.
        with pytest.raises(shmsock.MessageTooLarge, match="half the ring"):
            a.send_multipart_nowait([b"x"] * 70)
        b.send_multipart_nowait([b"x"] * 70)
        assert await a.recv_multipart() == [b"x"] * 70
        a.send_nowait(b"y" * 3000)  # through the bulk region of the small ring
        assert await b.recv() == b"y" * 3000


async def test_a_max_msg_size_set_before_connect_holds_on_every_send_path():
    # The plain send_nowait path reads a limit computed ahead (_plain_limit):
    # setting the option must recompute it.
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        push.max_msg_size = 10
        pull.setsockopt("MAX_MSG_SIZE", 10)
        pull.bind("shm://setmax")
        push.connect("shm://setmax")
        await wait_peers(push, 1)
        push.send_nowait(b"0123456789")
        with pytest.raises(shmsock.MessageTooLarge, match="max_msg_size 10"):
            push.send_nowait(b"0123456789A")
        with pytest.raises(shmsock.MessageTooLarge, match="max_msg_size 10"):
            push.send_many_nowait([b"0123456789A"])
        with pytest.raises(shmsock.MessageTooLarge):
            await push.send(b"0123456789A")
        assert await pull.recv() == b"0123456789"


async def test_checksum_changes_on_a_live_connection_from_the_next_record():
    # A byte flipped in the ring after the write: delivered as it is when the
    # record carries no CRC, refused when it carries one.
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://crcswitch")
        b.connect("shm://crcswitch")
        await wait_peers(a, 1)
        await wait_peers(b, 1)
        ring = seam.connections(a)[0].tx_seg.mm

        def flip(marker: bytes) -> None:
            at = ring.find(marker)
            assert at >= 0
            ring[at] ^= 0x20

        a.checksum = False
        a.send_nowait(b"mark-off")
        flip(b"mark-off")
        assert await b.recv() == b"Mark-off"
        a.setsockopt(shmsock.CHECKSUM, True)
        a.send_nowait(b"mark-on")
        flip(b"mark-on")
        with pytest.raises(shmsock.CorruptMessage):
            await b.recv()


async def test_spin_us_changed_while_a_receive_waits_never_loses_a_wakeup():
    # A spinning receive looks at the rings without announcing its wait;
    # its spin announces it.  Here spin_us drops to 0 while it is parked,
    # and a second peer attaching wakes it without a message: it looks at
    # the new peer's ring without announcing, so its next wait must still
    # spin, or that peer's message would be written with no doorbell and
    # never noticed.
    async with (
        shmsock.socket(PULL, spin_us=2000) as pull,
        shmsock.socket(PUSH) as first,
        shmsock.socket(PUSH) as second,
    ):
        pull.bind("shm://spinchange")
        first.connect("shm://spinchange")
        await wait_peers(pull, 1)
        got: list[bytes] = []
        received = trio.Event()
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await pull.recv())
                received.set()

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            pull.spin_us = 0
            second.connect("shm://spinchange")
            await wait_peers(pull, 2)
            await trio.testing.wait_all_tasks_blocked()
            await second.send(b"after the change")
            with trio.fail_after(30):
                await received.wait()
        assert got == [b"after the change"]


async def test_the_options_of_tcp_and_ipc_are_set_and_read_as_the_others():
    s = shmsock.socket(PUSH, sndhwm=10, heartbeat_ivl=0.5)
    assert s.sndhwm == 10 and s.getsockopt("HEARTBEAT_IVL") == 0.5
    s.sndhwm = 20
    s.setsockopt(shmsock.SocketOption.RECONNECT_IVL, None)
    s.setsockopt("curve_serverkey", "x" * 40)
    assert s.getsockopt("sndhwm") == 20 and s.reconnect_ivl is None
    assert s.curve_serverkey == b"x" * 40 and s.immediate is True and s.heartbeat_timeout == 3.0
    with pytest.raises(ValueError, match=r"heartbeat_ttl must be from 0 to 6553\.5"):
        s.heartbeat_ttl = 7000
    with pytest.raises(TypeError, match="curve_clients must be None or a collection"):
        shmsock.socket(PUSH, curve_clients="x" * 40)
    await s.aclose()
