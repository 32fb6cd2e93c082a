"""What every pattern provides: its capabilities, its placements, its hooks.

Rules:

1. Every per-type rule lives in a pattern: which operations a type allows
   and when, which peer types it talks to, how many endpoints and peers it
   keeps, where a message goes and where the next one comes from.  Nothing
   outside ``shmsock._patterns`` (and ``shmsock._types``) tests a
   ``SocketType``: it reads a capability of the pattern instead.
2. A pattern never waits and never does I/O.  Sending, it answers *where*
   a message goes (a placement, below) and is told what happened; the
   socket writes.  Receiving, it walks its ready queues (``_queues``),
   which take from pipes what their transport already holds.
3. A pattern knows pipes only as :class:`~shmsock._patterns._queues.PipeView`:
   it imports no transport.

Placements, what :meth:`Pattern.route` returns:

- a pipe: the message goes to that pipe.  The socket offers it and reports
  back: :meth:`Pattern.sent` if the pipe took it, :meth:`Pattern.refused`
  if it had no room, :meth:`Pattern.passed_over` if the message is over
  the limit its peer stated, and then asks again.
- a :class:`Fanout`: the message goes to each of these pipes that has room;
  each that has none misses it (PUB's slow subscriber; the transport counts
  it).  The send is done either way, unless the socket's ``nodrop`` option
  makes it wait until every one of them has room.  A pattern that fans out
  (``fans_out``) answers with :meth:`Pattern.fanout`, which is given the
  message's first frame, instead of :meth:`Pattern.route`.
- :data:`DROPPED`: the message is dropped unsent, without error (REP's
  reply to a requester that has gone).
- ``None``: nowhere now.  :meth:`Pattern.no_target` then raises the reason
  when waiting would be pointless (a PAIR whose peer has gone); otherwise
  the socket waits for a pipe to attach or to report room.

A placement is a pipe or a constant, so routing allocates nothing per
message.

Shaping, for the types whose messages are not what the user sends and
receives (``shapes_send``, ``shapes_recv``): :meth:`Pattern.outgoing`
turns what the user sent into the frames written and their aux word (a
ROUTER takes the routing id off and routes by it), and
:meth:`Pattern.incoming` turns what a pipe gave into what the user
receives (a ROUTER puts the peer's routing id in front).  The other types
are never asked, so their messages cost nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final, Protocol

from .._errors import StateError
from .._options import Options
from .._types import SocketType
from ._queues import BatchTurns, PipeView, ReadyQueues, fair_queue, first_batch, round_robin


class Dropped:
    """The placement of a message dropped unsent (see :data:`DROPPED`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROPPED"


#: The message is dropped unsent, without error.
DROPPED: Final = Dropped()


class Upstream(Protocol):
    """What a type's own methods (``socket_methods``) may ask of the socket's hub."""

    def send_control(self, frames: list[bytes]) -> None:
        """Send a control message to every peer, now and to come."""


class Fanout:
    """The placement of a message that goes to several pipes at once.

    A pattern hands out the same Fanout for as long as its pipes stay the
    same, and a new one when they change, so the socket may keep what it
    prepared for writing to them in ``plan`` (the pattern never reads it).
    """

    __slots__ = ("pipes", "plan")

    def __init__(self, pipes: Sequence[PipeView]) -> None:
        self.pipes = pipes
        self.plan: object = None


Placement = PipeView | Fanout | Dropped | None


class Pattern:
    """Base: a socket type that neither sends nor receives.

    Subclasses set the capabilities and override the hooks they need.  The
    socket reads the capabilities once, when it is made; the transports get
    those that concern them (``compatible``, ``max_peers``, ``writes_data``,
    ``reads_data``) through ``shmsock._transport.SocketSpec``.
    """

    kind: ClassVar[SocketType]
    #: Whether the type sends, and receives, messages at all.
    can_send: ClassVar[bool] = False
    can_recv: ClassVar[bool] = False
    #: Whether ``send_many`` and ``recv_many`` are allowed.
    batch_send: ClassVar[bool] = False
    batch_recv: ClassVar[bool] = False
    #: Whether the ``*_nowait`` fast paths apply: plain messages with no
    #: state to keep, to the head of the send queue and from the head of
    #: the receive queue.
    plain_send: ClassVar[bool] = False
    plain_recv: ClassVar[bool] = False
    #: Whether the type writes messages (its transports size what it writes
    #: by ``ring_size``) and reads them (a peer that is gone is then read to
    #: the end of what it sent).
    writes_data: ClassVar[bool] = False
    reads_data: ClassVar[bool] = False
    #: The peer types a socket of this type talks to (checked when a
    #: connection is made).
    compatible: ClassVar[frozenset[SocketType]] = frozenset()
    #: How many times the socket may bind or connect, and how many
    #: connections it keeps at once (None: no limit).
    max_endpoints: ClassVar[int | None] = None
    max_peers: ClassVar[int | None] = None
    #: Whether receiving moves on to the next pipe after each message.
    rotate_recv: ClassVar[bool] = True
    #: What the aux word means, for a transport that must carry it in the
    #: frames (libzmq's, where REQ and REP travel as DEALER and ROUTER with
    #: libzmq's envelopes): None (no aux), "request" (an id the peer sends
    #: back with its reply), "reply" (the id of the request answered) or
    #: "routed" (each message behind its peer's routing id: ROUTER).
    envelope: ClassVar[str | None] = None
    #: Whether messages fan out: :meth:`fanout` places them (PUB, XPUB).
    fans_out: ClassVar[bool] = False
    #: Whether ``send`` sends control messages to every peer, against the
    #: data direction (XSUB's subscriptions): :meth:`upstream` says which.
    sends_control: ClassVar[bool] = False
    #: Whether new connections carry control messages first
    #: (:meth:`greeting`: a SUB's subscriptions).
    greets: ClassVar[bool] = False
    #: A class of public methods of this type alone (SUB's ``subscribe``),
    #: mixed into the socket class of the type by ``shmsock.socket``; None:
    #: the plain Socket.  It has ``__slots__ = ()`` and reaches its pattern
    #: as ``self._pattern``.
    socket_methods: ClassVar[type | None] = None
    #: Whether :meth:`outgoing` and :meth:`incoming` are to be asked.  Read
    #: on every message of the general paths, so a type may switch them
    #: with its state (REP shapes only for DEALER peers).
    shapes_send: bool = False
    shapes_recv: bool = False

    def __init__(self) -> None:
        self.queues: ReadyQueues[PipeView] = ReadyQueues()
        self._turns = BatchTurns()

    def set_options(self, options: Options) -> None:
        """The socket's options, when it is made and whenever one changes."""

    # -- shaping (only when shapes_send / shapes_recv) ----------------------------

    def outgoing(self, frames: list[bytes]) -> tuple[list[bytes], int]:
        """The frames to write, and their aux word, for *frames* the user sends.

        Asked once per attempt, after :meth:`check_send` and before
        :meth:`route`; it may choose the pipe that :meth:`route` then
        returns.  Raises (ValueError, HostUnreachable) to refuse the
        message: nothing is sent.
        """
        return frames, self.send_aux()

    def incoming(self, pipe: PipeView, frames: list[bytes], aux: int) -> list[bytes] | None:
        """What the user receives of the message *frames* taken from *pipe*.

        Asked after :meth:`accept`; None drops the message (malformed).
        It changes no state that :meth:`received` does not confirm: the
        message may yet be put back (a multipart one, for ``recv``).
        """
        return frames

    def fast_recv(self) -> bool:
        """Whether the receive fast path applies now (see ``plain_recv``).

        Asked again after every option change and every call of a type's
        own methods (a SUB that starts filtering turns it off).
        """
        return self.plain_recv

    # -- sending ------------------------------------------------------------

    def check_send(self) -> None:
        """Raise StateError if sending is not allowed now."""
        if not self.can_send:
            raise StateError(f"{self.kind.name} sockets cannot send")

    def check_send_many(self) -> None:
        """Raise StateError if batch sends are not allowed now."""
        if self.can_send and not self.batch_send:
            raise StateError(f"{self.kind.name} sockets send one message at a time")
        self.check_send()

    def send_aux(self) -> int:
        """The aux word of the next message sent (0: none)."""
        return 0

    def route(self) -> Placement:
        """Where the next message goes (see the module docstring)."""
        return round_robin(self.queues.send)

    def fanout(self, topic: bytes) -> Fanout:
        """The pipes a message whose first frame is *topic* goes to (``fans_out``)."""
        raise NotImplementedError(f"{self.kind.name} sockets do not fan out")

    def fanout_uniform(self) -> Fanout | None:
        """The placement of every message now, if it does not depend on the message (``fans_out``).

        None: ask :meth:`fanout` for each message.
        """
        return None

    def upstream(self, frames: list[bytes]) -> bool:
        """A message sent with ``sends_control``: whether it goes to the peers."""
        raise NotImplementedError(f"{self.kind.name} sockets send data, not control")

    def greeting(self) -> list[list[bytes]]:
        """The control messages every new connection carries before anything else."""
        return []

    def targets(self, pipes: Sequence[PipeView]) -> Sequence[PipeView]:
        """The pipes a message sent now may go to, of *pipes* (for the size check)."""
        return pipes

    def sent(self, pipe: PipeView) -> None:
        """The message went to *pipe*: it goes to the back of the send queue."""
        send = self.queues.send
        if send and send[0] is pipe:
            send.rotate(-1)  # (a rotation keeps the queue's rule: see _queues)

    def refused(self, pipe: PipeView) -> None:
        """*pipe*, which :meth:`route` chose, had no room for the message."""
        self.queues.refused(pipe)

    def passed_over(self, pipe: PipeView) -> None:
        """*pipe*, which :meth:`route` chose, may not take this message (over its limit).

        It keeps its place in turn; :meth:`route` is asked again.
        """
        self.queues.sent(pipe)

    def dropped(self, pipe: PipeView) -> None:
        """*pipe*, one of a :class:`Fanout`, had no room: it misses the message."""

    def no_target(self, pipes: Sequence[PipeView]) -> None:
        """Nothing could be sent now; raise if waiting would be pointless."""

    def detached(self) -> None:
        """The socket itself ended connections, by unbind or disconnect.

        Called after ``gone`` for each of them.
        """

    # -- receiving ----------------------------------------------------------

    def check_recv(self) -> None:
        """Raise StateError if receiving is not allowed now."""
        if not self.can_recv:
            raise StateError(f"{self.kind.name} sockets cannot receive")

    def check_recv_many(self) -> None:
        """Raise StateError if batch receives are not allowed now."""
        if self.can_recv and not self.batch_recv:
            raise StateError(f"{self.kind.name} sockets receive one message at a time")
        self.check_recv()

    def next_message(self) -> tuple[PipeView, object] | None:
        """The pipe of the next message and the message, or None."""
        return fair_queue(self.queues.recv, self.rotate_recv)

    def next_batch(self, max_count: int) -> tuple[PipeView, object] | None:
        """The pipe of the next batch and ``pipe.take_batch(max_count)``, or None.

        Pipes take turns of up to BATCH_TURN batches (``_queues.BatchTurns``);
        a type that keeps its pipes in order (PAIR) takes from the first.
        """
        if not self.rotate_recv:
            return first_batch(self.queues.recv, max_count)
        return self._turns.next(self.queues.recv, max_count)

    def accept(self, pipe: PipeView, aux: int) -> bool:
        """May this message from *pipe* be delivered?  False drops it."""
        return True

    def received(self, pipe: PipeView, aux: int) -> None:
        """A message from *pipe* was delivered."""

    def no_message(self, pipes: Sequence[PipeView]) -> None:
        """Nothing to receive now; raise if waiting would be pointless."""

    def recv_cancelled(self) -> None:
        """A receive was cancelled."""

    def polled(self) -> None:
        """The socket has just handled its transports' events (a safe point).

        A conflating SUB takes what arrived here, so that it keeps only the
        latest even while nobody receives.
        """

    # -- connections ---------------------------------------------------------

    def attached(self, pipe: PipeView) -> None:
        """A new connection is ready."""

    def gone(self, pipe: PipeView) -> None:
        """*pipe*'s peer died or closed (what it sent may still be read)."""

    def retired(self, pipe: PipeView) -> None:
        """*pipe* is gone and drained, and the socket let go of it."""

    def identity_in_use(self, identity: bytes) -> bool:
        """Whether a peer asking to be called *identity* must be refused.

        A question a transport asks before it accepts a connection
        (``Events.identity_in_use``): a ROUTER's routing ids are unique.
        """
        return False

    def routing_id_of(self, pipe: PipeView) -> bytes | None:
        """The id *pipe*'s peer goes by, for peer events (None: it has none)."""
        return pipe.peer_identity or None

    def on_control(self, pipe: PipeView, frames: list[bytes]) -> None:
        """Control frames arrived from *pipe*'s peer, against the data direction.

        The hook for subscriptions travelling from SUB to PUB.  A type that
        expects none ignores them.
        """
