"""Socket types."""

from __future__ import annotations

import enum


class SocketType(enum.IntEnum):
    """The kinds of socket, numbered as in libzmq.

    Compatible pairs: PUSH with PULL, PAIR with PAIR, REQ with REP.
    """

    PAIR = 0
    REQ = 3
    REP = 4
    PULL = 7
    PUSH = 8
