"""REP: receive a request, send its reply, strictly in turn.

State machine:

- IDLE: ``recv`` is allowed; it fair-queues over all connected REQs and
  moves to OWING (a reply to request *id* of peer *p*).  ``send`` raises
  StateError.
- OWING: ``send`` writes the reply to *p*, tagged with *id*, and moves to
  IDLE.  If *p* has died meanwhile the reply is dropped without error, as
  in libzmq.  A reply larger than *p*'s max_msg_size raises
  MessageTooLarge and the REP stays OWING, so a smaller reply can follow.
  ``recv`` raises StateError.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from .._errors import StateError
from .._types import SocketType
from ._base import P, Pattern, PeerView


class RepPattern(Pattern):
    kind = SocketType.REP
    can_send = True
    can_recv = True

    def __init__(self) -> None:
        self._owed_peer: PeerView | None = None
        self._owed_id = 0

    def check_recv(self) -> None:
        if self._owed_peer is not None:
            raise StateError("a REP socket must send the reply before receiving again")

    def received(self, peer: PeerView, aux: int) -> None:
        self._owed_peer = peer
        self._owed_id = aux

    def check_send(self) -> None:
        if self._owed_peer is None:
            raise StateError("a REP socket must receive a request before sending")

    def send_aux(self) -> int:
        return self._owed_id

    def route(self, ready: deque[P], offer: Callable[[P], bool]) -> P | None:
        peer = self._owed_peer
        if peer is not None and peer.alive and not peer.streaming and offer(peer):  # type: ignore[arg-type]
            return peer  # type: ignore[return-value]
        return None

    def targets(self, peers: Sequence[P]) -> Sequence[P]:
        return [] if self._owed_peer is None else [self._owed_peer]  # type: ignore[list-item]

    def sent(self, peer: PeerView) -> None:
        self._owed_peer = None
        self._owed_id = 0

    def discard_reply(self) -> bool:
        """If the peer owed a reply has died, the reply is dropped (no error)."""
        if self._owed_peer is not None and not self._owed_peer.alive:
            self._owed_peer = None
            self._owed_id = 0
            return True
        return False
