"""Every socket type and both link directions, on every scheme.

The promises themselves are in :mod:`helpers.conformance`; each class
here names a link (which types, which side binds, which options), and
each test runs once per scheme (``shm``, ``inproc``).  A later transport
adds its scheme to ``helpers.conformance.SCHEMES``; a later socket type
adds its links here.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from helpers.conformance import Conformance, Link, Pipelined, link_factory, wait_peers

import shmsock
from shmsock import DEALER, PAIR, PUB, PULL, PUSH, REP, REQ, ROUTER, SUB, XPUB, XSUB, SocketType


class ReqRepLink(Link):
    async def after_exchange(self) -> None:
        await self.rx.send(b"ack")
        assert await self.tx.recv() == b"ack"


class TestPushBinds(Pipelined):
    link = staticmethod(link_factory(PUSH, PULL, tx_binds=True))


class TestPullBinds(Pipelined):
    link = staticmethod(link_factory(PUSH, PULL, tx_binds=False))


class TestPairBinderSends(Pipelined):
    link = staticmethod(link_factory(PAIR, PAIR, tx_binds=True))


class TestPairConnectorSends(Pipelined):
    link = staticmethod(link_factory(PAIR, PAIR, tx_binds=False))


class TestPairSpinning(Pipelined):
    """With spin_us, a receive polls before it sleeps: the same promises hold."""

    link = staticmethod(link_factory(PAIR, PAIR, tx_binds=False, spin_us=200))


class TestRepBinds(Conformance):
    link = staticmethod(link_factory(REQ, REP, tx_binds=False, link_cls=ReqRepLink))


class TestReqBinds(Conformance):
    link = staticmethod(link_factory(REQ, REP, tx_binds=True, link_cls=ReqRepLink))


class TestReqRepSpinning(Conformance):
    link = staticmethod(link_factory(REQ, REP, tx_binds=False, link_cls=ReqRepLink, spin_us=200))


# -- PUB/SUB ---------------------------------------------------------------------------
# The SUB subscribes to everything before it connects, so its subscription
# travels with the connection: on shm:// and inproc://, once both sides are
# attached, the PUB's next message reaches it (docs/pubsub.md, "When a
# subscription takes effect").  Over tcp:// the publisher is libzmq's, with
# libzmq's slow joiner: it learns the subscription some time after the
# connection is made, and drops what it sends before, so the link is ready
# only once a warm-up message came through.  From then on every promise is
# the same on all three schemes, nodrop's waiting included (libzmq's
# XPUB_NODROP).


class PubSubLink(Link):
    async def roundtrip_ready(self) -> None:
        with trio.fail_after(10):
            await self.tx.wait_peers(1)
            await self.rx.wait_peers(1)
            if "tcp" in self.tx._hub.transports:
                await self._until_subscribed()
                return
        await super().roundtrip_ready()

    async def _until_subscribed(self) -> None:
        while True:
            await self.tx.send(b"warm-up")
            with trio.move_on_after(0.01):
                assert await self.rx.recv() == b"warm-up"
                break
        await self.tx.send(b"synced")
        while (msg := await self.rx.recv()) != b"synced":
            assert msg == b"warm-up"


def subscribe_to_everything(tx: shmsock.Socket, rx: shmsock.Socket) -> None:
    if rx.type == SUB:
        rx.subscribe(b"")
    else:
        rx.send_nowait(b"\x01")  # an XSUB subscribes by sending


def pubsub_factory(pub: SocketType, sub: SocketType, *, tx_binds: bool, **options: object):
    return link_factory(
        pub,
        sub,
        tx_binds=tx_binds,
        link_cls=PubSubLink,
        prepare=subscribe_to_everything,
        **options,
    )


class TestPubBindsSubConnects(Conformance):
    """The default PUB: a slow subscriber drops (the promises that do not fill a ring)."""

    link = staticmethod(pubsub_factory(PUB, SUB, tx_binds=True))


class _PubSubPipelined(Pipelined):
    async def test_batch_methods(self):
        """A publisher's batches and single sends arrive in order; a subscriber
        receives in batches."""
        async with self.make_link() as link:
            want = [b"%d" % i for i in range(300)]
            await link.tx.send_many(want[:100])
            for m in want[100:200]:
                await link.tx.send(m)
            link.tx.send_many_nowait(want[200:250])
            await link.tx.send_many(want[250:])
            await link.tx.send_many([])
            got: list[bytes] = []
            while len(got) < len(want):
                got += await link.rx.recv_many(1000)
            assert got == want


class TestSubBindsPubConnectsWithoutDropping(_PubSubPipelined):
    """With nodrop a PUB is pipelined as a PUSH: full rings make send wait."""

    link = staticmethod(pubsub_factory(PUB, SUB, tx_binds=False, nodrop=True))


class TestPubBindsSubConnectsWithoutDropping(_PubSubPipelined):
    link = staticmethod(pubsub_factory(PUB, SUB, tx_binds=True, nodrop=True))


class TestXPubXSub(_PubSubPipelined):
    link = staticmethod(pubsub_factory(XPUB, XSUB, tx_binds=True, nodrop=True))


# -- DEALER and ROUTER ---------------------------------------------------------------------


class Enveloped:
    """A socket seen through its envelope, so the suite's one-frame sends and receives apply.

    Sends put *head* in front of the frames; receives take the first
    *strip* frames off and keep them as the head of the next send (a
    ROUTER's routing id, a REQ's envelope), unless *fixed*.  Everything
    else is the socket's own.
    """

    def __init__(self, sock: shmsock.Socket, head: list[bytes], strip: int, fixed: bool) -> None:
        self._sock = sock
        self._head = head
        self._strip = strip
        self._fixed = fixed

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)

    def _cut(self, frames: list[bytes]) -> list[bytes]:
        head, rest = frames[: self._strip], frames[self._strip :]
        if self._fixed:
            assert head == self._head
        else:
            self._head = head
        return rest

    def _one(self, frames: list[bytes]) -> bytes:
        assert len(frames) == 1, frames
        return frames[0]

    async def send(self, data: bytes) -> None:
        await self._sock.send_multipart([*self._head, data])

    def send_nowait(self, data: bytes) -> None:
        self._sock.send_multipart_nowait([*self._head, data])

    async def send_multipart(self, frames: list[bytes]) -> None:
        await self._sock.send_multipart([*self._head, *frames])

    def send_multipart_nowait(self, frames: list[bytes]) -> None:
        self._sock.send_multipart_nowait([*self._head, *frames])

    async def recv(self) -> bytes:
        return self._one(self._cut(await self._sock.recv_multipart()))

    def recv_nowait(self) -> bytes:
        return self._one(self._cut(self._sock.recv_multipart_nowait()))

    async def recv_multipart(self) -> list[bytes]:
        return self._cut(await self._sock.recv_multipart())

    def recv_multipart_nowait(self) -> list[bytes]:
        return self._cut(self._sock.recv_multipart_nowait())

    def __aiter__(self) -> Enveloped:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None


def enveloped_link(
    tx_kind,
    rx_kind,
    *,
    tx_binds: bool,
    tx_env: tuple[list[bytes], int, bool] | None = None,
    rx_env: tuple[list[bytes], int, bool] | None = None,
    link_cls: type[Link] = Link,
    rx_options: dict | None = None,
):
    """As link_factory, with either socket seen through an :class:`Enveloped`."""

    @asynccontextmanager
    async def make(scheme: str) -> AsyncIterator[Link]:
        if scheme == "tcp":
            name = "tcp://127.0.0.1:0"  # a port from the OS: bind says which
        else:
            name = f"{scheme}://conf-{os.getpid()}-{random.randrange(1 << 30)}"
        async with (
            shmsock.socket(tx_kind) as tx,
            shmsock.socket(rx_kind, **(rx_options or {})) as rx,
        ):
            if tx_binds:
                rx.connect(tx.bind(name))
            else:
                tx.connect(rx.bind(name))
            await wait_peers(tx, 1)  # a ROUTER does not wait for a peer it is to name
            link = link_cls(
                tx if tx_env is None else Enveloped(tx, *tx_env),  # type: ignore[arg-type]
                rx if rx_env is None else Enveloped(rx, *rx_env),  # type: ignore[arg-type]
            )
            await link.roundtrip_ready()
            yield link

    return make


class RouterNoBatches:
    """A ROUTER sends and receives one enveloped message at a time."""

    async def test_batch_methods(self):
        async with self.make_link() as link:
            router = link.tx if link.tx.type == ROUTER else link.rx
            with pytest.raises(shmsock.StateError, match="one message at a time"):
                router.send_many_nowait([b"a"])
            with pytest.raises(shmsock.StateError, match="one message at a time"):
                router.recv_many_nowait(10)


class TestDealerToDealer(Pipelined):
    link = staticmethod(link_factory(DEALER, DEALER, tx_binds=True))


class TestDealerToDealerConnectorSends(Pipelined):
    link = staticmethod(link_factory(DEALER, DEALER, tx_binds=False))


class TestDealerToRouter(RouterNoBatches, Pipelined):
    # The ROUTER's routing id for the DEALER is learnt from the first message.
    link = staticmethod(enveloped_link(DEALER, ROUTER, tx_binds=False, rx_env=([], 1, False)))

    async def test_multipart_is_not_returned_by_recv(self):
        async with self.make_link() as link:
            await link.tx.send_multipart([b"head", b"body"])
            router = link.rx._sock
            with pytest.raises(shmsock.MultipartMessage):
                await router.recv()  # a ROUTER's message always has its id in front
            frames = await router.recv_multipart()
            assert frames == [*link.rx._head, b"head", b"body"]  # the id the warm-up came with


class TestRouterToDealer(RouterNoBatches, Pipelined):
    link = staticmethod(
        enveloped_link(
            ROUTER,
            DEALER,
            tx_binds=True,
            tx_env=([b"dealer"], 0, True),
            rx_options={"routing_id": b"dealer"},
        )
    )


class TestRouterToRouter(RouterNoBatches, Pipelined):
    link = staticmethod(
        enveloped_link(
            ROUTER,
            ROUTER,
            tx_binds=False,
            tx_env=([b"rx"], 0, True),
            rx_env=([], 1, False),
            rx_options={"routing_id": b"rx"},
        )
    )

    async def test_multipart_is_not_returned_by_recv(self):
        async with self.make_link() as link:
            await link.tx.send_multipart([b"head", b"body"])
            with pytest.raises(shmsock.MultipartMessage):
                await link.rx._sock.recv()
            assert (await link.rx.recv_multipart()) == [b"head", b"body"]


class TestDealerToRep(Conformance):
    """A DEALER writes libzmq's empty delimiter itself, and gets it back."""

    link = staticmethod(
        enveloped_link(DEALER, REP, tx_binds=False, tx_env=([b""], 1, True), link_cls=ReqRepLink)
    )


class TestReqToRouter(Conformance):
    """A ROUTER sees a REQ's envelope, [id, request id, b""], and answers by it."""

    link = staticmethod(
        enveloped_link(REQ, ROUTER, tx_binds=False, rx_env=([], 3, False), link_cls=ReqRepLink)
    )
