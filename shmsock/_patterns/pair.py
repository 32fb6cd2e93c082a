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
from ._base import Pattern
from ._queues import PipeView


class PairPattern(Pattern):
    kind = SocketType.PAIR
    can_send = True
    can_recv = True
    batch_send = True
    batch_recv = True
    plain_send = True
    plain_recv = True
    writes_data = True
    reads_data = True
    compatible = frozenset({SocketType.PAIR})
    max_endpoints = 1
    max_peers = 1
    # Oldest first: what a dead peer sent comes before a new peer's.
    rotate_recv = False

    def __init__(self) -> None:
        super().__init__()
        self._lost = False  # the peer went away and no new one came

    def no_target(self, pipes: Sequence[PipeView]) -> None:
        if self._lost and not any(p.alive for p in pipes):
            raise trio.BrokenResourceError("the PAIR peer is gone")

    def no_message(self, pipes: Sequence[PipeView]) -> None:
        self.no_target(pipes)

    def attached(self, pipe: PipeView) -> None:
        self._lost = False

    def gone(self, pipe: PipeView) -> None:
        self._lost = True

    def detached(self) -> None:
        # Its one endpoint was unbound or disconnected: the PAIR is as a new
        # one, waiting for the peer that a new bind or connect brings.
        self._lost = False
