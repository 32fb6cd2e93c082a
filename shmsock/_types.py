"""Socket types."""

from __future__ import annotations

import enum


class SocketType(enum.IntEnum):
    """The kinds of socket, numbered as in libzmq.

    Compatible pairs: PUSH with PULL, PAIR with PAIR, REQ with REP; and,
    as in libzmq, DEALER with REP, DEALER and ROUTER, ROUTER with REQ,
    DEALER and ROUTER.
    """

    PAIR = 0
    REQ = 3
    REP = 4
    DEALER = 5
    ROUTER = 6
    PULL = 7
    PUSH = 8
