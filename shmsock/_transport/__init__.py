"""The contract between a socket and its transports.

A *transport* serves one scheme (``shm://``, ``inproc://``, and ``tcp://``
and ``ipc://`` through libzmq): it binds and connects endpoints of that
scheme and makes a *pipe* for each connection to a peer.  The socket and its
pattern see pipes only.  Round-robin and fair-queueing span every pipe of a
socket whatever made it, so one socket may bind ``shm://jobs`` and
``inproc://jobs`` at once.  This is nng's model (a pipe per connection, a
transport per scheme), not one backend per socket.

Rules (every transport keeps them; the socket relies on nothing else):

1. **A transport never waits and never calls the socket.**  Every method
   returns at once.  A transport reaches up only through the :class:`Events`
   object handed to it when it is made, and never from inside a call the
   socket made to it, except where a method below says so.  Descriptors
   it must watch go into the socket's :class:`~._reactor.Reactor` (one epoll
   set per socket, whatever the number of transports); their handlers run
   when the socket polls.
2. **Readiness is reported on edges.**  A pipe that refused a message
   (``offer`` returned False) is marked not ``writable``, and its transport
   calls ``Events.ready(pipe, send=True)`` once it may have room.  A pipe
   that ``take`` found empty is marked not ``readable``, and its transport
   calls ``Events.ready(pipe, recv=True)`` once something may have arrived.
   A report may be spurious (the socket then looks again); it is never
   missing.
3. **All of a message, or nothing.**  ``offer`` and ``offer_batch`` write a
   whole message (a whole batch) or nothing, and ``take`` returns only
   whole messages.  A message is never visible to the peer in part.
4. **Order.**  A pipe's messages are taken in the order its peer sent them.
5. **No loss after a send returned.**  What a peer sent before it went stays
   takeable: its transport reports ``gone(pipe)``, keeps the pipe readable
   until it is drained, and only then reports ``finished(pipe)``.  The
   socket retires the pipe (``retire()``) at its next safe point.
6. **Flags have owners.**  ``alive``, ``readable``, ``writable`` and
   ``streaming`` are written by the transport.  ``in_send``, ``in_recv`` and
   ``busy`` belong to the socket's ready queues (``_patterns/_queues.py``):
   a transport sets them False when it makes a pipe and never again.
7. **One thread.**  Everything runs in the socket's Trio thread, except
   ``Transport.stats``, which the metrics exporter calls from its own thread
   with ``shmsock._stats.LOCK`` held.
8. **Control messages go against the data direction, in order, and are
   never refused.**  A socket's control messages (a SUB's subscriptions)
   reach the peer socket through its ``Events.control``, in the order they
   were sent; what does not fit now is kept and sent as room comes.  A
   connection carries the socket's *greeting* (``SocketSpec.greeting``)
   before anything else, and the peer socket hears it, through
   ``Events.control``, before it hears ``attached`` return: so a publisher
   never writes to a subscriber whose subscriptions it has not read.  A
   socket that reads no data (``reads_data`` false: PUB, XPUB) has its
   peers' control messages reported as soon as they arrive; one that reads
   data hears them no later than the data sent after them.

Messages as pipes carry them (:class:`Message`, :data:`Queued`, held frames,
leases) and the optional loan capability (:class:`Loan`, :class:`Lends`) live
in ``_transport/_messages.py``, with their own rules; the other optional
capabilities (:class:`FanWriter`, a PUB's fan-out, and :class:`WakeUps`)
in ``_transport/_capabilities.py``.  Every name is re-exported here, so the
contract is still imported from this module.

Adding a transport: write ``_transport/<scheme>.py`` (or a package, as
``shm/``) with a class that implements :class:`Transport` and makes pipes
that implement :class:`Pipe`, and add its scheme to :data:`SCHEMES`.  No
pattern and no socket method changes; ``docs/architecture.md`` walks
through it.
"""

from __future__ import annotations

import importlib
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from .._errors import InvalidEndpoint
from .._message import MAX_CONTROL, MAX_CONTROL_FRAMES, check_control
from .._options import Options
from .._types import SocketType
from ._capabilities import FanWriter, WakeUps
from ._messages import HeldFrame, HeldMessage, Lease, Lends, Loan, Message, Queued

if TYPE_CHECKING:
    from array import array

    from .._stats import EndpointStats
    from ._reactor import Reactor

__all__ = [
    "FORMS",
    "FRAME_ALLOWANCE",
    "MAX_CONTROL",
    "MAX_CONTROL_FRAMES",
    "NO_LIMIT",
    "SCHEMES",
    "Events",
    "FanWriter",
    "HeldFrame",
    "HeldMessage",
    "Lease",
    "Lends",
    "Loan",
    "Message",
    "Pipe",
    "Queued",
    "SocketSpec",
    "Stream",
    "Transport",
    "WakeUps",
    "WholeStream",
    "check_control",
    "load",
    "parse_name",
    "scheme_of",
]


