"""DEALER: round-robin out, fair-queue in, any number of frames, no envelope.

A DEALER is a PUSH and a PULL in one socket, as in libzmq: each message
goes to the next peer, in turn, whose ring has room (a full one is
skipped, not waited for; with none that has room, or no peer, the socket
waits), and messages are taken from the peers in turn.  It adds and strips
nothing: to talk to a REP, the application writes libzmq's empty delimiter
frame itself (``[b"", *body]``), and gets ``[b"", *reply]`` back.  To a
ROUTER, what it sends arrives behind its routing id.
"""

from __future__ import annotations

from .._types import SocketType
from ._base import Pattern


class DealerPattern(Pattern):
    kind = SocketType.DEALER
    can_send = True
    can_recv = True
    batch_send = True
    batch_recv = True
    plain_send = True
    plain_recv = True
    writes_data = True
    reads_data = True
    compatible = frozenset({SocketType.REP, SocketType.DEALER, SocketType.ROUTER})
