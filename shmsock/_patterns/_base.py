"""What every pattern provides: round-robin, fair-queue, and the hooks.

The transport keeps two ready queues per socket: peers that may take a
message (``send_ready``) and peers that may have one (``recv_ready``).  A
peer joins a queue when its doorbell says so and leaves it when found full
or empty, so routing costs O(1) per message however many peers there are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol, TypeVar

from .._errors import StateError
from .._types import SocketType


class PeerView(Protocol):
    """What a pattern may look at on a peer."""

    alive: bool
    writable: bool
    readable: bool
    streaming: bool
    in_send: bool
    in_recv: bool
    busy: bool


P = TypeVar("P", bound=PeerView)
T = TypeVar("T")


def round_robin(ready: deque[P], offer: Callable[[P], bool]) -> P | None:
    """Offer a message to the ready peers in turn; return the one that took it.

    A peer that took it goes to the back of the queue.  A peer found full
    or gone leaves the queue (its doorbell brings it back); a peer busy
    streaming another message is passed over but stays.
    """
    for _ in range(len(ready)):
        peer = ready[0]
        if peer.alive and not peer.streaming and offer(peer):
            ready.rotate(-1)
            return peer
        if peer.alive and peer.writable:
            ready.rotate(-1)
        else:
            ready.popleft()
            peer.in_send = False
    return None


#: How many batches in a row a batch receive (``recv_many``) takes from one
#: peer, while that peer has messages, before it moves on.  With one batch
#: per turn, eight producers into one PULL on two cores spent up to half
#: their CPU sleeping and waking: each was woken for a few hundred records,
#: then found its ring full again.  Longer turns let the peer being read
#: write beside its reader while the others stay asleep; eight batches
#: measured about 35-40 % more fan-in throughput, in medians of side-by-side
#: runs (docs/performance.md).  Sixteen gained in some hours and lost in
#: others, and came out even over sixteen pairs.  The price is latency under
#: load for a peer with a backlog: it waits for up to this many batches from
#: each busy peer ahead of it.  A peer that had nothing queued does not
#: wait for the turns (Pattern.next_batch).
BATCH_TURN = 8


def fair_queue(ready: deque[P], take: Callable[[P], T | None], rotate: bool) -> tuple[P, T] | None:
    """The next message from the ready peers, one peer after another.

    With *rotate*, the peer that gave a message goes to the back, so no
    peer starves another.  A peer found empty leaves the queue.
    """
    while ready:
        peer = ready[0]
        item = take(peer)
        if item is not None:
            if rotate:
                ready.rotate(-1)
            return peer, item
        ready.popleft()
        peer.in_recv = False
    return None


class Pattern:
    """Base: a socket type that neither sends nor receives.

    The socket asks ``route`` to place an outgoing message and
    ``next_message`` for an incoming one, then reports back with ``sent``
    and ``received``.  ``aux`` words travel with messages; REQ and REP use
    them to correlate requests with replies.
    """

    kind: ClassVar[SocketType]
    can_send: ClassVar[bool] = False
    can_recv: ClassVar[bool] = False
    # Connections this socket type keeps at once (None: unbounded).
    max_peers: ClassVar[int | None] = None
    # Whether receiving moves on to the next peer after each message.
    rotate_recv: ClassVar[bool] = True

    # -- sending ------------------------------------------------------------

    def check_send(self) -> None:
        """Raise StateError if sending is not allowed now."""
        if not self.can_send:
            raise StateError(f"{self.kind.name} sockets cannot send")

    def discard_reply(self) -> bool:
        """True when the message about to be sent is to be dropped unsent."""
        return False

    def send_aux(self) -> int:
        """The aux word for the next message sent."""
        return 0

    def route(self, ready: deque[P], offer: Callable[[P], bool]) -> P | None:
        """Place a message: the peer that took it, or None."""
        return round_robin(ready, offer)

    def targets(self, peers: Sequence[P]) -> Sequence[P]:
        """The peers a message sent now may go to, of *peers* (for the size check)."""
        return peers

    def sent(self, peer: PeerView) -> None:
        """The message went to *peer*."""

    def no_target(self, peers: Sequence[PeerView]) -> None:
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

    def next_message(self, ready: deque[P], take: Callable[[P], T | None]) -> tuple[P, T] | None:
        return fair_queue(ready, take, self.rotate_recv)

    # The peer whose batch turn is running and the batches left in it.  The
    # first _queued peers of the ready queue were there before the others
    # joined; _newcomer_last says the last batch was a newcomer's.
    _turn_peer: object = None
    _turn_left: int = 0
    _queued: int = 0
    _newcomer_last: bool = False

    def next_batch(
        self,
        ready: deque[P],
        take: Callable[[P], T | None],
        drained: Callable[[P], bool],
    ) -> tuple[P, T] | None:
        """The next batch from the ready peers, for a batch receive.

        As next_message, except that a peer keeps its turn for up to
        BATCH_TURN batches in a row while it has messages.  A peer found
        empty leaves the queue as there, and the next peer's batch starts
        a new turn; so does a peer brought to the front by a one-message
        receive meanwhile.

        A peer that joins the queue while others are in it (its ring was
        empty, and now is not) does not wait for their turns.  Such
        newcomers give their batches first, one between each two of the
        queued peers' and in turn among themselves, for as long as each
        batch empties the peer's ring (*drained* says whether it did).  A
        newcomer left with more than a batch is a busy peer: it queues
        behind the peers that were there before it, and waits for its
        turn.  A peer that ran dry in its own turn after more than one
        batch is busy too, and queues the same way when it has messages
        again.  A peer that sends now and then thus waits for about one
        batch, however long the busy peers' turns.
        """
        if not self.rotate_recv:
            return fair_queue(ready, take, rotate=False)
        queued = min(self._queued, len(ready))
        if 0 < queued < len(ready) and not self._newcomer_last:
            got = self._newcomer_batch(ready, take, drained, queued)
            if got is not None:
                # The queued peers' batch comes next, so that newcomers,
                # however many, cannot starve them.
                self._newcomer_last = True
                return got
            queued = self._queued  # busy peers it found are queued now
        self._newcomer_last = False
        before = len(ready)
        front = ready[0] if ready else None
        got = fair_queue(ready, take, rotate=False)
        if len(ready) < before:  # peers found dry at the front left
            queued -= before - len(ready)
            if front is not None and front is self._turn_peer and self._turn_left <= BATCH_TURN - 2:
                front.busy = True
        if queued <= 0:
            queued = len(ready)  # none of those is left: all are queued alike
        if got is not None:
            peer = got[0]
            peer.busy = False  # queued already: it has its turns
            if peer is not self._turn_peer:
                self._turn_peer, self._turn_left = peer, BATCH_TURN
            self._turn_left -= 1
            if self._turn_left == 0:
                # Behind the others queued before, ahead of any newcomer.
                ready.popleft()
                ready.insert(queued - 1, peer)
                self._turn_peer = None
        self._queued = queued
        return got

    def _newcomer_batch(
        self,
        ready: deque[P],
        take: Callable[[P], T | None],
        drained: Callable[[P], bool],
        queued: int,
    ) -> tuple[P, T] | None:
        """A batch from the first peer that joined behind the *queued* ones."""
        while len(ready) > queued:
            peer = ready[queued]
            if peer.busy:
                peer.busy = False  # it takes its place without a batch first
                queued += 1
                self._queued = queued
                continue
            item = take(peer)
            del ready[queued]
            if item is None:
                peer.in_recv = False  # dry: it leaves, as in fair_queue
                continue
            if drained(peer):
                ready.append(peer)  # still a newcomer, after the others
            else:
                ready.insert(queued, peer)  # busy: last of the queued peers
                self._queued = queued + 1
            return peer, item
        return None

    def accept(self, peer: PeerView, aux: int) -> bool:
        """May this message from *peer* be delivered?  False drops it."""
        return True

    def received(self, peer: PeerView, aux: int) -> None:
        """A message from *peer* was delivered."""

    def no_message(self, peers: Sequence[PeerView]) -> None:
        """Nothing to receive now; raise if waiting would be pointless."""

    def recv_cancelled(self) -> None:
        """A receive was cancelled."""

    # -- connections ---------------------------------------------------------

    def attached(self, peer: PeerView) -> None:
        """A new connection is ready."""

    def gone(self, peer: PeerView) -> None:
        """*peer* died or closed (what it sent may still be read)."""
