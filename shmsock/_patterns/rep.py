"""REP: receive a request, send its reply, strictly in turn.

State machine:

- IDLE: ``recv`` is allowed; it fair-queues over all connected REQs and
  moves to OWING (a reply to request *id* of peer *p*).  ``send`` raises
  StateError.
- OWING: ``send`` writes the reply to *p*, tagged with *id*, and moves to
  IDLE.  If *p* has died meanwhile the reply is dropped without error, as
  in libzmq.  ``recv`` raises StateError.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import StateError
from .._types import SocketType
from ._base import Pattern, PeerView


class RepPattern(Pattern):
    kind = SocketType.REP
    can_send = True
    can_recv = True

    def __init__(self) -> None:
        super().__init__()
        self._owed_peer: PeerView | None = None
        self._owed_id = 0

    def check_recv(self) -> None:
        if self._owed_peer is not None:
            raise StateError("a REP socket must send the reply before receiving again")

    def received(self, peers: Sequence[PeerView], peer: PeerView, aux: int) -> None:
        super().received(peers, peer, aux)
        self._owed_peer = peer
        self._owed_id = aux

    def check_send(self) -> None:
        if self._owed_peer is None:
            raise StateError("a REP socket must receive a request before sending")

    def send_aux(self) -> int:
        return self._owed_id

    def send_targets(self, peers: Sequence[PeerView]) -> list[PeerView]:
        peer = self._owed_peer
        return [peer] if peer is not None and peer.alive and not peer.streaming else []

    def sent(self, peers: Sequence[PeerView], peer: PeerView) -> None:
        self._owed_peer = None
        self._owed_id = 0

    def discard_reply(self) -> bool:
        """If the peer owed a reply has died, the reply is dropped (no error)."""
        if self._owed_peer is not None and not self._owed_peer.alive:
            self._owed_peer = None
            self._owed_id = 0
            return True
        return False
