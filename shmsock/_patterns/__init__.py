"""Routing, state and capabilities of each socket type.

A pattern decides which pipe a message goes to or comes from, and which
operations are allowed in which state.  It never waits and never does I/O:
it answers from the pipes' flags and its own state, and the Trio socket
does the rest.  One module per type; ``_base`` holds the contract every
type fills in, ``_queues`` the ready queues and their schedulers.

Adding a socket type: write ``<type>.py`` with a ``Pattern`` subclass (its
capabilities, and the hooks whose default does not fit), add the type to
``shmsock._types.SocketType``, and register it in ``PATTERNS`` below.
"""

from __future__ import annotations

from .._types import SocketType
from ._base import DROPPED, Dropped, Fanout, Pattern, Placement
from ._queues import BATCH_TURN, PipeView
from .dealer import DealerPattern
from .pair import PairPattern
from .pub import PubPattern
from .pull import PullPattern
from .push import PushPattern
from .rep import RepPattern
from .req import ReqPattern
from .router import RouterPattern
from .sub import SubPattern
from .xpub import XPubPattern
from .xsub import XSubPattern

#: Every socket type's pattern class.
PATTERNS: dict[SocketType, type[Pattern]] = {
    SocketType.PAIR: PairPattern,
    SocketType.PULL: PullPattern,
    SocketType.PUSH: PushPattern,
    SocketType.REP: RepPattern,
    SocketType.REQ: ReqPattern,
    SocketType.PUB: PubPattern,
    SocketType.SUB: SubPattern,
    SocketType.XPUB: XPubPattern,
    SocketType.XSUB: XSubPattern,
    SocketType.DEALER: DealerPattern,
    SocketType.ROUTER: RouterPattern,
}


def make_pattern(kind: SocketType) -> Pattern:
    """A fresh pattern for a socket of type *kind*."""
    return PATTERNS[kind]()


__all__ = [
    "BATCH_TURN",
    "DROPPED",
    "PATTERNS",
    "Dropped",
    "Fanout",
    "Pattern",
    "PipeView",
    "Placement",
    "make_pattern",
]
