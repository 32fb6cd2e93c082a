"""A publisher's fan-out over shm connections: one C call for every subscriber.

``shm_write_fanout`` (csrc/shmring.c) writes one message, or a batch of
one-frame messages (``write_many``), into the ring of each connection,
computing each record's payload checksum once for all of them; a ring
without room misses the message (or the batch) and counts it in its header
(``shmsock stat`` shows it per connection) and in its producer (the
socket's ``dropped``).  What the C call cannot do is left here, and costs
nothing when all went well (the call's result is then exactly the number
of rings): owing a wake to readers that went to sleep (``Wakes``, rule 7 of
``_doorbell``: rung once per burst), and ending a connection whose reader
moved its position impossibly.  A message the rings refuse as too large
(a frame above a record, about half a ring) goes through each subscriber's
bulk region instead (``_fanbulk``), its frames above ``inline_max`` there;
that costs nothing on the way of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ... import _ring as R
from ..._errors import CorruptMessage, MessageTooLarge
from . import _fanbulk
from ._framing import Framing

if TYPE_CHECKING:
    from array import array

    from ._connection import Connection
    from ._doorbell import Wakes

__all__ = ["ShmFanWriter"]

_F: Final = R.FanOut
_NEEDS_LOOK: Final = _F.ANY_WAKE | _F.ANY_ERROR


class ShmFanWriter:
    """Writes one message into every connection of a fixed list (``FanWriter``)."""

    __slots__ = ("_conns", "_fan", "_inline", "_limit", "_max_record", "_n", "_wakes")

    def __init__(self, conns: Sequence[Connection], wakes: Wakes) -> None:
        self._conns = tuple(conns)
        self._fan = R.FanOut([c.tx for c in self._conns])
        self._n = len(self._conns)
        self._wakes = wakes
        # Rule 7 a: wake before the smallest ring is an eighth full, so a
        # reader never finds its ring full for want of a wake.
        self._limit = min((c.tx.capacity for c in self._conns), default=0) // 8
        # A message too large for a record goes through the bulk regions
        # (_fanbulk), its frames above inline_max (one framing per socket).
        framing = self._conns[0].home.framing if self._conns else None
        self._inline = framing.inline_max if framing else 0
        self._max_record = framing.max_record if framing else 0

    def _write(self, frames: list[bytes], aux: int, mode: int) -> int:
        """``shm_write_fanout`` for one message; MessageTooLarge: it does not fit a record."""
        if len(frames) == 1 and not aux:
            return self._fan.write(frames[0], mode)
        if max(map(len, frames)) > self._max_record:  # (not joined only to be refused)
            raise MessageTooLarge("a frame exceeds a ring's record limit")
        data, lens, flags = Framing.encode(frames)
        return self._fan.write_records(data, lens, flags, aux, mode)

    def _large(self, frames: Sequence[bytes]) -> bool:
        """Whether a message the rings refused has frames for the bulk regions."""
        return max(map(len, frames)) > self._inline

    # A message (or batch) goes into the rings whenever they can take it
    # at once, as before bulk regions existed; only one they refuse as too
    # large (a frame above a ring's largest record, about half the ring)
    # goes to the regions (_fanbulk): nothing is tested on the way.

    def write(self, frames: list[bytes], aux: int) -> None:
        try:
            rc = self._write(frames, aux, _F.DROP)
        except MessageTooLarge:
            if not self._large(frames):
                raise
            self._publish_large(frames, _fanbulk.flags_of(frames), aux, 1)
            return
        if rc != self._n:
            if rc & _NEEDS_LOOK:
                self._look(False)
            if rc & _F.ANY_FULL:  # a reader is behind: it must not sleep on a debt
                self._wakes.pay()
        if self._wakes.owed:
            self._wakes.wrote(sum(map(len, frames)), self._limit)

    def write_all(self, frames: list[bytes], aux: int) -> bool:
        """Write to every connection, or to none and return False (see ``room``)."""
        try:
            rc = self._write(frames, aux, _F.ALL)
        except MessageTooLarge:
            if not self._large(frames):
                raise
            if not self._room_large(frames, _fanbulk.flags_of(frames)):
                return False
            self._publish_large(frames, _fanbulk.flags_of(frames), aux, 1)
            return True
        if rc != self._n:
            self._look(True)
            if rc & _F.COUNT != self._n:
                self._wakes.pay()  # the caller waits for room: the readers must drain
                return bool(rc & _F.COUNT)
        if self._wakes.owed:
            self._wakes.wrote(sum(map(len, frames)), self._limit)
        return True

    def room(self, frames: list[bytes]) -> bool:
        try:
            rc = self._write(frames, 0, _F.CHECK)
        except MessageTooLarge:
            if not self._large(frames):
                raise
            return self._room_large(frames, _fanbulk.flags_of(frames))
        if rc:
            self._look(True)
            self._wakes.pay()
        return rc == 0

    def write_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        try:
            rc = self._fan.write_batch(data, lens, _F.DROP)
        except MessageTooLarge:
            if max(lens) <= self._inline:
                raise
            self._check_large_batch(messages, lens)
            self._publish_large(messages, [R.START] * len(messages), 0, len(messages))
            return
        if rc != self._n:
            if rc & _NEEDS_LOOK:
                self._look(False)
            if rc & _F.ANY_FULL:
                self._wakes.pay()
        if self._wakes.owed:
            self._wakes.wrote(len(data), self._limit)

    def write_many_all(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        try:
            rc = self._fan.write_batch(data, lens, _F.ALL)
        except MessageTooLarge:
            if max(lens) <= self._inline:
                raise
            self._check_large_batch(messages, lens)
            if not self._room_large(messages, [R.START] * len(messages)):
                return False
            self._publish_large(messages, [R.START] * len(messages), 0, len(messages))
            return True
        if rc != self._n:
            self._look(True)
            if rc & _F.COUNT != self._n:
                self._wakes.pay()
                return bool(rc & _F.COUNT)
        if self._wakes.owed:
            self._wakes.wrote(len(data), self._limit)
        return True

    def check_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        try:
            self._fan.write_batch(data, lens, _F.FITS)
        except MessageTooLarge:
            if max(lens) <= self._inline:
                raise
            self._check_large_batch(messages, lens)

    def room_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        try:
            rc = self._fan.write_batch(data, lens, _F.CHECK)
        except MessageTooLarge:
            if max(lens) <= self._inline:
                raise
            self._check_large_batch(messages, lens)
            return self._room_large(messages, [R.START] * len(messages))
        if rc:
            self._look(True)
            self._wakes.pay()
        return rc == 0

    def _check_large_batch(self, messages: list[bytes], lens: array[int]) -> None:
        """Raise MessageTooLarge unless the batch fits every ring and region at once."""
        stand, stand_lens, _ = _fanbulk.stand_ins(messages, [R.START] * len(messages), self._inline)
        self._fan.write_batch(stand, stand_lens, _F.FITS)
        _fanbulk.check_batch(self._conns, lens, self._inline)

    def _room_large(self, frames: Sequence[bytes], flags: list[int]) -> bool:
        """``room`` for a message with frames in bulk regions (``_fanbulk`` rule 4)."""
        _fanbulk.prepare(self._conns, frames)
        if not _fanbulk.room(self._conns, frames, self._inline):
            self._wakes.pay()  # the caller waits for room: the readers must drain
            return False
        data, lens, kinds = _fanbulk.stand_ins(frames, flags, self._inline)
        rc = self._fan.write_records(data, lens, kinds, 0, _F.CHECK)
        if rc:
            self._look(True)
            self._wakes.pay()
        return rc == 0

    def _publish_large(
        self, frames: Sequence[bytes], flags: list[int], aux: int, messages: int
    ) -> None:
        """Write a message (or batch) with frames in bulk regions (``_fanbulk`` rule 3)."""
        _fanbulk.prepare(self._conns, frames)
        if _fanbulk.publish(self._conns, frames, flags, aux, self._inline, messages):
            self._wakes.pay()  # a reader is behind: it must not sleep on a debt

    def _look(self, waiting: bool) -> None:
        """Ring the doorbells the call asked for, and end broken connections.

        With *waiting* (an all-or-none write), a ring without room was
        announced: its connection is not writable until its reader rings.
        """
        for conn, result in zip(self._conns, self._fan.results(), strict=True):
            if result > 0:
                if result & _F.WAKE:
                    self._wakes.owe(conn)
            elif result == 0:
                if waiting:
                    conn.writable = False
            elif conn.alive:
                conn.writable = False
                conn.home.tx_corrupt(conn, CorruptMessage("ring positions are impossible", result))

    def miss(self, pipe: object) -> None:
        for conn in self._conns:
            if conn is pipe:
                conn.fan_over += 1
