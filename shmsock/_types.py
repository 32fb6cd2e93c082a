"""Socket types."""

from __future__ import annotations

import enum


class SocketType(enum.IntEnum):
    """The kinds of socket, numbered as in libzmq.

    Compatible pairs: PUSH with PULL, PAIR with PAIR, REQ with REP, and
    PUB or XPUB with SUB or XSUB.
    """

    PAIR = 0
    PUB = 1
    SUB = 2
    REQ = 3
    REP = 4
    PULL = 7
    PUSH = 8
    XPUB = 9
    XSUB = 10
