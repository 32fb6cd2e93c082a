"""REQ: send a request, receive its reply, strictly in turn.

State machine (libzmq's REQ with REQ_RELAXED and REQ_CORRELATE built in):

- IDLE: ``send`` is allowed and moves to WAITING; ``recv`` raises
  StateError.
- WAITING (for the reply to request *id* from peer *p*): ``send`` raises
  StateError; ``recv`` returns only a message from *p* carrying *id* and
  moves to IDLE.  Any other message (a late reply to an abandoned request)
  is dropped.  If *p* dies before replying, ``recv`` raises
  trio.BrokenResourceError and moves to IDLE.  A cancelled ``recv``
  abandons the request and moves to IDLE.

Requests round-robin over connected REPs (and ROUTERs) with room.  Request
ids are non-zero 32-bit counters carried in the message's aux word; a REP
echoes the id in its reply.  A ROUTER shows the id to its application in
libzmq's envelope, and takes it back from the reply's envelope
(``router.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from .._errors import StateError
from .._types import SocketType
from ._base import Pattern
from ._queues import PipeView


class ReqPattern(Pattern):
    kind = SocketType.REQ
    can_send = True
    can_recv = True
    writes_data = True
    reads_data = True
    envelope = "request"
    compatible = frozenset({SocketType.REP, SocketType.ROUTER})

    def __init__(self) -> None:
        super().__init__()
        self._next_id = 0
        self._waiting_id = 0  # 0: IDLE
        self._waiting_pipe: PipeView | None = None
        self._broken = False  # the peer holding the request died

    def check_send(self) -> None:
        if self._waiting_id:
            raise StateError("a REQ socket must receive the reply before sending again")

    def send_aux(self) -> int:
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        return self._next_id

    def sent(self, pipe: PipeView) -> None:
        super().sent(pipe)
        self._waiting_id = self._next_id
        self._waiting_pipe = pipe
        self._broken = False

    def check_recv(self) -> None:
        if not self._waiting_id:
            raise StateError("a REQ socket must send a request before receiving")

    def accept(self, pipe: PipeView, aux: int) -> bool:
        # Replies to abandoned requests, from any peer, are read and dropped.
        return pipe is self._waiting_pipe and aux == self._waiting_id

    def received(self, pipe: PipeView, aux: int) -> None:
        self._idle()

    def no_message(self, pipes: Sequence[PipeView]) -> None:
        if self._broken:
            self._idle()
            raise trio.BrokenResourceError("the REP holding the request died before replying")

    def recv_cancelled(self) -> None:
        self._idle()

    def gone(self, pipe: PipeView) -> None:
        if pipe is self._waiting_pipe:
            self._broken = True

    def _idle(self) -> None:
        self._waiting_id = 0
        self._waiting_pipe = None
        self._broken = False