#: A pipe's ``peer_limit`` when its peer stated none: more than any message.
NO_LIMIT: Final = 1 << 64

#: Bytes a frame of a multipart message is allowed for framing, in
#: ``Transport.max_simple``.
FRAME_ALLOWANCE: Final = 32


# -- what a transport knows of its socket -------------------------------------------


@dataclass(frozen=True)
class SocketSpec:
    """What a transport needs to know about the socket it serves.

    The socket builds it from its pattern's capabilities, so a transport
    never imports a pattern and never tests a socket type itself.
    """

    kind: SocketType
    options: Options
    #: Peer types this socket talks to; a transport refuses any other.
    compatible: frozenset[SocketType]
    #: Connections kept at once (None: no limit); a binder refuses more.
    max_peers: int | None
    #: Whether the socket writes messages (else the smallest buffers do).
    writes_data: bool
    #: Whether the socket reads messages (else a gone peer is not drained,
    #: and control messages are read as soon as they arrive: rule 8).
    reads_data: bool
    #: The control messages each new connection carries first (rule 8), or
    #: None for a socket that has none.  A query: it changes nothing, and a
    #: transport may call it at any time, from inside any call.
    greeting: Callable[[], list[list[bytes]]] | None = None
    #: How the pattern's aux word must travel where a transport has no room
    #: for it (libzmq): None, "request" (REQ) or "reply" (REP); see
    #: ``Pattern.envelope``.
    envelope: str | None = None


# -- the three protocols ------------------------------------------------------------


class Events(Protocol):
    """What a transport may tell its socket: the only way it reaches up."""

    def attached(self, pipe: Pipe) -> None:
        """*pipe* is connected and usable (it starts readable and writable)."""

    def gone(self, pipe: Pipe) -> None:
        """*pipe*'s peer closed or died.  What it sent may still be taken."""

    def finished(self, pipe: Pipe) -> None:
        """*pipe* is gone and drained: retire it at the next safe point."""

    def ready(self, pipe: Pipe, recv: bool, send: bool) -> None:
        """*pipe* may now have a message (*recv*) or room (*send*) again."""

    def changed(self) -> None:
        """Something a waiting task must look at again (a refusal, a redial)."""

    def control(self, pipe: Pipe, frames: list[bytes]) -> None:
        """Control frames from *pipe*'s peer, against the data direction."""

    def identity_in_use(self, identity: bytes) -> bool:
        """Whether a peer asking to be called *identity* must be refused.

        A question, which changes nothing: a transport may ask it at any
        time, from inside a call the socket made too.  A ROUTER's routing
        ids are unique among its live peers; a transport asks before it
        accepts a peer that stated one (its ``peer_identity``), and refuses
        it when the answer is True (the peer's error: RoutingIdInUse).
        """

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        """Call *fn* after *seconds*, in the socket's thread, unless it has closed."""


class Stream(Protocol):
    """A message too large to write at once, written piece by piece.

    Made by ``Pipe.stream``; the pipe is ``streaming`` (no other message
    goes to it) until :meth:`close`.
    """

    def step(self) -> int:
        """Write what fits now: 1 done, 0 wait for room (announced), -1 pipe lost.

        After 0, the pipe reports ``ready(send=True)`` once there is room.
        """

    def close(self) -> None:
        """End the stream (done or not); the pipe takes other messages again.

        A stream closed before its last piece is dropped by the receiver:
        it never delivers part of a message.
        """


class WholeStream:
    """The :class:`Stream` of a transport that takes any message whole (inproc, libzmq).

    Its ``check_atomic`` never refuses, so only a socket whose other
    transports stream a message asks for one: it is one ``offer``.
    """

    __slots__ = ("_aux", "_frames", "_pipe")

    def __init__(self, pipe: Any, frames: list[bytes], aux: int) -> None:
        self._pipe, self._frames, self._aux = pipe, frames, aux
        pipe.streaming = True

    def step(self) -> int:
        pipe = self._pipe
        if not pipe.alive:
            return -1
        return 1 if pipe.offer(self._frames, self._aux) else 0

    def close(self) -> None:
        self._pipe.streaming = False


