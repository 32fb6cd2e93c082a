"""The conformance suite every socket type runs on every scheme.

``tests/conformance/test_conformance.py`` subclasses :class:`Conformance`
(all types) and, for types that can have several messages in flight,
:class:`Pipelined`, setting ``link`` to a :func:`link_factory`: an async
context manager factory that, given a scheme, yields a :class:`Link`, a
connected pair of sockets where ``link.tx`` sends what ``link.rx``
receives.  Each test runs once per scheme in :data:`SCHEMES`.  The suite
checks the promises of the socket API that depend neither on routing nor
on the transport: Trio's checkpoint and cancellation rules, closing,
nowait variants, iteration, and that nothing is left behind.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio
import trio.testing

import shmsock
from shmsock import SocketType

SCHEMES = ("shm", "inproc", "tcp")


class Link:
    """Two connected sockets: ``tx`` sends to ``rx``."""

    def __init__(self, tx: shmsock.Socket, rx: shmsock.Socket) -> None:
        self.tx = tx
        self.rx = rx

    async def roundtrip_ready(self) -> None:
        """Wait until a message from tx reaches rx (the link is attached)."""
        await self.tx.send(b"warm-up")
        assert await self.rx.recv() == b"warm-up"
        await self.after_exchange()

    async def after_exchange(self) -> None:
        """Restore the sockets' state after one tx->rx message (REQ/REP)."""


def link_factory(
    tx_kind: SocketType,
    rx_kind: SocketType,
    *,
    tx_binds: bool,
    link_cls: type[Link] = Link,
    prepare: Callable[[shmsock.Socket, shmsock.Socket], None] | None = None,
    **options: object,
) -> Callable[[str], AbstractAsyncContextManager[Link]]:
    """A link of these types; *prepare(tx, rx)* runs before either binds or connects."""

    @asynccontextmanager
    async def make(scheme: str) -> AsyncIterator[Link]:
        if scheme == "tcp":
            name = "tcp://127.0.0.1:0"  # a port from the OS: bind says which
        else:
            name = f"{scheme}://conf-{os.getpid()}-{random.randrange(1 << 30)}"
        async with (
            shmsock.socket(tx_kind, **options) as tx,
            shmsock.socket(rx_kind, **options) as rx,
        ):
            if prepare is not None:
                prepare(tx, rx)
            if tx_binds:
                rx.connect(tx.bind(name))
            else:
                tx.connect(rx.bind(name))
            link = link_cls(tx, rx)
            await link.roundtrip_ready()
            yield link

    return make


async def wait_peers(sock: shmsock.Socket, count: int) -> None:
    """Wait (at most 10 s) until *sock* has *count* attached live connections."""
    with trio.fail_after(10):
        await sock.wait_peers(count)


def damage_consumer_position(ring: memoryview) -> None:
    """Set the ring header's ``head`` (offset 128) past ``tail`` (offset 64).

    A consumer position ahead of everything published is impossible: the
    producer's next look at it fails with SHM_EPOSITION (see
    docs/protocol.md, "Ring header").
    """
    tail = int.from_bytes(ring[64:72], "little")
    ring[128:136] = (tail + 64).to_bytes(8, "little")


def fill(tx: shmsock.Socket, message: bytes) -> int:
    """Send *message* with send_nowait until no ring takes it; return how many went."""
    sent = 0
    while True:
        try:
            tx.send_nowait(message)
        except trio.WouldBlock:
            return sent
        sent += 1


def take_now(rx: shmsock.Socket) -> list[list[bytes]]:
    """Every whole message *rx* has now, with recv_multipart_nowait, waiting for none."""
    got = []
    while True:
        try:
            got.append(rx.recv_multipart_nowait())
        except trio.WouldBlock:
            return got


async def cancel_a_loan(tx: shmsock.Socket, size: int) -> None:
    """Start a loan of *size*, write into it, and cancel the block: it must send nothing."""
    with trio.CancelScope() as cancelled:
        async with tx.loan(size) as buf:
            buf[:4] = b"lost"
            cancelled.cancel()
            await trio.lowlevel.checkpoint()
    assert cancelled.cancelled_caught


