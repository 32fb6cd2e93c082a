"""Records back into whole messages: a message is delivered complete, or never.

A message is one or more frames, and a frame one or more records
(``START`` opens a message, ``MORE`` says another frame follows, ``CONT``
says this frame goes on in the next record; see "Messages on a ring" in
docs/protocol.md).  An :class:`Assembler` takes a ring's records in order
and queues only complete messages, so a message whose writer died, gave up
or was cancelled halfway is dropped (and counted), never delivered in part.

A ``DESC`` record is a whole frame that lies in the ring's bulk region:
its payload, a descriptor, is handed to ``hold`` (the connection's
``BulkIn.hold``), which checks it, in ring order, and returns the frame
held in the region.  A message with such a frame is queued as a
:class:`~shmsock._transport.HeldMessage`, whose frames the socket copies
or leases when it delivers it.

Queued messages are ``bytes`` (one frame, aux 0: the common case, kept
cheap) or :class:`~shmsock._transport.Message`.

Control messages (records flagged ``CTRL``, see ``_control``) are
assembled apart, into :attr:`Assembler.controls`, whatever data is
half-assembled: a writer never puts a control message inside a data
message, but the two kinds are read from one ring in one batch.  A
``CTRL`` record that is a fragment (``CONT``) was not written by shmsock:
it is corruption.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from ... import _ring as R
from ..._errors import CorruptMessage
from .. import MAX_CONTROL, MAX_CONTROL_FRAMES, HeldFrame, HeldMessage, Message, Queued

__all__ = ["SIMPLE", "Assembler"]

#: The flags of a record that is a whole one-frame message.
SIMPLE: Final = R.START
_MORE_OR_CONT: Final = R.MORE | R.CONT
_CTRL: Final = R.CTRL
_BAD_CTRL: Final = R.CTRL | R.CONT
_DESC: Final = R.DESC


def _no_bulk(desc: bytes) -> HeldFrame:
    raise CorruptMessage("a bulk descriptor on a ring with no bulk region", R.EEXTENT)


class Assembler:
    """The incomplete message of one ring, and the inbox of complete ones."""

    __slots__ = (
        "controls",
        "ctrl_partial",
        "dropped",
        "frame",
        "held",
        "hold",
        "inbox",
        "max_msg",
        "partial",
        "partial_aux",
        "partial_size",
        "skipping",
    )

    def __init__(self, max_msg: int) -> None:
        self.max_msg = max_msg
        self.inbox: deque[Queued] = deque()
        self.partial: list[bytes] | None = None  # frames of an incomplete message
        self.frame: list[bytes] = []  # fragments of an incomplete frame
        self.held = False  # the incomplete message has a held frame
        #: Checks a DESC record's descriptor and returns the frame it names.
        self.hold: Callable[[bytes], HeldFrame] = _no_bulk
        self.partial_aux = 0
        self.partial_size = 0
        self.skipping = False  # dropping the rest of an oversized message
        # Messages lost: incomplete ones (the writer gave up or died), and
        # oversized ones from a peer that did not learn our limit.
        self.dropped = 0
        #: Complete control messages, for the connection to hand up.
        self.controls: list[list[bytes]] = []
        self.ctrl_partial: list[bytes] | None = None

    @property
    def idle(self) -> bool:
        """No message is half-assembled: whole records may bypass :meth:`add`."""
        return self.partial is None and not self.skipping

    def add(self, payloads: list[bytes], flags: list[int] | None, aux: list[int] | None) -> None:
        """Assemble a batch of records; complete messages go to the inbox."""
        n = len(payloads)
        flag_list = flags if flags is not None else [SIMPLE] * n
        aux_list = aux if aux is not None else [0] * n
        for payload, fl, ax in zip(payloads, flag_list, aux_list, strict=True):
            if fl & _CTRL:
                self._control(payload, fl)
                continue
            frame_or_desc: bytes | HeldFrame = payload
            if fl & _DESC:
                # Checked now, in ring order, even if the message is dropped:
                # the reader's positions in the region move with the records.
                frame_or_desc = self.hold(payload)
                if self.frame and not fl & R.START:
                    raise CorruptMessage("a bulk frame inside a fragmented frame", R.EEXTENT)
            if fl & R.START:
                if self.partial is not None:
                    self.dropped += 1  # the previous message was abandoned
                self.partial, self.frame = [], []
                self.partial_aux, self.partial_size = ax, 0
                self.skipping = self.held = False
            elif self.partial is None:
                # The tail of a message we did not see start (we took over
                # the ring mid-message), or of one we are dropping.
                if self.skipping and not fl & _MORE_OR_CONT:
                    self.skipping = False
                continue
            if frame_or_desc is not payload:
                self.partial_size += len(frame_or_desc)
                if self.partial_size > self.max_msg:
                    self.dropped += 1
                    self.partial, self.frame = None, []
                    self.skipping = bool(fl & _MORE_OR_CONT)
                    continue
                self.partial.append(frame_or_desc)  # type: ignore[arg-type]
                self.held = True
                if fl & R.MORE:
                    continue
                frames, self.partial = self.partial, None
                self.inbox.append(HeldMessage(frames, self.partial_aux))  # type: ignore[arg-type]
                continue
            self.partial_size += len(payload)
            if self.partial_size > self.max_msg:
                # Lost, not damaged: a peer that knows our limit (it read it
                # in our handshake) never sends this; one that does not (an
                # older build) cannot tell.
                self.dropped += 1
                self.partial, self.frame = None, []
                self.skipping = bool(fl & _MORE_OR_CONT)
                continue
            self.frame.append(payload)
            if fl & R.CONT:
                continue
            frame = self.frame[0] if len(self.frame) == 1 else b"".join(self.frame)
            self.frame = []
            self.partial.append(frame)
            if fl & R.MORE:
                continue
            frames, self.partial = self.partial, None
            if self.held:
                self.inbox.append(HeldMessage(frames, self.partial_aux))  # type: ignore[arg-type]
            elif len(frames) == 1 and self.partial_aux == 0:
                self.inbox.append(frames[0])
            else:
                self.inbox.append(Message(frames, self.partial_aux))

    def _control(self, payload: bytes, fl: int) -> None:
        if fl & _BAD_CTRL == _BAD_CTRL:
            raise CorruptMessage("a control record is marked as a fragment", R.EFLAGS)
        if fl & _DESC:
            raise CorruptMessage("a control record names a bulk region", R.EFLAGS)
        if fl & R.START:
            self.ctrl_partial = [payload]
        elif self.ctrl_partial is None:
            return  # the tail of one we did not see start (we took the ring over)
        else:
            self.ctrl_partial.append(payload)
        parts = self.ctrl_partial
        if len(parts) > MAX_CONTROL_FRAMES or sum(map(len, parts)) > MAX_CONTROL:
            # No shmsock socket sends one (check_control): a forged one must
            # not make us hold, or hand the socket, unbounded memory.
            self.ctrl_partial = None
            raise CorruptMessage(
                f"a control message over {MAX_CONTROL} bytes or {MAX_CONTROL_FRAMES} frames",
                R.EFLAGS,
            )
        if not fl & R.MORE:
            self.controls.append(self.ctrl_partial)
            self.ctrl_partial = None

    def abandon(self) -> None:
        """The writer is gone: an incomplete message will never complete."""
        if self.partial is not None:
            self.dropped += 1
            self.partial, self.frame = None, []
