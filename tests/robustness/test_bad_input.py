"""Bad input from users: clear exceptions, and a socket that stays usable.

What a pyzmq user expects: messages are any bytes-like object (bytes,
bytearray, memoryview, array...), and a str is a TypeError; arguments of
the wrong type raise TypeError and out-of-range values ValueError; a closed
socket raises trio.ClosedResourceError from every method.  After a refused
call nothing was sent, and the socket goes on working.  Option validation
is covered in test_options.py and endpoint syntax in test_endpoints.py.
"""

from __future__ import annotations

import array
import mmap

import pytest
import trio
import trio.lowlevel
import trio.testing
from helpers.conformance import wait_peers

import shmsock
from shmsock import PAIR, PULL, PUSH, REQ

NOT_BYTES = ["text", 5, 1.5, None, [b"a"], {"a": 1}, object()]


async def _nothing_waiting(pull: shmsock.Socket) -> None:
    with pytest.raises(trio.WouldBlock):
        pull.recv_nowait()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(PUSH, PUSH), (8, PUSH), ("PULL", PULL), ("pair", PAIR), ("Req", REQ)],
)
async def test_socket_type_by_member_number_or_name(kind, expected):
    async with shmsock.socket(kind) as s:
        assert s.type is expected


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (None, TypeError),
        (8.0, TypeError),
        (True, TypeError),
        (b"PUSH", TypeError),
        ("STREAM", ValueError),
        (99, ValueError),
        (-1, ValueError),
    ],
)
def test_bad_socket_type_is_refused_at_once(kind, error):
    with pytest.raises(
        error, match="PUSH, PULL, PAIR, REQ, REP, PUB, SUB, DEALER, ROUTER, XPUB or XSUB"
    ):
        shmsock.socket(kind)


async def test_socket_must_be_entered_with_async_with():
    with pytest.raises(TypeError, match="async with"):
        await shmsock.socket(PUSH)  # type: ignore[misc]


@pytest.mark.parametrize("endpoint", [None, b"shm://x", 5, ["shm://x"]])
async def test_endpoint_of_the_wrong_type_then_a_good_one(endpoint):
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        with pytest.raises(TypeError, match="endpoint must be a str"):
            pull.bind(endpoint)
        with pytest.raises(TypeError, match="endpoint must be a str"):
            push.connect(endpoint)
        pull.bind("shm://typed")
        push.connect("shm://typed")
        await push.send(b"fine")
        assert await pull.recv() == b"fine"


@pytest.mark.parametrize("data", NOT_BYTES, ids=lambda d: type(d).__name__)
async def test_send_refuses_what_is_not_bytes_like_and_sends_nothing(data):
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://nb")
        push.connect("shm://nb")
        await wait_peers(push, 1)
        with pytest.raises(TypeError, match="bytes-like object, not"):
            await push.send(data)
        with pytest.raises(TypeError, match="bytes-like object, not"):
            push.send_nowait(data)
        await _nothing_waiting(pull)
        await push.send(b"after")
        assert await pull.recv() == b"after"


def _bytes_likes() -> list[object]:
    buf = mmap.mmap(-1, 16)
    buf.write(b"from an mmap....")
    return [
        b"bytes",
        bytearray(b"bytearray"),
        memoryview(b"memoryview"),
        memoryview(b"0123456789")[::3],  # strided: not contiguous
        array.array("i", [1, 2, 3]),
        memoryview(array.array("d", [0.5, 2.0])).cast("B").cast("d"),
        buf,
        b"",
    ]


async def test_every_bytes_like_object_is_sent_as_its_bytes():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://bl")
        b.connect("shm://bl")
        for data in _bytes_likes():
            expected = memoryview(data).tobytes()  # type: ignore[arg-type]
            await a.send(data)  # type: ignore[arg-type]
            assert await b.recv() == expected
            a.send_nowait(data)  # type: ignore[arg-type]
            assert await b.recv() == expected
            await a.send_multipart([b"head", data])  # type: ignore[list-item]
            assert await b.recv_multipart() == [b"head", expected]
        await a.send_many(_bytes_likes())  # type: ignore[arg-type]
        got: list[bytes] = []
        while len(got) < len(_bytes_likes()):
            got += await b.recv_many(100)
        assert got == [memoryview(d).tobytes() for d in _bytes_likes()]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frames", "error", "words"),
    [
        (b"abc", TypeError, "list of bytes-like objects, not a bytes"),
        ("abc", TypeError, "list of bytes-like objects, not a str"),
        (None, TypeError, "not NoneType"),
        (5, TypeError, "not int"),
        ([b"a", "b"], TypeError, "bytes-like object, not str"),
        ([b"a", None], TypeError, "bytes-like object, not NoneType"),
        ([], ValueError, "at least one frame"),
    ],
)
async def test_bad_multipart_is_refused_whole(frames, error, words):
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://mp")
        push.connect("shm://mp")
        await wait_peers(push, 1)
        with pytest.raises(error, match=words):
            await push.send_multipart(frames)
        with pytest.raises(error, match=words):
            push.send_multipart_nowait(frames)
        await _nothing_waiting(pull)  # not even the good first frame
        await push.send_multipart(f for f in (b"a", b"generator"))
        assert await pull.recv_multipart() == [b"a", b"generator"]


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        (b"abc", "list of bytes-like objects, not a bytes"),
        ("abc", "list of bytes-like objects, not a str"),
        (None, "not NoneType"),
        (5, "not int"),
        ([b"a", "b"], "bytes-like object, not str"),
        ([b"a", 3], "bytes-like object, not int"),
    ],
)
async def test_bad_batch_is_refused_whole(messages, words):
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://batch")
        push.connect("shm://batch")
        await wait_peers(push, 1)
        with pytest.raises(TypeError, match=words):
            await push.send_many(messages)
        with pytest.raises(TypeError, match=words):
            push.send_many_nowait(messages)
        await _nothing_waiting(pull)
        await push.send_many([b"after"])
        assert await pull.recv_many() == [b"after"]


