"""The ready queues, and the schedulers that walk them.

Rules (this file is the only one that keeps them):

1. A pipe is in ``ReadyQueues.send`` exactly when ``pipe.in_send`` is true,
   and in ``ReadyQueues.recv`` exactly when ``pipe.in_recv`` is true.  Only
   the functions and methods here add a pipe to a queue, take one out, or
   write those two flags.  The socket's fast paths may *rotate* a queue,
   which keeps both.
2. A pipe joins a queue when its transport reports it ready (it may take a
   message, it may have one) and leaves it when found full, empty or gone.
   So routing costs O(1) per message however many pipes a socket has, and
   no operation scans every pipe.
3. A pipe found full (``writable`` false) leaves the send queue: its
   transport reports it again when room appears (the pipe contract,
   ``shmsock._transport``).  A pipe in the send queue that is not writable
   is therefore dead, or waiting for a report that is due.
4. ``busy`` belongs to :class:`BatchTurns` alone.

Nothing here waits or does I/O.  Receiving calls ``take``, ``take_batch``
and ``drained`` on a pipe (reading what its transport already holds); that
is all a queue asks of a pipe.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Protocol, TypeVar

from .._types import SocketType


class PipeView(Protocol):
    """What the queues and the patterns may look at on a pipe.

    ``alive``, ``readable``, ``writable`` and ``streaming`` are the
    transport's; ``in_send``, ``in_recv`` and ``busy`` are this module's;
    ``peer_type`` and ``peer_identity`` are what the peer said when it
    connected (the routing id it asked for, or b""); ``carries_ids``: the
    pipe carries many peers, each message behind its routing id.
    """

    peer_type: SocketType
    peer_identity: bytes
    carries_ids: bool
    alive: bool
    writable: bool
    readable: bool
    streaming: bool
    in_send: bool
    in_recv: bool
    busy: bool

    def take(self) -> object | None: ...

    def take_batch(self, max_count: int) -> object | None: ...

    def drained(self) -> bool: ...


P = TypeVar("P", bound=PipeView)


class ReadyQueues(Generic[P]):
    """Pipes that may take a message (``send``) and that may have one (``recv``)."""

    __slots__ = ("recv", "send")

    def __init__(self) -> None:
        self.send: deque[P] = deque()
        self.recv: deque[P] = deque()

    def want_send(self, pipe: P) -> None:
        """*pipe* may take a message: queue it (once) for sending."""
        if not pipe.in_send:
            pipe.in_send = True
            self.send.append(pipe)

    def want_recv(self, pipe: P) -> None:
        """*pipe* may have a message: queue it (once) for receiving."""
        if not pipe.in_recv:
            pipe.in_recv = True
            self.recv.append(pipe)

    def sent(self, pipe: P) -> None:
        """*pipe* took a message: it goes to the back of the send queue."""
        send = self.send
        if send and send[0] is pipe:
            send.rotate(-1)

    def refused(self, pipe: P) -> None:
        """*pipe* had no room: it leaves the send queue until it reports room."""
        send = self.send
        if send and send[0] is pipe:
            send.popleft()
            pipe.in_send = False

    def remove(self, pipe: P) -> None:
        """*pipe* is retired: it leaves both queues."""
        if pipe.in_send:
            self.send.remove(pipe)
            pipe.in_send = False
        if pipe.in_recv:
            self.recv.remove(pipe)
            pipe.in_recv = False

    def clear(self) -> None:
        for pipe in self.send:
            pipe.in_send = False
        for pipe in self.recv:
            pipe.in_recv = False
        self.send.clear()
        self.recv.clear()


def round_robin(send: deque[P]) -> P | None:
    """The pipe the next message goes to: the first usable one in the queue.

    A pipe that is gone, or full, leaves the queue (rule 3); a pipe busy
    streaming another message is passed over but stays.  The caller offers
    the message and reports back with :meth:`ReadyQueues.sent` (the pipe
    goes to the back) or :meth:`ReadyQueues.refused` (it leaves).
    """
    for _ in range(len(send)):
        pipe = send[0]
        if pipe.alive and pipe.writable:
            if not pipe.streaming:
                return pipe
            send.rotate(-1)
            continue
        send.popleft()
        pipe.in_send = False
    return None


def fair_queue(recv: deque[P], rotate: bool) -> tuple[P, object] | None:
    """The next message from the ready pipes, one pipe after another.

    With *rotate*, the pipe that gave a message goes to the back, so no
    pipe starves another.  A pipe found empty leaves the queue.
    """
    while recv:
        pipe = recv[0]
        item = pipe.take()
        if item is not None:
            if rotate:
                recv.rotate(-1)
            return pipe, item
        recv.popleft()
        pipe.in_recv = False
    return None


#: How many batches in a row a batch receive (``recv_many``) takes from one
#: pipe, while that pipe has messages, before it moves on.  With one batch
#: per turn, eight producers into one PULL on two cores spent up to half
#: their CPU sleeping and waking: each was woken for a few hundred records,
#: then found its ring full again.  Longer turns let the pipe being read
#: write beside its reader while the others stay asleep; eight batches
#: measured about 35-40 % more fan-in throughput, in medians of side-by-side
#: runs (docs/performance.md).  Sixteen gained in some hours and lost in
#: others, and came out even over sixteen pairs.  The price is latency under
#: load for a pipe with a backlog: it waits for up to this many batches from
#: each busy pipe ahead of it.  A pipe that had nothing queued does not
#: wait for the turns (BatchTurns.next).
BATCH_TURN = 8


class BatchTurns:
    """The scheduler of batch receives: turns of up to BATCH_TURN batches.

    State: the pipe whose turn is running and the batches left in it.  The
    first ``_queued`` pipes of the receive queue were there before the
    others joined; ``_newcomer_last`` says the last batch was a newcomer's.
    """

    __slots__ = ("_newcomer_last", "_queued", "_turn_left", "_turn_pipe")

    def __init__(self) -> None:
        self._turn_pipe: object = None
        self._turn_left = 0
        self._queued = 0
        self._newcomer_last = False

    def next(self, recv: deque[P], max_count: int) -> tuple[P, object] | None:
        """The next batch from the ready pipes, for a batch receive.

        As :func:`fair_queue`, except that a pipe keeps its turn for up to
        BATCH_TURN batches in a row while it has messages.  A pipe found
        empty leaves the queue as there, and the next pipe's batch starts a
        new turn; so does a pipe brought to the front by a one-message
        receive meanwhile.

        A pipe that joins the queue while others are in it (it was empty,
        and now is not) does not wait for their turns.  Such newcomers give
        their batches first, one between each two of the queued pipes' and
        in turn among themselves, for as long as each batch empties the
        pipe (``drained()`` says whether it did).  A newcomer left with more
        than a batch is a busy pipe: it queues behind the pipes that were
        there before it, and waits for its turn.  A pipe that ran dry in its
        own turn after more than one batch is busy too, and queues the same
        way when it has messages again.  A pipe that sends now and then
        thus waits for about one batch, however long the busy pipes' turns.
        """
        queued = min(self._queued, len(recv))
        if 0 < queued < len(recv) and not self._newcomer_last:
            got = self._newcomer_batch(recv, max_count, queued)
            if got is not None:
                # The queued pipes' batch comes next, so that newcomers,
                # however many, cannot starve them.
                self._newcomer_last = True
                return got
            queued = self._queued  # busy pipes it found are queued now
        self._newcomer_last = False
        before = len(recv)
        front = recv[0] if recv else None
        got = first_batch(recv, max_count)
        if len(recv) < before:  # pipes found dry at the front left
            queued -= before - len(recv)
            if front is not None and front is self._turn_pipe and self._turn_left <= BATCH_TURN - 2:
                front.busy = True
        if queued <= 0:
            queued = len(recv)  # none of those is left: all are queued alike
        if got is not None:
            pipe = got[0]
            pipe.busy = False  # queued already: it has its turns
            if pipe is not self._turn_pipe:
                self._turn_pipe, self._turn_left = pipe, BATCH_TURN
            self._turn_left -= 1
            if self._turn_left == 0:
                # Behind the others queued before, ahead of any newcomer.
                recv.popleft()
                recv.insert(queued - 1, pipe)
                self._turn_pipe = None
        self._queued = queued
        return got

    def _newcomer_batch(
        self, recv: deque[P], max_count: int, queued: int
    ) -> tuple[P, object] | None:
        """A batch from the first pipe that joined behind the *queued* ones."""
        while len(recv) > queued:
            pipe = recv[queued]
            if pipe.busy:
                pipe.busy = False  # it takes its place without a batch first
                queued += 1
                self._queued = queued
                continue
            item = pipe.take_batch(max_count)
            del recv[queued]
            if item is None:
                pipe.in_recv = False  # dry: it leaves, as in fair_queue
                continue
            if pipe.drained():
                recv.append(pipe)  # still a newcomer, after the others
            else:
                recv.insert(queued, pipe)  # busy: last of the queued pipes
                self._queued = queued + 1
            return pipe, item
        return None


def first_batch(recv: deque[P], max_count: int) -> tuple[P, object] | None:
    """A batch from the first pipe that has one, with no turns (PAIR's order).

    A pipe found empty leaves the queue, as in :func:`fair_queue`; the pipe
    that gave the batch stays at the front.
    """
    while recv:
        pipe = recv[0]
        item = pipe.take_batch(max_count)
        if item is not None:
            return pipe, item
        recv.popleft()
        pipe.in_recv = False
    return None


def drain(recv: deque[P], most: int) -> list[tuple[P, object]]:
    """Everything the ready pipes hold now, up to *most* messages, oldest first per pipe.

    For a conflating SUB, which keeps only the latest.  A pipe found empty
    leaves the queue, as in :func:`fair_queue`.
    """
    got: list[tuple[P, object]] = []
    while recv and len(got) < most:
        pipe = recv[0]
        item = pipe.take()
        if item is None:
            recv.popleft()
            pipe.in_recv = False
            continue
        got.append((pipe, item))
    return got
