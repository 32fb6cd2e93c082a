"""One inproc connection: two queues of whole messages, and a pipe at each end.

See the package docstring for the rules; this file keeps them for one
connection.  A queue is the reader's ``inbox``: the writer appends to it and
the reader pops it, so the queue itself counts the bytes in it and wakes a
writer that was refused for room.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..._stats import EndpointStats
from .. import Events, Message, Queued, SocketSpec, WholeStream

if TYPE_CHECKING:
    from array import array

__all__ = ["FanWriter", "InprocPipe", "Owner", "connect_pipes", "count_pipe"]


class Owner(Protocol):
    """What a pipe needs of the transport that made it (``_transport``)."""

    spec: SocketSpec
    events: Events

    def retire(self, pipe: InprocPipe) -> None:
        """The socket is done with *pipe*: forget it, keeping its counts."""


def _size(item: Queued) -> int:
    if isinstance(item, Message):
        return sum(map(len, item.frames))
    return len(item)


def _charge(n: int) -> int:
    """What a frame of *n* bytes takes of a queue's budget.

    As much as a record takes of a shm:// ring (a 24-byte header, rounded
    up to 8), so that ``ring_size`` holds as many messages either way.
    """
    return (n + 31) & ~7


def _cost(item: Queued) -> int:
    if isinstance(item, Message):
        return sum(_charge(len(f)) for f in item.frames)
    return _charge(len(item))


def _refuse(data: bytes, n: int) -> int:
    return -1


class _Queue(deque[Queued]):
    """One direction of a connection: the reader's inbox, with its accounting.

    The reader's fast path pops it directly, so :meth:`popleft` itself
    keeps the counts and wakes a writer that was refused for room.
    """

    __slots__ = (
        "budget",
        "drain_waiting",
        "multi",
        "nbytes",
        "reader_waiting",
        "used",
        "writer",
        "writer_waiting",
    )

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget  # the writer's ring_size
        self.used = 0  # what the messages in the queue take of it (_cost)
        self.nbytes = 0  # their payload bytes
        self.multi = 0  # how many of them are Messages rather than bytes
        self.reader_waiting = False  # the reader found it empty: wake it on a write
        self.writer_waiting = False  # the writer was refused: wake it on a take
        self.drain_waiting = False  # the writer lingers: wake it on a take
        self.writer: InprocPipe | None = None

    def fits(self, cost: int) -> bool:
        """Whether a message of this cost may go now (always, into an empty queue)."""
        return not self or self.used + cost <= self.budget

    def put(self, item: Queued, n: int, cost: int) -> bool:
        """Append *item* (*n* bytes); return whether the reader must be woken."""
        self.append(item)
        self.nbytes += n
        self.used += cost
        if type(item) is not bytes:
            self.multi += 1
        if self.reader_waiting:
            self.reader_waiting = False
            return True
        return False

    def popleft(self) -> Queued:
        item = deque.popleft(self)
        if type(item) is bytes:
            n = len(item)
            self.nbytes -= n
            self.used -= (n + 31) & ~7  # _charge, inline: the receive fast path
        else:
            self.nbytes -= _size(item)
            self.used -= _cost(item)
            self.multi -= 1
        if self.writer_waiting or self.drain_waiting:
            self._room()
        return item

    def _room(self) -> None:
        self.writer_waiting = self.drain_waiting = False
        writer = self.writer
        if writer is not None and writer.alive:
            writer.writable = True
            writer.events.ready(writer, False, True)


class InprocPipe:
    """One end of an in-memory connection."""

    __slots__ = (
        "_done",
        "_out",
        "_owner",
        "_peer",
        "alive",
        "binding",
        "busy",
        "bytes_sent",
        "dropped",
        "dropped_bytes",
        "endpoint",
        "events",
        "in_recv",
        "in_send",
        "inbox",
        "messages_sent",
        "missed",
        "peer_identity",
        "peer_limit",
        "peer_pid",
        "peer_type",
        "readable",
        "streaming",
        "try_write",
        "writable",
    )

    #: One peer per pipe (the contract's ``carries_ids``).
    carries_ids = False

    def __init__(self, owner: Owner, endpoint: str, inbox: _Queue) -> None:
        self._owner = owner
        self.binding: object = None  # the binder's side: the binding it came through
        self.endpoint = endpoint
        self.events = owner.events
        self.inbox = inbox
        self._out: _Queue  # the peer's inbox (set by _connect)
        self._peer: InprocPipe
        self.peer_type = owner.spec.kind  # set by connect_pipes
        self.peer_limit = 0
        self.peer_identity = b""
        self.peer_pid = os.getpid()
        self.alive = self.readable = self.writable = True
        self.streaming = self.in_send = self.in_recv = self.busy = False
        self.try_write: Callable[[bytes, int], int] = self._try_write
        # What we received is what the peer sent, less what is still queued
        # and what we dropped (see received()): the fast path that pops the
        # inbox then counts nothing.
        self.messages_sent = self.bytes_sent = 0
        self.dropped = self.dropped_bytes = 0
        self.missed = 0  # messages a fan-out (PUB) dropped for want of room here
        self._done = False  # reported finished

    def __repr__(self) -> str:
        return f"<InprocPipe {self.endpoint} {'alive' if self.alive else 'gone'}>"

    # -- writing ---------------------------------------------------------------

    def _try_write(self, data: bytes, n: int) -> int:
        out = self._out
        cost = (n + 31) & ~7  # _charge, inline: the send fast path
        if out and out.used + cost > out.budget:
            return -1
        self.messages_sent += 1
        self.bytes_sent += n
        return 1 if out.put(data, n, cost) else 0

    def wake(self) -> None:
        peer = self._peer
        peer.readable = True
        peer.events.ready(peer, True, False)

    def _put(self, item: Queued, n: int, cost: int) -> bool:
        out = self._out
        if not self.alive:
            return False
        if not out.fits(cost):
            out.writer_waiting = True
            self.writable = False
            return False
        self.messages_sent += 1
        self.bytes_sent += n
        if out.put(item, n, cost):
            self.wake()
        return True

    def offer(self, frames: list[bytes], aux: int) -> bool:
        if len(frames) == 1 and not aux:
            n = len(frames[0])
            return self._put(frames[0], n, _charge(n))
        item = Message(list(frames), aux)
        return self._put(item, sum(map(len, frames)), _cost(item))

    def offer_batch(self, data: bytes, lens: array[int]) -> bool:
        out = self._out
        if not self.alive:
            return False
        if not out.fits(sum(map(_charge, lens))):
            out.writer_waiting = True
            self.writable = False
            return False
        pos = 0
        wake = False
        for n in lens:
            wake |= out.put(data[pos : pos + n], n, _charge(n))
            pos += n
        self.messages_sent += len(lens)
        self.bytes_sent += pos
        if wake:
            self.wake()
        return True

    def stream(self, frames: list[bytes], aux: int) -> WholeStream:
        return WholeStream(self, frames, aux)

    def send_control(self, frames: list[bytes]) -> bool:
        if self.alive:
            self._peer.events.control(self._peer, list(frames))
        return True

    # -- fan-out (a PUB's) ---------------------------------------------------------

    def fan_put(self, item: Queued, n: int, cost: int) -> None:
        """Append *item* if there is room, else count it missed (no announcement)."""
        out = self._out
        if not self.alive:
            return
        if not out.fits(cost):
            self.missed += 1
            return
        self.messages_sent += 1
        self.bytes_sent += n
        if out.put(item, n, cost):
            self.wake()

    def fan_put_many(self, messages: list[bytes], n: int, cost: int) -> None:
        """Append all of *messages* (*n* bytes, *cost* in all) if all fit; else each is missed."""
        out = self._out
        if not self.alive:
            return
        if not out.fits(cost):
            self.missed += len(messages)
            return
        self.messages_sent += len(messages)
        self.bytes_sent += n
        wake = False
        for m in messages:
            wake |= out.put(m, len(m), _charge(len(m)))
        if wake:
            self.wake()

    @property
    def fan_missed(self) -> int:
        """Messages a PUB's fan-out dropped for this peer (see ``Pipe.fan_missed``)."""
        return self.missed

    def has_room(self, cost: int) -> bool:
        """Whether a message of this cost fits now; if not, ask to hear of room (rule 2)."""
        if not self.alive:
            return True  # nothing waits for a gone pipe: the socket drops it
        if self._out.fits(cost):
            return True
        self._out.writer_waiting = True
        self.writable = False
        return False

    def unsent_bytes(self) -> int:
        """What we sent that the peer has not taken yet takes of its queue."""
        return self._out.used

    def unread(self) -> bool:
        return self.alive and bool(self._out)

    def prepare_drain(self) -> bool:
        if not self.unread():
            return False
        self._out.drain_waiting = True
        return True

    # -- reading ---------------------------------------------------------------

    def _empty(self) -> None:
        """Nothing to take: ask to be woken, or finish a pipe whose peer is gone."""
        self.readable = False
        if self.alive:
            self.inbox.reader_waiting = True
        elif not self._done:
            self._done = True
            self.events.finished(self)

    def take(self) -> Queued | None:
        inbox = self.inbox
        if not inbox:
            self._empty()
            return None
        return inbox.popleft()

    def take_batch(self, max_count: int) -> tuple[list[Queued], bool] | None:
        inbox = self.inbox
        if not inbox:
            self._empty()
            return None
        plain = not inbox.multi
        popleft = inbox.popleft
        return [popleft() for _ in range(min(max_count, len(inbox)))], plain

    def drained(self) -> bool:
        return not self.inbox

    def push_back(self, items: Sequence[Queued]) -> None:
        inbox = self.inbox
        for item in reversed(items):
            inbox.appendleft(item)
            inbox.nbytes += _size(item)
            inbox.used += _cost(item)
            inbox.multi += type(item) is not bytes

    def received(self) -> tuple[int, int]:
        """Messages and bytes taken so far."""
        peer, inbox = self._peer, self.inbox
        return (
            peer.messages_sent - len(inbox) - self.dropped,
            peer.bytes_sent - inbox.nbytes - self.dropped_bytes,
        )

    # -- ending ----------------------------------------------------------------

    def _peer_left(self) -> None:
        """The other end closed: what it sent stays takeable (rule 5)."""
        if not self.alive:
            return
        self.alive = False
        self.writable = False
        self.try_write = _refuse
        self.events.gone(self)
        if not self.inbox:
            self._empty()
        else:
            self.readable = True
            self.events.ready(self, True, False)

    def close(self) -> None:
        """This end closes: the peer hears it; what we had not taken is dropped."""
        if self.alive:
            self.alive = False
            self.writable = self.readable = False
            self.try_write = _refuse
            self._peer._peer_left()
        self.drop_inbox()

    def drop_inbox(self) -> None:
        """What the peer sent that we did not take is lost: count it, let it go."""
        inbox = self.inbox
        self.dropped += len(inbox)
        self.dropped_bytes += inbox.nbytes
        inbox.writer_waiting = inbox.drain_waiting = False  # nobody to wake now
        inbox.clear()
        inbox.nbytes = inbox.used = inbox.multi = 0

    def retire(self) -> None:
        self._owner.retire(self)


