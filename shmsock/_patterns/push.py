"""PUSH: round-robin over connected peers that have room.

A PUSH socket only sends.  Each message goes to the next peer, in turn,
whose ring has room; a peer with a full ring is skipped, not waited for.
With no peer that has room, or no peer at all, the socket waits.  It never
drops a message.
"""

from __future__ import annotations

from .._types import SocketType
from ._base import Pattern


class PushPattern(Pattern):
    kind = SocketType.PUSH
    can_send = True
    batch_send = True
    plain_send = True
    writes_data = True
    compatible = frozenset({SocketType.PULL})
