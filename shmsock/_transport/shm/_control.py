"""Control messages on a ring: a SUB's subscriptions, against the data direction.

A control message travels in the ring its sender writes, among whatever
data that ring carries, as records flagged ``CTRL`` (see "Control
messages" in docs/protocol.md): every record of it has ``CTRL``, its first
``START``, every frame but its last ``MORE``; a frame is one record (never
``CONT``).  The reader hands complete control messages up
(``_assembly``); this module is the writing side.  Rules:

1. **In order, never refused** (rule 8 of ``shmsock._transport``; the
   socket has checked its size against ``MAX_CONTROL``, which fits a
   quarter of the smallest ring).  A
   message that does not fit now waits in :attr:`ControlOut.pending`, and
   every later one behind it, until the reader frees room: the write
   announces the wait, so the reader rings SPACE, and the doorbell's
   handler calls :meth:`ControlOut.flush`.
2. **The greeting goes first.**  A connector writes its socket's greeting
   into its ring before each HELLO; a binder writes it into the ring it
   made for a connector before its WELCOME.  So the peer, which reads the
   ring as the connection attaches, knows the greeting before anything
   else of ours.  What was pending goes first, so the order holds.
3. **One ControlOut per ring.**  A connector's ring outlives its binders
   (the slot owns it), and so does its ControlOut; a binder's belongs to
   the connection.
"""

from __future__ import annotations

from array import array
from collections import deque
from typing import Final

from ... import _ring as R

__all__ = ["ControlOut", "encode_control"]

_FIRST: Final = R.START | R.CTRL


def encode_control(frames: list[bytes]) -> tuple[bytes, array[int], bytes]:
    """A control message as records: joined payloads, lengths, flags."""
    last = len(frames) - 1
    flags = bytearray()
    for i in range(len(frames)):
        f = _FIRST if i == 0 else R.CTRL
        if i < last:
            f |= R.MORE
        flags.append(f)
    return b"".join(frames), array("I", map(len, frames)), bytes(flags)


class ControlOut:
    """The control messages of one ring (see the module docstring)."""

    __slots__ = ("owed", "pending", "tx")

    def __init__(self, tx: R.Producer) -> None:
        self.tx = tx
        self.pending: deque[tuple[bytes, array[int], bytes]] = deque()
        #: A write asked to ring the reader's doorbell while there was none
        #: (a connector between its HELLO and the binder's WELCOME): the
        #: connection rings it as it attaches, or the reader, which
        #: announced an empty ring, would never look at it.
        self.owed = False

    def send(self, frames: list[bytes]) -> bool:
        """Write a control message now, or queue it (rule 1); True: ring the reader's doorbell.

        Raises CorruptMessage when the reader's position in the ring is
        impossible (the ring is then useless).
        """
        self.pending.append(encode_control(frames))
        return self.flush()

    def greet(self, messages: list[list[bytes]]) -> bool:
        """Write the socket's greeting (rule 2); True: ring the reader's doorbell."""
        for frames in messages:
            self.pending.append(encode_control(frames))
        return self.flush()

    def flush(self) -> bool:
        """Write what is pending, in order, as far as it fits; True: ring the doorbell."""
        pending = self.pending
        wake = False
        while pending:
            data, lens, flags = pending[0]
            n, woke = self.tx.write_records(data, lens, flags, 0, atomic=True, announce=True)
            wake |= woke
            if not n:
                break  # announced: the reader rings SPACE once it is free
            pending.popleft()
        return wake
