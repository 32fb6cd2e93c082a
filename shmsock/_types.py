"""Socket types."""

from __future__ import annotations

import enum


class SocketType(enum.IntEnum):
    """The kinds of socket, numbered as in libzmq.

    Compatible pairs: PUSH with PULL, PAIR with PAIR, REQ with REP, PUB or
    XPUB with SUB or XSUB; and, as in libzmq, DEALER with REP, DEALER and
    ROUTER, ROUTER with REQ, DEALER and ROUTER.
    """

    PAIR = 0
    PUB = 1
    SUB = 2
    REQ = 3
    REP = 4
    DEALER = 5
    ROUTER = 6
    PULL = 7
    PUSH = 8
    XPUB = 9
    XSUB = 10


#: The types that read no data from their peers (their patterns'
#: ``reads_data`` is false): what they read from a peer's ring is control
#: messages only, so their announcement that they wait on it says nothing
#: about whether they are about to send (see ``Doorbells.spin``).
READS_NO_DATA: frozenset[SocketType] = frozenset({SocketType.PUSH, SocketType.PUB, SocketType.XPUB})
