"""PAIR: exactly one peer, both directions.

A PAIR socket binds or connects once, and a bound PAIR refuses a second
connection while it has one.  Sends wait while the peer's ring is full.
When the peer dies or closes, everything it sent is still received; after
that, send and recv raise trio.BrokenResourceError until a new peer
attaches (a connecting PAIR re-attaches by itself when a new binder binds).
A PAIR that unbinds or disconnects its endpoint itself is as a new one:
send and recv wait for a peer.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from .._types import SocketType
from ._base import Pattern, PeerView


class PairPattern(Pattern):
    kind = SocketType.PAIR
    can_send = True
    can_recv = True
    max_peers = 1
    # Oldest first: what a dead peer sent comes before a new peer's.
    rotate_recv = False

    def __init__(self) -> None:
        self._lost = False  # the peer went away and no new one came

    def no_target(self, peers: Sequence[PeerView]) -> None:
        if self._lost and not any(p.alive for p in peers):
            raise trio.BrokenResourceError("the PAIR peer is gone")

    def no_message(self, peers: Sequence[PeerView]) -> None:
        self.no_target(peers)

    def attached(self, peer: PeerView) -> None:
        self._lost = False

    def gone(self, peer: PeerView) -> None:
        self._lost = True

    def detached(self) -> None:
        # Its one endpoint was unbound or disconnected: the PAIR is as a new
        # one, waiting for the peer that a new bind or connect brings.
        self._lost = False
