"""REP: receive a request, send its reply, strictly in turn.

State machine:

- IDLE: ``recv`` is allowed; it fair-queues over all connected REQs and
  moves to OWING (a reply to request *id* of peer *p*).  ``send`` raises
  StateError.
- OWING: ``send`` writes the reply to *p*, tagged with *id*, and moves to
  IDLE.  If *p* has died meanwhile the reply is dropped without error, as
  in libzmq, and the socket moves to IDLE.  A reply larger than *p*'s
  max_msg_size raises MessageTooLarge and the REP stays OWING, so a
  smaller reply can follow.  ``recv`` raises StateError.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import StateError
from .._types import SocketType
from ._base import DROPPED, Pattern, Placement
from ._queues import PipeView


class RepPattern(Pattern):
    kind = SocketType.REP
    can_send = True
    can_recv = True
    writes_data = True
    reads_data = True
    envelope = "reply"
    compatible = frozenset({SocketType.REQ})

    def __init__(self) -> None:
        super().__init__()
        self._owed_pipe: PipeView | None = None
        self._owed_id = 0

    def check_recv(self) -> None:
        if self._owed_pipe is not None:
            raise StateError("a REP socket must send the reply before receiving again")

    def received(self, pipe: PipeView, aux: int) -> None:
        self._owed_pipe = pipe
        self._owed_id = aux

    def check_send(self) -> None:
        if self._owed_pipe is None:
            raise StateError("a REP socket must receive a request before sending")

    def send_aux(self) -> int:
        return self._owed_id

    def route(self) -> Placement:
        pipe = self._owed_pipe
        if pipe is None:
            return None
        if not pipe.alive:
            self._idle()  # the requester has gone: its reply is dropped
            return DROPPED
        if pipe.writable and not pipe.streaming:
            return pipe
        return None  # full: its transport reports room

    def targets(self, pipes: Sequence[PipeView]) -> Sequence[PipeView]:
        return [] if self._owed_pipe is None else [self._owed_pipe]

    def sent(self, pipe: PipeView) -> None:
        self._idle()

    def refused(self, pipe: PipeView) -> None:
        pass  # the owed pipe is not in turn with others: route waits for room

    def _idle(self) -> None:
        self._owed_pipe = None
        self._owed_id = 0