class Pipe(Protocol):
    """One connection to one peer, as the socket sees it."""

    #: The endpoint it belongs to, as the user wrote it (stats key).
    endpoint: str
    #: The peer's socket type.
    peer_type: SocketType
    #: The largest message (all frames) the peer accepts (NO_LIMIT: unstated).
    peer_limit: int

    @property
    def peer_pid(self) -> int:
        """The peer's process (for messages only)."""

    #: What the peer asked to be called (ROUTER's routing id); b"" if nothing.
    peer_identity: bytes
    #: The pipe carries many peers, each message behind its peer's routing
    #: id (a libzmq ROUTER's link): a ROUTER routes through it by that id.
    carries_ids: bool
    #: Flags (rule 6).
    alive: bool
    readable: bool
    writable: bool
    streaming: bool
    in_send: bool
    in_recv: bool
    busy: bool

    @property
    def inbox(self) -> deque[Queued]:
        """Messages taken from the transport already, in order.

        The receive fast path pops it directly (and may rotate the receive
        queue); everything else goes through :meth:`take`.
        """

    #: The send fast path: ``try_write(data, len(data))`` for a one-frame
    #: message with aux 0 (``data`` is bytes).  >= 0: written (1: call
    #: ``wake()`` now); < 0: nothing written, use ``offer``.
    try_write: Callable[[bytes, int], int]

    def wake(self) -> None:
        """Tell the peer that something arrived (after ``try_write`` returned 1)."""

    def offer(self, frames: list[bytes], aux: int) -> bool:
        """Write one message now, all of it, or nothing and return False.

        False means no room now (the pipe is then not ``writable``, rule 2),
        or the pipe broke (it is then not ``alive`` either).  The caller has
        checked the size against ``Transport.check_atomic``.
        """

    def offer_batch(self, data: bytes, lens: array[int]) -> bool:
        """Write one-frame messages, back to back in *data*, all or none.

        Raises MessageTooLarge (saying why) when the batch can never be
        written at once; False as for :meth:`offer`.
        """

    def stream(self, frames: list[bytes], aux: int) -> Stream:
        """Start writing a message too large for :meth:`offer` (see :class:`Stream`)."""

    def take(self) -> Queued | None:
        """The next whole message, or None (the pipe is then not ``readable``).

        Raises CorruptMessage once when what the peer wrote fails
        validation; the pipe is then closed.
        """

    def take_batch(self, max_count: int) -> tuple[list[Queued], bool] | None:
        """Up to *max_count* whole messages, or None as for :meth:`take`.

        The flag says every item is ``bytes``, so the caller need not look.
        """

    def drained(self) -> bool:
        """Whether the pipe had nothing more just now (a hint for fairness)."""

    def push_back(self, items: Sequence[Queued]) -> None:
        """Put *items*, just taken, back at the front of the inbox, in order."""

    def unread(self) -> bool:
        """Whether the peer has not yet taken everything sent to it."""

    def prepare_drain(self) -> bool:
        """Ask to be told when the peer has taken everything.

        True: wait; the transport reports ``ready(pipe, send=True)`` once
        the peer took more.  False: nothing is left unread.
        """

    @property
    def fan_missed(self) -> int:
        """Messages a :class:`FanWriter` dropped for this pipe's peer (also in ``dropped``)."""

    def send_control(self, frames: list[bytes]) -> bool:
        """Send a control message to this pipe's peer, against the data direction.

        It arrives through the peer socket's ``Events.control`` (rule 8).
        Never refused: what does not fit now is sent as room comes, and the
        result is always True.
        """

    def retire(self) -> None:
        """The socket is done with this finished pipe: release what it holds."""