def fill_then_drain(tx: shmsock.Socket, rxs: list[shmsock.Socket], message: bytes) -> None:
    """Send *message* until every ring from *tx* is full, then read it all.

    The writer then believes its rings full, so its next write to each one
    reloads the consumer position from the ring header.  Every message must
    have the size of *message* for that to hold.
    """
    sent = fill(tx, message)
    read = 0
    for rx in rxs:
        while True:
            try:
                assert rx.recv_nowait() == message
            except trio.WouldBlock:
                break
            read += 1
    assert sent == read > 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_table() -> dict[int, str]:
    """Each open descriptor and what it refers to (a path, or "socket:[inode]")."""
    table = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            table[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            pass  # the listing's own descriptor, closed by now
    return table


def new_fds(before: dict[int, str]) -> dict[int, str]:
    """Descriptors opened since *before* was taken and still open.

    Descriptors that closed meanwhile do not count: libzmq closes those of
    sockets of earlier tests in its own thread, up to their linger later.
    A reused number that now refers to something else does count.
    """
    return {fd: what for fd, what in fd_table().items() if before.get(fd) != what}


def maps_count(under: str) -> int:
    """Mappings of files under *under*: the rings.  Anonymous mappings come
    and go with the allocator (a ring-sized read buffer crosses malloc's
    mmap threshold), so they say nothing about what shmsock left mapped."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if under in line)


def strict(link: Link) -> None:
    """A schedule point on every call (schedule_every_us=0), for assert_checkpoints."""
    for end in (link.tx, link.rx):
        # (An enveloping wrapper passes reads on, but an assignment would
        # land on the wrapper itself: set it on the socket inside.)
        getattr(end, "_sock", end).schedule_every_us = 0


class Conformance:
    """Promises every socket type keeps, on every scheme."""

    link: Callable[[str], AbstractAsyncContextManager[Link]]
    scheme: str

    @pytest.fixture(autouse=True, params=SCHEMES)
    def _on_scheme(self, request: pytest.FixtureRequest) -> None:
        self.scheme = request.param

    def make_link(self) -> AbstractAsyncContextManager[Link]:
        return self.link(self.scheme)

    async def test_message_goes_through(self):
        async with self.make_link() as link:
            await link.tx.send(b"hello")
            assert await link.rx.recv() == b"hello"

    async def test_any_bytes_like_is_accepted(self):
        async with self.make_link() as link:
            await link.tx.send(bytearray(b"abc"))
            assert await link.rx.recv() == b"abc"
            await link.after_exchange()
            await link.tx.send(memoryview(b"xyz\x00" * 2).cast("H"))
            assert await link.rx.recv() == b"xyz\x00xyz\x00"
            await link.after_exchange()
            with pytest.raises(TypeError, match="bytes-like"):
                await link.tx.send("text")  # type: ignore[arg-type]

    async def test_recv_is_a_checkpoint_when_ready_and_when_waiting(self):
        async with self.make_link() as link:
            strict(link)
            await link.tx.send(b"x")
            await trio.testing.wait_all_tasks_blocked()
            with trio.testing.assert_checkpoints():
                assert await link.rx.recv() == b"x"
            await link.after_exchange()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link.tx.send, b"later")
                with trio.testing.assert_checkpoints():
                    assert await link.rx.recv() == b"later"

    async def test_send_is_a_checkpoint(self):
        async with self.make_link() as link:
            strict(link)
            with trio.testing.assert_checkpoints():
                await link.tx.send(b"x")
            assert await link.rx.recv() == b"x"

    async def test_multipart_methods_are_checkpoints(self):
        async with self.make_link() as link:
            strict(link)
            with trio.testing.assert_checkpoints():
                await link.tx.send_multipart([b"a", b"b"])
            with trio.testing.assert_checkpoints():
                assert await link.rx.recv_multipart() == [b"a", b"b"]

    async def test_aclose_is_a_checkpoint_even_when_already_closed(self):
        async with self.make_link() as link:
            with trio.testing.assert_checkpoints():
                await link.rx.aclose()
            with trio.testing.assert_checkpoints():
                await link.rx.aclose()

    async def test_cancelled_recv_consumes_nothing(self):
        async with self.make_link() as link:
            with trio.CancelScope() as cs:
                cs.cancel()
                await link.rx.recv()  # cancelled at its first checkpoint
            assert cs.cancelled_caught
            await self._cancel_blocked_recv(link)
            await link.tx.send(b"after")
            assert await link.rx.recv() == b"after"

    async def _cancel_blocked_recv(self, link: Link) -> None:
        with trio.move_on_after(0.05) as cs:
            await link.rx.recv()
        assert cs.cancelled_caught

    async def test_cancelled_send_at_first_checkpoint_sends_nothing(self):
        async with self.make_link() as link:
            with trio.CancelScope() as cs:
                cs.cancel()
                await link.tx.send(b"never")
            assert cs.cancelled_caught
            await link.tx.send(b"real")
            assert await link.rx.recv() == b"real"

    async def test_recv_nowait_raises_wouldblock(self):
        async with self.make_link() as link:
            with pytest.raises(trio.WouldBlock):
                link.rx.recv_nowait()
            await link.tx.send(b"now")
            for _ in range(100):  # the doorbell may need one trip of the poller
                try:
                    assert link.rx.recv_nowait() == b"now"
                    break
                except trio.WouldBlock:
                    await trio.sleep(0.001)
            else:
                pytest.fail("message never arrived")

    async def test_close_wakes_a_blocked_receiver(self):
        async with self.make_link() as link:

            async def blocked() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await link.rx.recv()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked)
                await trio.testing.wait_all_tasks_blocked()
                link.rx.close()

    async def test_closed_socket_refuses_everything(self):
        async with self.make_link() as link:
            await link.rx.aclose()
            assert link.rx.closed
            with pytest.raises(trio.ClosedResourceError):
                await link.rx.recv()
            with pytest.raises(trio.ClosedResourceError):
                link.rx.recv_nowait()
            with pytest.raises(trio.ClosedResourceError):
                link.rx.bind("shm://somewhere")
            with pytest.raises(trio.ClosedResourceError):
                link.rx.connect("shm://somewhere")
            link.rx.close()  # idempotent

    async def test_async_for_ends_when_the_socket_closes(self):
        async with self.make_link() as link:
            got = []
            first = trio.Event()

            async def consume() -> None:
                async for msg in link.rx:
                    got.append(msg)
                    await link.after_exchange()
                    first.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await link.tx.send(b"one")
                await first.wait()
                link.rx.close()
            assert got == [b"one"]

    async def test_body_exception_propagates_unwrapped(self):
        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            async with self.make_link():
                raise Boom

    async def test_leaving_the_block_releases_descriptors_mappings_and_files(self, userdir):
        async with self.make_link():
            pass  # warm up imports and lazily created objects
        fds, maps = fd_table(), maps_count(str(userdir))
        for _ in range(5):
            async with self.make_link() as link:
                await link.tx.send(b"x")
                assert await link.rx.recv() == b"x"
                if self.scheme == "shm":
                    assert maps_count(str(userdir)) > maps  # the rings are counted
                await link.after_exchange()
        if self.scheme == "tcp":
            # libzmq closes a socket's descriptors in its own thread, a
            # moment after close() returns.
            for _ in range(300):
                if not new_fds(fds):
                    break
                await trio.sleep(0.01)
        assert new_fds(fds) == {}
        assert maps_count(str(userdir)) == maps
        if self.scheme == "shm":
            assert os.listdir(userdir) == []
        else:  # inproc and tcp never create the directory
            assert not os.path.exists(userdir)  # noqa: ASYNC240


class Pipelined(Conformance):
    """Promises of socket types that carry a stream of messages."""

    async def test_order_and_exactly_once(self):
        async with self.make_link() as link:
            msgs = [os.urandom(random.randrange(0, 3000)) for _ in range(2000)]

            async def produce() -> None:
                for m in msgs:
                    await link.tx.send(m)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                got = [await link.rx.recv() for _ in msgs]
            assert got == msgs

    async def test_send_blocks_when_the_ring_is_full_then_resumes(self):
        async with self.make_link() as link:
            payload = bytes(1000)
            sent = 0
            with trio.move_on_after(0.2):
                while True:
                    await link.tx.send(payload)
                    sent += 1
            # The ring filled and send waited: a 1000-byte record takes 1 KiB.
            # (Over tcp://, libzmq's queues and the kernel's buffers fill.)
            assert sent > 0
            if self.scheme != "tcp":
                assert sent <= link.tx.ring_size // 1024
            for _ in range(sent):
                assert await link.rx.recv() == payload
            await link.tx.send(b"more")
            assert await link.rx.recv() == b"more"

    async def test_cancelled_blocked_send_sends_nothing(self):
        async with self.make_link() as link:
            n = 0
            if self.scheme != "tcp":
                while True:
                    try:
                        link.tx.send_nowait(b"%d" % n)
                        n += 1
                    except trio.WouldBlock:
                        break
                with trio.move_on_after(0.05) as cs:
                    await link.tx.send(b"cancelled")
                assert cs.cancelled_caught
            else:
                # libzmq's threads go on making room (into the kernel's
                # buffers) for a while after a send_nowait says WouldBlock:
                # send until a send has waited 50 ms for room, and is
                # cancelled.  Large messages fill the buffers sooner.
                while True:
                    with trio.move_on_after(0.05) as cs:
                        await link.tx.send((b"%d" % n).ljust(16 << 10))
                    if cs.cancelled_caught:
                        break
                    n += 1
            got = [(await link.rx.recv()).rstrip() for _ in range(n)]
            assert got == [b"%d" % i for i in range(n)]
            with pytest.raises(trio.WouldBlock):
                link.rx.recv_nowait()

    async def test_cancellation_at_random_points_loses_and_duplicates_nothing(self):
        rnd = random.Random(7)
        async with self.make_link() as link:
            sent: list[bytes] = []
            got: list[bytes] = []

            async def producer() -> None:
                i = 0
                while i < 3000:
                    with trio.move_on_after(rnd.random() * 0.002):
                        await link.tx.send(b"%d" % i)
                        sent.append(b"%d" % i)
                        i += 1

            async def consumer() -> None:
                while len(got) < 3000:
                    with trio.move_on_after(rnd.random() * 0.002):
                        got.append(await link.rx.recv())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer)
                nursery.start_soon(consumer)
            assert got == sent == [b"%d" % i for i in range(3000)]

    async def test_two_receiving_tasks_share_the_messages(self):
        async with self.make_link() as link:
            got: list[bytes] = []

            async def receiver() -> None:
                while True:
                    msg = await link.rx.recv()
                    if msg == b"stop":
                        return
                    got.append(msg)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                nursery.start_soon(receiver)
                for i in range(500):
                    await link.tx.send(b"%d" % i)
                await link.tx.send(b"stop")
                await link.tx.send(b"stop")
            assert sorted(got, key=int) == [b"%d" % i for i in range(500)]

    async def test_batch_methods(self):
        async with self.make_link() as link:
            strict(link)
            with trio.testing.assert_checkpoints():
                await link.tx.send_many([b"a", b"b", b"c"])
            with trio.testing.assert_checkpoints():
                got = await link.rx.recv_many(10)
            while len(got) < 3:
                got += await link.rx.recv_many(10)
            assert got == [b"a", b"b", b"c"]
            await link.tx.send_many([b"%d" % i for i in range(100)])
            first = await link.rx.recv_many(30)
            assert 1 <= len(first) <= 30
            rest = []
            while len(first) + len(rest) < 100:
                rest += await link.rx.recv_many(1000)
            assert first + rest == [b"%d" % i for i in range(100)]

    async def test_multipart_is_not_returned_by_recv(self):
        async with self.make_link() as link:
            await link.tx.send_multipart([b"head", b"body"])
            await link.tx.send(b"plain")
            with pytest.raises(shmsock.MultipartMessage):
                await link.rx.recv()
            assert await link.rx.recv_multipart() == [b"head", b"body"]
            assert await link.rx.recv_multipart() == [b"plain"]