class FanWriter:
    """A PUB's fan-out over inproc pipes: each pipe takes the message or misses it."""

    __slots__ = ("pipes",)

    def __init__(self, pipes: Sequence[InprocPipe]) -> None:
        self.pipes = tuple(pipes)

    def write(self, frames: list[bytes], aux: int) -> None:
        if len(frames) == 1 and not aux:
            data = frames[0]
            n = len(data)
            cost = _charge(n)
            for pipe in self.pipes:
                pipe.fan_put(data, n, cost)
            return
        n = sum(map(len, frames))
        cost = sum(_charge(len(f)) for f in frames)
        for pipe in self.pipes:
            pipe.fan_put(Message(list(frames), aux), n, cost)

    def write_all(self, frames: list[bytes], aux: int) -> bool:
        if not self.room(frames):
            return False
        self.write(frames, aux)
        return True

    def room(self, frames: list[bytes]) -> bool:
        cost = sum(_charge(len(f)) for f in frames)
        return all([pipe.has_room(cost) for pipe in self.pipes])  # every one asks to hear

    def miss(self, pipe: object) -> None:
        if isinstance(pipe, InprocPipe):
            pipe.missed += 1

    def write_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        cost = sum(map(_charge, lens))
        for pipe in self.pipes:
            pipe.fan_put_many(messages, len(data), cost)

    def write_many_all(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        if not self.room_many(messages, data, lens):
            return False
        self.write_many(messages, data, lens)
        return True

    def check_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        pass  # an empty queue takes anything

    def room_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        cost = sum(map(_charge, lens))
        return all([pipe.has_room(cost) for pipe in self.pipes])


def connect_pipes(
    binder: Owner, dialer: Owner, binding: object, endpoint: str
) -> tuple[InprocPipe, InprocPipe]:
    """A connection at *endpoint* between two sockets of one run: (binder's pipe, dialer's pipe).

    *binding* is the binder's, for it to find the pipes made through it.
    """
    b_spec, d_spec = binder.spec, dialer.spec
    b_in = _Queue(d_spec.options.ring_size)  # the dialer writes it
    d_in = _Queue(b_spec.options.ring_size)
    b = InprocPipe(binder, endpoint, b_in)
    d = InprocPipe(dialer, endpoint, d_in)
    b.binding = binding
    b._out, b._peer, d._out, d._peer = d_in, d, b_in, b
    d_in.writer, b_in.writer = b, d
    b.peer_type, d.peer_type = d_spec.kind, b_spec.kind
    b.peer_limit, d.peer_limit = d_spec.options.max_msg_size, b_spec.options.max_msg_size
    b.peer_identity = d_spec.options.routing_id or b""
    d.peer_identity = b_spec.options.routing_id or b""
    return b, d


def count_pipe(st: EndpointStats, pipe: InprocPipe, *, gauges: bool = True) -> None:
    """Add *pipe*'s counters to *st*, and with *gauges* its gauges."""
    st.messages_sent += pipe.messages_sent
    st.bytes_sent += pipe.bytes_sent
    messages, nbytes = pipe.received()
    st.messages_received += messages
    st.bytes_received += nbytes
    st.dropped += pipe.dropped + pipe.missed
    if gauges:
        st.used_in += pipe.inbox.used
        if pipe.alive:
            st.peers += 1
            st.used_out += pipe.unsent_bytes()
