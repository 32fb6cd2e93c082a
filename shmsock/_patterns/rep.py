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

Peers: REQs, whose request ids travel in the aux word, and DEALERs (a
broker's backend, say), whose requests carry libzmq's envelope in their
frames: every frame up to and including the first empty one (the
"traceback stack": routing ids, a request id, the delimiter).  The REP
hands the application the frames after it, keeps the stack, and sends it
back in front of the reply, as libzmq's REP does.  A DEALER's message
without an empty frame, or with nothing after it, is not a request: it is
dropped, as libzmq drops it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import StateError
from .._types import SocketType
from ._base import DROPPED, Pattern, Placement
from ._queues import PipeView

_REQ = SocketType.REQ


class RepPattern(Pattern):
    kind = SocketType.REP
    can_send = True
    can_recv = True
    writes_data = True
    reads_data = True
    envelope = "reply"
    compatible = frozenset({SocketType.REQ, SocketType.DEALER})

    def __init__(self) -> None:
        super().__init__()
        self._owed_pipe: PipeView | None = None
        self._owed_id = 0
        # A DEALER's request: the envelope it came with, sent back in front
        # of the reply.  Shaping is on only while DEALERs are attached (for
        # receiving) and while a reply to one is owed (for sending), so a
        # REQ's round trip costs what it did.
        self._owed_stack: list[bytes] | None = None
        self._pending_stack: list[bytes] | None = None
        self._dealers = 0
        self.shapes_send = False
        self.shapes_recv = False

    def attached(self, pipe: PipeView) -> None:
        if pipe.peer_type is not _REQ:
            self._dealers += 1
            self.shapes_recv = True

    def retired(self, pipe: PipeView) -> None:
        if pipe.peer_type is not _REQ:
            self._dealers -= 1
            self.shapes_recv = self._dealers > 0

    def incoming(self, pipe: PipeView, frames: list[bytes], aux: int) -> list[bytes] | None:
        if pipe.peer_type is _REQ:
            self._pending_stack = None
            return frames
        for i, frame in enumerate(frames):
            if not frame:
                if i + 1 == len(frames):
                    return None  # no body
                self._pending_stack = frames[: i + 1]
                return frames[i + 1 :]
        return None  # no delimiter: not a request

    def outgoing(self, frames: list[bytes]) -> tuple[list[bytes], int]:
        stack = self._owed_stack
        if stack is None:
            return frames, self._owed_id
        return stack + frames, 0

    def check_recv(self) -> None:
        if self._owed_pipe is not None:
            raise StateError("a REP socket must send the reply before receiving again")

    def received(self, pipe: PipeView, aux: int) -> None:
        self._owed_pipe = pipe
        self._owed_id = aux
        if self.shapes_recv:
            stack, self._pending_stack = self._pending_stack, None
            if pipe.peer_type is not _REQ:
                self._owed_stack = stack
                self.shapes_send = True

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
        self._owed_stack = None
        self.shapes_send = False