async def test_batch_from_a_generator_is_sent_once_whole_even_after_waiting():
    async with shmsock.socket(PUSH, ring_size=4096) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://gen")
        push.connect("shm://gen")
        await wait_peers(push, 1)
        n = 0
        while True:  # fill the ring, so that the batch has to wait
            try:
                push.send_nowait(b"%d" % n)
                n += 1
            except trio.WouldBlock:
                break
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push.send_many, (b"g%d" % i for i in range(5)))
            got: list[bytes] = []
            while len(got) < n + 5:
                got += await pull.recv_many()
        assert got == [b"%d" % i for i in range(n)] + [b"g%d" % i for i in range(5)]


async def test_batch_that_can_never_fit_says_why():
    async with shmsock.socket(PUSH, ring_size=4096) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://huge")
        push.connect("shm://huge")
        await wait_peers(push, 1)
        with pytest.raises(shmsock.MessageTooLarge, match="send smaller batches"):
            await push.send_many([bytes(1000)] * 10)
        await _nothing_waiting(pull)
        # More than half this ring: it goes through the bulk region, in a
        # batch as with send() (it could never be written before issue 22).
        push.send_many_nowait([bytes(3000)])
        await push.send(bytes(3000))
        assert await pull.recv() == bytes(3000)
        assert await pull.recv() == bytes(3000)
        await push.send_many([])  # an empty batch sends nothing
        await _nothing_waiting(pull)


@pytest.mark.parametrize(
    ("count", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        ("5", TypeError),
        (2.0, TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
async def test_recv_many_count_must_be_a_positive_int(count, error):
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://rm")
        push.connect("shm://rm")
        await push.send(b"kept")
        with pytest.raises(error, match="max_count must be"):
            await pull.recv_many(count)
        with pytest.raises(error, match="max_count must be"):
            pull.recv_many_nowait(count)
        assert await pull.recv_many(10**12) == [b"kept"]  # huge is fine: "up to"


@pytest.mark.parametrize(
    ("count", "error"), [(-1, ValueError), ("2", TypeError), (None, TypeError), (1.5, TypeError)]
)
async def test_wait_peers_count_must_be_an_int(count, error):
    async with shmsock.socket(PULL) as pull:
        with pytest.raises(error, match="count must be"):
            await pull.wait_peers(count)
        await pull.wait_peers(0)


async def test_operations_the_socket_type_does_not_have():
    async with shmsock.socket(PULL) as pull, shmsock.socket(REQ) as req:
        with pytest.raises(shmsock.StateError, match="cannot send"):
            await pull.send(b"x")
        with pytest.raises(shmsock.StateError, match="cannot send"):
            pull.send_many_nowait([b"x"])
        with pytest.raises(shmsock.StateError, match="one message at a time"):
            req.send_many_nowait([b"x"])
    async with shmsock.socket(PUSH) as push:
        with pytest.raises(shmsock.StateError, match="cannot receive"):
            await push.recv()
        with pytest.raises(shmsock.StateError, match="cannot receive"):
            push.recv_many_nowait()


def _calls(sock: shmsock.Socket):
    """Every public method of a socket, with valid arguments."""
    sync = {
        "bind": ("shm://c1",),
        "connect": ("shm://c2",),
        "send_nowait": (b"x",),
        "send_multipart_nowait": ([b"x"],),
        "send_many_nowait": ([b"x"],),
        "recv_nowait": (),
        "recv_multipart_nowait": (),
        "recv_many_nowait": (),
    }
    asynchronous = {
        "send": (b"x",),
        "send_multipart": ([b"x"],),
        "send_many": ([b"x"],),
        "recv": (),
        "recv_multipart": (),
        "recv_many": (),
        "wait_peers": (1,),
    }
    return sync, asynchronous


@pytest.mark.parametrize("how", ["close", "aclose"])
async def test_closed_socket_raises_closed_from_every_method(how):
    async with shmsock.socket(PAIR) as pair:
        pair.bind("shm://closed")
        if how == "close":
            pair.close()
        else:
            await pair.aclose()
        # Closing inside the block cancels nothing of the caller's.
        await trio.lowlevel.checkpoint()
        sync, asynchronous = _calls(pair)
        for name, args in sync.items():
            with pytest.raises(trio.ClosedResourceError):
                getattr(pair, name)(*args)
        for name, args in asynchronous.items():
            with pytest.raises(trio.ClosedResourceError):
                await getattr(pair, name)(*args)
        with pytest.raises(trio.ClosedResourceError):
            pair.bind("not even an endpoint")  # closed is said first
        assert [m async for m in pair] == []  # iteration just ends
        pair.close()
        await pair.aclose()
        assert pair.closed
    await trio.lowlevel.checkpoint()  # and leaving the block cancelled nothing either


async def test_close_from_another_task_wakes_it_with_closed_not_cancelled():
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://other-task")
        outcome = []

        async def receiver() -> None:
            try:
                await pull.recv()
            except trio.ClosedResourceError:
                outcome.append("closed")
            await trio.lowlevel.checkpoint()  # still running: not cancelled
            outcome.append("went on")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            pull.close()
        assert outcome == ["closed", "went on"]
