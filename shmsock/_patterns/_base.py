"""What every pattern provides, and the round-robin cursor they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

from .._errors import StateError
from .._types import SocketType


class PeerView(Protocol):
    """What a pattern may look at on a peer."""

    alive: bool
    writable: bool
    readable: bool
    streaming: bool

    @property
    def inbox(self) -> Sequence[object]: ...


class Pattern:
    """Base: a socket type that neither sends nor receives.

    ``send_targets`` and ``recv_sources`` return the peers to try, in
    order.  The socket tries them and reports back with ``sent`` and
    ``received``.  ``aux`` words travel with messages; REQ and REP use them
    to correlate requests and replies.
    """

    kind: ClassVar[SocketType]
    can_send: ClassVar[bool] = False
    can_recv: ClassVar[bool] = False
    # Connections this socket type keeps at once (None: unbounded).
    max_peers: ClassVar[int | None] = None

    def __init__(self) -> None:
        self._send_next = 0
        self._recv_next = 0

    # -- sending ------------------------------------------------------------

    def check_send(self) -> None:
        """Raise StateError if sending is not allowed now."""
        if not self.can_send:
            raise StateError(f"{self.kind.name} sockets cannot send")

    def send_aux(self) -> int:
        """The aux word for the next message sent."""
        return 0

    def send_targets(self, peers: Sequence[PeerView]) -> list[PeerView]:
        """Peers to try for the next message, best first."""
        return _rotation(peers, self._send_next, _can_take)

    def sent(self, peers: Sequence[PeerView], peer: PeerView) -> None:
        """The message went to *peer*."""
        self._send_next = _after(peers, peer)

    def no_target(self, peers: Sequence[PeerView]) -> None:
        """Nothing could be sent now; raise if waiting would be pointless."""

    def discard_reply(self) -> bool:
        """True when the message about to be sent is to be dropped unsent."""
        return False

    # -- receiving ----------------------------------------------------------

    def check_recv(self) -> None:
        """Raise StateError if receiving is not allowed now."""
        if not self.can_recv:
            raise StateError(f"{self.kind.name} sockets cannot receive")

    def recv_sources(self, peers: Sequence[PeerView]) -> list[PeerView]:
        """Peers to read from, in fair-queue order."""
        return _rotation(peers, self._recv_next, _has_input)

    def accept(self, peer: PeerView, aux: int) -> bool:
        """May this message from *peer* be delivered?  False drops it."""
        return True

    def received(self, peers: Sequence[PeerView], peer: PeerView, aux: int) -> None:
        """A message from *peer* was delivered."""
        self._recv_next = _after(peers, peer)

    def no_message(self, peers: Sequence[PeerView]) -> None:
        """Nothing to receive now; raise if waiting would be pointless."""

    def recv_cancelled(self) -> None:
        """A receive that was allowed to wait was cancelled."""

    # -- connections ---------------------------------------------------------

    def gone(self, peer: PeerView) -> None:
        """*peer* died or closed (its queued messages may still be read)."""


def _can_take(peer: PeerView) -> bool:
    return peer.alive and peer.writable and not peer.streaming


def _has_input(peer: PeerView) -> bool:
    return bool(peer.inbox) or peer.readable


def _rotation(peers: Sequence[PeerView], start: int, keep: object) -> list[PeerView]:
    n = len(peers)
    if n == 0:
        return []
    if n == 1:
        return [peers[0]] if keep(peers[0]) else []  # type: ignore[operator]
    start %= n
    order = [*peers[start:], *peers[:start]]
    return [p for p in order if keep(p)]  # type: ignore[operator]


def _after(peers: Sequence[PeerView], peer: PeerView) -> int:
    try:
        return peers.index(peer) + 1
    except ValueError:
        return 0
