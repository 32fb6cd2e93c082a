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

    @property
    def peer_type(self) -> SocketType:
        """The only type a socket of this type talks to."""
        return _PEER[self]


_PEER = {
    SocketType.PAIR: SocketType.PAIR,
    SocketType.REQ: SocketType.REP,
    SocketType.REP: SocketType.REQ,
    SocketType.PULL: SocketType.PUSH,
    SocketType.PUSH: SocketType.PULL,
}