class Transport(Protocol):
    """What makes and keeps the pipes of one scheme, for one socket.

    Made with ``(spec: SocketSpec, events: Events, reactor: Reactor)``.
    """

    #: What surely passes check_atomic: a one-frame message of at most this
    #: many bytes, or several frames whose sizes, plus FRAME_ALLOWANCE
    #: bytes each, add up to at most this.  The socket asks check_atomic
    #: only about the others.
    max_simple: int
    #: Its direct-wait capability, if it has one (see :class:`WakeUps`).
    bells: WakeUps | None

    def bind(self, endpoint: str) -> str | None:
        """Bind *endpoint* now; peers that connect there attach (Events.attached).

        Returns the endpoint as bound where it differs from *endpoint* (the
        port the system chose for ``tcp://*:0``: libzmq's LAST_ENDPOINT),
        else None.  Raises InvalidEndpoint, AddressInUse, and what the
        scheme's resources raise (UnsafeFile, SharedMemoryFull, ...).
        """

    def connect(self, endpoint: str) -> None:
        """Connect to *endpoint*, now or whenever a binder appears; never waits."""

    def unbind(self, endpoint: str) -> None:
        """Stop accepting at *endpoint*, and end the pipes accepted there.

        They end as :meth:`close` ends them: the peers still take what was
        sent; what they sent that was not taken is dropped and counted.
        The transport reports ``gone`` and ``finished`` for each.  Raises
        InvalidEndpoint for an endpoint not bound here.
        """

    def disconnect(self, endpoint: str) -> int:
        """Undo every connect() to *endpoint* (ending its pipes as unbind does).

        Returns how many connects it undid.  Raises InvalidEndpoint for an
        endpoint not connected here.
        """

    def set_options(self, options: Options) -> None:
        """Use *options* from now on (the socket lets only some change once attached)."""

    def send_control(self, frames: list[bytes]) -> None:
        """Send a control message on every connection, now and being made (rule 8).

        Every pipe, and every connection this transport is making that
        carries an earlier greeting, gets it; those made later carry the
        greeting instead.  Never refused (what does not fit waits).  Raises
        MessageTooLarge when the message can never be sent whole.
        """

    def fan_out(self, pipes: Sequence[Pipe]) -> FanWriter:
        """A writer of one message into all of *pipes* (this transport's, all alive)."""

    def undelivered(self) -> bool:
        """Whether messages sent wait where no pipe can deliver them yet.

        (A connector's ring whose binder is gone.)  ``aclose`` lingers for
        them as for a pipe's unread messages.
        """

    def count_lost(self) -> None:
        """Count in ``dropped`` what closing now loses; called just before close()."""

    def check_atomic(self, frames: list[bytes], size: int) -> None:
        """Raise MessageTooLarge if this message can never be offered whole."""

    def check_usable(self) -> None:
        """Raise why no pipe came from a connect (the binder refused), if so."""

    def close(self) -> None:
        """Close every endpoint and pipe; what was sent stays readable (rule 5)."""

    def disown(self) -> None:
        """This process is a fork() child of the socket's: let go, touch nothing.

        Nothing the parent shares (files, rings, descriptors, peers) may
        change; afterwards the transport counts as closed.  Never raises.
        """

    def stats(self) -> dict[str, EndpointStats]:
        """Counters and gauges by endpoint (see shmsock._stats); rule 7."""


# -- schemes ---------------------------------------------------------------------------

#: Scheme -> (module, class) of its transport, imported on first use, so that
#: a program that never names a scheme never imports what serves it (tcp://
#: and ipc:// need pyzmq; shm:// and inproc:// must never import it).
SCHEMES: Final[dict[str, tuple[str, str]]] = {
    "shm": ("shmsock._transport.shm._transport", "ShmTransport"),
    "inproc": ("shmsock._transport.inproc", "InprocTransport"),
    "tcp": ("shmsock._transport.zmq", "ZmqTransport"),
    "ipc": ("shmsock._transport.zmq", "ZmqTransport"),
}

#: How an endpoint of each scheme is written, for error messages.
FORMS: Final[dict[str, str]] = {
    "shm": "'shm://NAME'",
    "inproc": "'inproc://NAME'",
    "tcp": "'tcp://HOST:PORT'",
    "ipc": "'ipc://PATH'",
}

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _schemes_text() -> str:
    forms = [FORMS.get(s, f"'{s}://...'") for s in SCHEMES]
    return ", ".join(forms[:-1]) + " or " + forms[-1]


def _invalid(endpoint: str) -> InvalidEndpoint:
    return InvalidEndpoint(
        f"invalid endpoint {endpoint!r}: expected {_schemes_text()}, where NAME is 1 to 64"
        " characters from letters, digits, '.', '_' and '-', and not '.' or '..'"
    )


def scheme_of(endpoint: object) -> str:
    """The scheme of *endpoint* (``"shm"`` for ``shm://jobs``), if we serve it.

    Raises TypeError unless *endpoint* is a str, InvalidEndpoint (naming the
    schemes) when its scheme is not one of :data:`SCHEMES`.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str like 'shm://jobs', not {type(endpoint).__name__}")
    scheme, sep, _rest = endpoint.partition("://")
    if not sep or scheme not in SCHEMES:
        raise _invalid(endpoint)
    return scheme


def parse_name(endpoint: str) -> str:
    """NAME from ``<scheme>://NAME``, for the schemes whose names are plain words.

    NAME is 1 to 64 characters from letters, digits, ``.``, ``_`` and
    ``-``, and is neither ``.`` nor ``..``.  Raises InvalidEndpoint.
    """
    scheme = scheme_of(endpoint)
    name = endpoint[len(scheme) + 3 :]
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise _invalid(endpoint)
    return name


def load(scheme: str) -> Callable[[SocketSpec, Events, Reactor], Transport]:
    """The transport class of *scheme* (one of :data:`SCHEMES`), imported now."""
    module, name = SCHEMES[scheme]
    cls: Callable[[SocketSpec, Events, Reactor], Transport] = getattr(
        importlib.import_module(module), name
    )
    return cls
