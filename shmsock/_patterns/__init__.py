"""Routing and state for each socket type.

A pattern decides which peer a message goes to or comes from, and which
operations are allowed in which state.  It never waits and never does I/O:
it looks at the peers' flags (alive, writable, readable, queued messages)
and answers.  The Trio socket does the waiting.
"""

from __future__ import annotations

from .._types import SocketType
from ._base import Pattern
from .pair import PairPattern
from .pull import PullPattern
from .push import PushPattern
from .rep import RepPattern
from .req import ReqPattern

_BY_TYPE: dict[SocketType, type[Pattern]] = {
    SocketType.PAIR: PairPattern,
    SocketType.PULL: PullPattern,
    SocketType.PUSH: PushPattern,
    SocketType.REP: RepPattern,
    SocketType.REQ: ReqPattern,
}


def make_pattern(kind: SocketType) -> Pattern:
    return _BY_TYPE[kind]()


__all__ = ["Pattern", "make_pattern"]
