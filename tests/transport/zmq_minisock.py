"""A socket over the transport contract, small enough to read at a glance.

The tcp:// transport's tests drive real patterns over real pipes through
this, while the socket itself is being moved onto the contract (issue 19).
It does what the socket's hub, outbox and inbox do, in their order: the
pattern routes, the pipe writes or refuses, the ready queues follow the
transport's reports, and a task that met WouldBlock parks until an Events
call wakes it; one background task waits on the reactor's epoll set.  Its
methods have the socket's names, so the tests read as the socket's.
"""

from __future__ import annotations

from array import array
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from shmsock import SocketType
from shmsock._options import make_options
from shmsock._patterns import Dropped, Fanout, make_pattern
from shmsock._transport import Message, SocketSpec, load, scheme_of
from shmsock._transport._reactor import Reactor


class MiniSocket:
    def __init__(self, kind: SocketType, **options: Any) -> None:
        self.kind = kind
        self.pattern = make_pattern(kind)
        self.queues = self.pattern.queues
        p = type(self.pattern)
        self.spec = SocketSpec(
            kind=kind,
            options=make_options(**options),
            compatible=p.compatible,
            max_peers=p.max_peers,
            writes_data=p.writes_data,
            reads_data=p.reads_data,
            envelope=p.envelope,
        )
        self.reactor = Reactor()
        self.transports: dict[str, Any] = {}
        self.pipes: list[Any] = []
        self.finished_pipes: list[Any] = []
        self.lot = trio.lowlevel.ParkingLot()
        self.closed = False
        self.log: list[tuple[str, object]] = []
        self.last_endpoint: str | None = None

    # -- Events ---------------------------------------------------------------------

    def attached(self, pipe: Any) -> None:
        self.log.append(("attached", pipe))
        self.pipes.append(pipe)
        self.queues.want_send(pipe)
        self.queues.want_recv(pipe)
        self.pattern.attached(pipe)
        self.lot.unpark_all()

    def gone(self, pipe: Any) -> None:
        self.log.append(("gone", pipe))
        if pipe.readable:
            self.queues.want_recv(pipe)
        self.pattern.gone(pipe)
        self.lot.unpark_all()

    def finished(self, pipe: Any) -> None:
        self.log.append(("finished", pipe))
        self.finished_pipes.append(pipe)

    def ready(self, pipe: Any, recv: bool, send: bool) -> None:
        if recv:
            self.queues.want_recv(pipe)
        if send:
            self.queues.want_send(pipe)
        self.lot.unpark_all()

    def changed(self) -> None:
        self.log.append(("changed", None))
        self.lot.unpark_all()

    def control(self, pipe: Any, frames: list[bytes]) -> None:
        pass

    def call_later(self, seconds: float, fn: Any) -> None:  # pragma: no cover
        raise AssertionError("the zmq transport needs no timers")

    # -- endpoints ------------------------------------------------------------------

    def transport(self, endpoint: str) -> Any:
        scheme = scheme_of(endpoint)
        t = self.transports.get(scheme)
        if t is None:
            t = self.transports[scheme] = load(scheme)(self.spec, self, self.reactor)
        return t

    def bind(self, endpoint: str) -> str:
        got = self.transport(endpoint).bind(endpoint)
        self.last_endpoint = got or endpoint
        return self.last_endpoint

    def connect(self, endpoint: str) -> None:
        self.transport(endpoint).connect(endpoint)

    def unbind(self, endpoint: str) -> None:
        self.transport(endpoint).unbind(endpoint)
        self.pattern.detached()
        self.lot.unpark_all()

    def disconnect(self, endpoint: str) -> None:
        self.transport(endpoint).disconnect(endpoint)
        self.pattern.detached()
        self.lot.unpark_all()

    def poll(self) -> bool:
        got = self.reactor.poll()
        self.reap()
        return got

    def reap(self) -> None:
        while self.finished_pipes:
            pipe = self.finished_pipes.pop()
            if pipe in self.pipes:
                self.queues.remove(pipe)
                self.pipes.remove(pipe)
                pipe.retire()

    async def run(self) -> None:
        if self.closed:
            return
        fd = self.reactor.fileno()
        try:
            while not self.closed:
                await trio.lowlevel.wait_readable(fd)
                self.poll()
        except trio.ClosedResourceError:
            pass

    # -- sending --------------------------------------------------------------------

    def _nothing(self, no: Any) -> None:
        no(self.pipes)
        if not any(p.alive for p in self.pipes):
            for t in self.transports.values():
                t.check_usable()
        raise trio.WouldBlock

    def send_multipart_nowait(self, frames: Sequence[bytes]) -> None:
        if self.closed:
            raise trio.ClosedResourceError
        frames = [bytes(f) for f in frames]
        self.pattern.check_send()
        self._place(frames, self.pattern.send_aux())

    def _place(self, frames: list[bytes], aux: int) -> None:
        pattern = self.pattern
        polled = False
        while True:
            target = pattern.route()
            if target is None:
                if not polled and self.poll():
                    polled = True
                    continue
                self._nothing(pattern.no_target)
            if isinstance(target, Dropped):
                return
            assert not isinstance(target, Fanout)
            if target.offer(frames, aux):  # type: ignore[attr-defined]
                pattern.sent(target)
                return
            pattern.refused(target)

    def send_nowait(self, data: bytes) -> None:
        # The socket's fast path: the head of the send queue, try_write, rotate.
        send = self.queues.send
        if self.pattern.plain_send and send and not self.closed:
            pipe = send[0]
            if pipe.writable and type(data) is bytes and pipe.try_write(data, len(data)) >= 0:
                send.rotate(-1)
                return
        self.send_multipart_nowait([data])

    def send_many_nowait(self, messages: Sequence[bytes]) -> None:
        if self.closed:
            raise trio.ClosedResourceError
        self.pattern.check_send_many()
        data = b"".join(messages)
        lens = array("I", map(len, messages))
        pattern = self.pattern
        polled = False
        while True:
            target = pattern.route()
            if target is None:
                if not polled and self.poll():
                    polled = True
                    continue
                self._nothing(pattern.no_target)
            if target.offer_batch(data, lens):  # type: ignore[union-attr]
                pattern.sent(target)  # type: ignore[arg-type]
                return
            pattern.refused(target)  # type: ignore[arg-type]

    # -- receiving ------------------------------------------------------------------

    def recv_multipart_nowait(self) -> list[bytes]:
        if self.closed:
            raise trio.ClosedResourceError
        pattern = self.pattern
        pattern.check_recv()
        polled = False
        while True:
            got = pattern.next_message()
            if got is None:
                if not polled and self.poll():
                    polled = True
                    continue
                self.reap()
                self._nothing(pattern.no_message)
            pipe, item = got
            aux = item.aux if type(item) is Message else 0
            if not pattern.accept(pipe, aux):
                continue
            pattern.received(pipe, aux)
            self.reap()
            return list(item.frames) if type(item) is Message else [item]  # type: ignore[union-attr, list-item]

    def recv_nowait(self) -> bytes:
        # The socket's fast path: the head of the receive queue's inbox.
        recv = self.queues.recv
        if self.pattern.plain_recv and recv and not self.closed:
            inbox = recv[0].inbox
            if inbox and type(inbox[0]) is bytes:
                item: bytes = inbox.popleft()
                recv.rotate(-1)
                return item
        frames = self.recv_multipart_nowait()
        assert len(frames) == 1, frames
        return frames[0]

    def recv_many_nowait(self, max_count: int = 1000) -> list[bytes]:
        if self.closed:
            raise trio.ClosedResourceError
        pattern = self.pattern
        pattern.check_recv_many()
        got = pattern.next_batch(max_count)
        if got is None and self.poll():
            got = pattern.next_batch(max_count)
        self.reap()
        if got is None:
            self._nothing(pattern.no_message)
        _pipe, (items, _plain) = got  # type: ignore[misc]
        out = []
        for item in items:
            assert type(item) is bytes or len(item.frames) == 1
            out.append(item if type(item) is bytes else item.frames[0])
        return out

    # -- the Trio shape (_trio.retry) -------------------------------------------------

    async def _retry(self, op: Any, *args: Any, cancelled: Any = None) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        try:
            while True:
                try:
                    result = op(*args)
                except trio.WouldBlock:
                    await self.lot.park()
                    if self.closed:
                        raise trio.ClosedResourceError from None
                    waited = True
                    continue
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return result
        except trio.Cancelled:
            if cancelled is not None:
                cancelled()
            raise

    async def send(self, data: bytes) -> None:
        await self._retry(self.send_nowait, data)

    async def send_multipart(self, frames: Sequence[bytes]) -> None:
        await self._retry(self.send_multipart_nowait, frames)

    async def send_many(self, messages: Sequence[bytes]) -> None:
        await self._retry(self.send_many_nowait, messages)

    async def recv(self) -> bytes:
        return await self._retry(self.recv_nowait, cancelled=self.pattern.recv_cancelled)  # type: ignore[no-any-return]

    async def recv_multipart(self) -> list[bytes]:
        return await self._retry(  # type: ignore[no-any-return]
            self.recv_multipart_nowait, cancelled=self.pattern.recv_cancelled
        )

    async def recv_many(self, max_count: int = 1000) -> list[bytes]:
        return await self._retry(self.recv_many_nowait, max_count)  # type: ignore[no-any-return]

    async def wait_peers(self, count: int = 1) -> None:
        while sum(p.alive for p in self.pipes) < count:
            await self.lot.park()

    @property
    def peer_count(self) -> int:
        return sum(p.alive for p in self.pipes)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in self.transports.values():
            out.update(t.stats())
        return out

    async def linger(self, seconds: float | None) -> None:
        with trio.move_on_after(float("inf") if seconds is None else seconds):
            while True:
                waiting = [p for p in self.pipes if p.unread()]
                if not waiting:
                    return
                if all(p.prepare_drain() for p in waiting):
                    await self.lot.park()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for t in self.transports.values():
            t.close()
        self.pipes.clear()
        self.queues.clear()
        self.reactor.close()
        self.lot.unpark_all()

    async def aclose(self) -> None:
        await self.linger(self.spec.options.linger)
        self.close()


@asynccontextmanager
async def running(sock: MiniSocket) -> AsyncIterator[MiniSocket]:
    """``async with running(MiniSocket(...)) as s``: its background task runs in the block."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sock.run)
        try:
            yield sock
            await sock.aclose()
        finally:
            sock.close()
            nursery.cancel_scope.cancel()
