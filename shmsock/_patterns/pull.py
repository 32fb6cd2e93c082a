"""PULL: fair-queue over all connected peers.

A PULL socket only receives.  It takes messages from its peers in turn, one
message per peer per turn (``recv_many``: up to BATCH_TURN batches per
turn, with peers that had nothing queued served between them), so a fast
peer cannot starve a slow one.  Order is kept per peer.
A peer that died is read to the end of what it sent before it is dropped.
"""

from __future__ import annotations

from .._types import SocketType
from ._base import Pattern


class PullPattern(Pattern):
    kind = SocketType.PULL
    can_recv = True
    batch_recv = True
    plain_recv = True
    reads_data = True
    compatible = frozenset({SocketType.PUSH})
