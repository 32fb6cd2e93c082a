"""The pipe a pattern's own messages come from: an XPUB's subscriptions, a SUB's latest.

The receive path hands back a message it took but will not deliver (a
multipart one asked for with ``recv``) with ``pipe.push_back``; a message a
pattern holds itself has no pipe to go back to, so it comes from a
:class:`Held`, whose ``push_back`` gives it back to the pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._types import SocketType

__all__ = ["Held"]


class Held:
    """Stands for the pattern as the pipe of the messages it holds."""

    __slots__ = ("_give_back", "peer_type")

    alive = True
    readable = False
    writable = False
    streaming = False
    in_send = False
    in_recv = False
    busy = False
    endpoint = ""
    peer_identity = b""
    carries_ids = False

    def __init__(
        self, give_back: Callable[[Sequence[object]], None], peer_type: SocketType
    ) -> None:
        self._give_back = give_back
        #: Whom the messages came from: a SUB's publishers, an XPUB's subscribers.
        self.peer_type = peer_type

    def push_back(self, items: Sequence[object]) -> None:
        """Give *items*, just taken, back to the pattern, in order, ahead of the rest."""
        self._give_back(items)

    def take(self) -> object | None:
        return None

    def take_batch(self, max_count: int) -> object | None:
        return None

    def drained(self) -> bool:
        return True
