"""The sending side of a shm connection, off its hot path.

:class:`BulkSend` is a mixin of :class:`~._connection.Connection` (which
owns every slot it uses): frames above ``Framing.inline_max`` copied into
the ring's bulk region (``_bulk``) and named by DESC records, loans
(:class:`ShmLoan`, room filled in place, in the region above
``LOAN_INLINE_MAX``), :class:`Stream` (a message
written fragment by fragment, and the wait for room it announces), and
the linger's questions (``unread``, ``prepare_drain``), and control
messages (``send_control``, through the ring's ``ControlOut``).  It lives apart
so that ``_connection`` stays about one connection's rings and doorbell.

Rules:

1. **No hot path here.**  ``offer``, ``offer_batch``, ``try_write`` and
   the reads stay in ``_connection``: they call in here only for a frame
   above ``inline_max`` or a batch the ring refused as too large.
2. **All or nothing, as any offer.**  Frames are copied into the region
   privately first and become visible with the records that name them,
   written at once; when those cannot be written, the extents are taken
   back (``BulkOut.undo``).
3. **One writer at a time.**  A :class:`Stream` or a :class:`ShmLoan`
   marks the connection ``streaming`` and points its ``try_write`` at a
   refusal until it ends, so nothing else is written in between.
4. **No import of ``_connection``**, even for types: what the mixin needs
   of its connection is declared on :class:`BulkSend` for the type checker.
"""

from __future__ import annotations

import socket
from array import array
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Protocol

from ... import _bulkring as B
from ... import _ring as R
from ..._errors import CorruptMessage, MessageTooLarge
from . import _wire
from ._bulk import LOAN_INLINE_MAX, BulkOut
from ._framing import Framing
from ._region import send_fds

if TYPE_CHECKING:
    from ._control import ControlOut

__all__ = ["BulkSend", "ShmLoan", "Stream", "pass_region", "refuse"]


class SendHome(Protocol):
    """What the sending side needs of a connection's home (``_connection.Home``)."""

    framing: Framing

    def settle(self) -> None: ...


def refuse(data: bytes, n: int) -> int:
    """The send fast path of a connection that takes nothing now: always "use offer"."""
    return -1


def pass_region(sock: socket.socket, fd: int) -> None:
    """Pass the region *fd* over the doorbell *sock*; raises OSError if it cannot go."""
    send_fds(sock, _wire.REGION, [fd])


class BulkSend:
    """Bulk-region sending, loans, streams and draining, for :class:`~._connection.Connection`."""

    if TYPE_CHECKING:
        # Slots and methods of Connection, declared for the type checker
        # (which would take an empty __slots__ here to forbid setting them).
        home: SendHome
        sock: socket.socket
        tx: R.Producer
        bulk_out: BulkOut | None
        alive: bool
        peer_limit: int
        writable: bool
        streaming: bool
        try_write: Callable[[bytes, int], int]
        control: ControlOut

        def ring(self, what: bytes) -> None: ...

        def _tx_corrupt(self, exc: CorruptMessage) -> None: ...

        def write_records(
            self,
            data: bytes | memoryview,
            lens: array[int],
            flags: bytes | None,
            aux: int,
            *,
            announce: bool = False,
        ) -> int: ...

    else:
        __slots__ = ()  # Connection's slots work: the mixin adds no __dict__

    def _bulk(self) -> BulkOut:
        bulk = self.bulk_out
        if bulk is None:  # a binder's first large frame
            sock = self.sock  # (not self: no cycle)
            bulk = self.bulk_out = BulkOut(self.tx, partial(pass_region, sock))
        return bulk

    def _bulk_broken(self, exc: CorruptMessage | OSError) -> None:
        """Our side of the region failed: an impossible reader position, or a region not passed."""
        if not isinstance(exc, CorruptMessage):
            exc = CorruptMessage(f"cannot pass a bulk region to the peer: {exc}")
        self._tx_corrupt(exc)

    def send_region(self, fd: int) -> None:
        """Pass a new bulk region of our ring to the peer (before any record names it).

        Raises OSError when it cannot go (the peer is gone, or does not read
        its doorbell at all): no record may name it then.
        """
        pass_region(self.sock, fd)

    def _offer_bulk(self, frames: list[bytes], aux: int, inline: int) -> bool:
        """Write a message with frames above *inline* bytes: each in the bulk region.

        All or nothing, as any offer: the frames are copied into the region
        first, privately, and become visible with the records that name
        them, written at once; if those cannot be written, the extents are
        taken back.  No room in the region announces a wait for it.
        """
        last = len(frames) - 1
        flags = [(R.START if i == 0 else 0) | (R.MORE if i < last else 0) for i in range(last + 1)]
        return self._write_bulk(frames, flags, aux, inline)

    def _write_bulk(
        self, frames: Sequence[bytes | memoryview], flags: list[int], aux: int, inline: int
    ) -> bool:
        """Records for *frames* (with *flags*), those above *inline* bytes in the region.

        Raises MessageTooLarge (nothing written) when the frames above
        *inline* could never be in one region the peer accepts at once.
        """
        bulk = self._bulk()
        checksum = self.tx.checksum
        payloads: list[bytes | memoryview] = []
        kinds = bytearray()
        size = count = 0
        if len(frames) > 1:
            # One region for all of it, able to hold all of it at once:
            # waiting for room in one too small could never end.  (One
            # frame: put makes a region for it, which always is one.)
            try:
                bulk.ready_for([len(f) for f in frames if len(f) > inline], self.peer_limit)
            except (CorruptMessage, OSError) as exc:
                self._bulk_broken(exc)
                return False
        mark = bulk.mark()
        try:
            for frame, flag in zip(frames, flags, strict=True):
                if len(frame) <= inline:
                    payloads.append(frame)
                    kinds.append(flag)
                    continue
                desc = bulk.put(frame, checksum)
                if desc is None and not bulk.prepare_wait(len(frame)):
                    desc = bulk.put(frame, checksum)  # room appeared meanwhile
                if desc is None:
                    bulk.undo(mark)
                    self.writable = False  # the reader rings SPACE once it is there
                    return False
                payloads.append(desc)
                kinds.append(flag | R.DESC)
                size += len(frame)
                count += 1
        except (CorruptMessage, OSError) as exc:
            bulk.undo(mark)
            self._bulk_broken(exc)
            return False
        lens = array("I", map(len, payloads))
        try:
            written = self.write_records(b"".join(payloads), lens, bytes(kinds), aux, announce=True)
        except MessageTooLarge:
            # (A batch whose records exceed what the ring takes at once.)
            # Its extents are never named: left allocated, the next
            # descriptor would not start where the reader expects it.
            bulk.undo(mark)
            raise
        if written == 0:
            bulk.undo(mark)
            return False
        bulk.published(size, count)
        return True

    def loan(self, size: int) -> ShmLoan | None:
        """Room for a message of *size* bytes, filled in place (see ``Lends``).

        A frame above ``LOAN_INLINE_MAX`` (32 KiB, or ``inline_max`` if
        smaller) is an extent of the bulk region, the view the caller fills
        (no copy); a smaller one a private buffer, written into the ring at
        commit.  The ring's room for its record is
        checked now: the pipe takes no other message until the loan ends,
        so it is still there at commit.
        """
        if not self.alive:
            return None
        inline = min(self.home.framing.inline_max, LOAN_INLINE_MAX)
        need = size if size <= inline else B.DESC_SIZE
        try:
            if not self.tx.can_write(need) and (
                self.tx.prepare_wait(need) or not self.tx.can_write(need)
            ):
                self.writable = False
                return None
            if size <= inline:
                private = bytearray(size)
                return ShmLoan(self, memoryview(private), private, None, (0, 0))
            bulk = self._bulk()
            mark = bulk.mark()
            got = bulk.alloc(size)
            if got is None and not bulk.prepare_wait(size):
                got = bulk.alloc(size)  # room appeared meanwhile
        except (CorruptMessage, OSError) as exc:
            self._bulk_broken(exc)
            return None
        if got is None:
            self.writable = False
            return None
        view, desc = got
        return ShmLoan(self, view, None, desc, mark)

    def _offer_bulk_batch(self, data: bytes, lens: array[int], inline: int) -> bool:
        """A batch with messages above *inline* bytes: each of those in the bulk region.

        All or nothing, as :meth:`_offer_bulk`; raises MessageTooLarge when
        even the DESC records of the batch cannot be written at once.
        """
        self._bulk().check_batch(lens, inline)
        view = memoryview(data)
        frames: list[memoryview] = []
        at = 0
        for n in lens:
            frames.append(view[at : at + n])
            at += n
        try:
            return self._write_bulk(frames, [R.START] * len(lens), 0, inline)
        except MessageTooLarge:
            raise self.home.framing.batch_too_large(lens) from None

    def stream(self, frames: list[bytes], aux: int) -> Stream:
        return Stream(self, frames, aux)

    def prepare_wait(self, size: int) -> bool:
        """Announce a wait for room for *size* bytes (see Producer.prepare_wait).

        False (do not wait) also when our ring is found corrupt: the
        connection is then closed.
        """
        try:
            return self.tx.prepare_wait(size)
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return False

    def unread(self) -> bool:
        if not self.alive:
            return False
        try:
            return bool(self.tx.unread())
        except CorruptMessage:
            return False

    def prepare_drain(self) -> bool:
        try:
            return self.tx.prepare_drain()
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return False

    def send_control(self, frames: list[bytes]) -> bool:
        if not self.alive:
            return True
        try:
            wake = self.control.send(frames)
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return True
        if wake:
            self.ring(_wire.DATA)
        return True

    def flush_control(self) -> None:
        """Write the control messages that waited for room (see ``_control``)."""
        if self.control.pending and self.alive:
            try:
                wake = self.control.flush()
            except CorruptMessage as exc:
                self._tx_corrupt(exc)
                return
            if wake:
                self.ring(_wire.DATA)


class Stream:
    """A message written fragment by fragment as the reader frees room (see ``_framing``)."""

    __slots__ = ("_aux", "_conn", "_next", "_records")

    def __init__(self, conn: BulkSend, frames: list[bytes], aux: int) -> None:
        self._conn = conn
        self._records = conn.home.framing.fragments(frames)
        self._aux = aux
        self._next = 0
        conn.streaming = True
        conn.try_write = refuse

    def step(self) -> int:
        conn = self._conn
        records = self._records
        while self._next < len(records):
            if not conn.alive:
                return -1
            payload, flag = records[self._next]
            n = conn.write_records(payload, array("I", [len(payload)]), bytes([flag]), self._aux)
            if n:
                self._next += 1
                continue
            if not conn.alive:  # our ring to it was found corrupt and closed
                return -1
            conn.home.settle()  # before announcing: see _doorbell
            if conn.prepare_wait(len(payload)):
                conn.writable = False
                return 0
        return 1

    def close(self) -> None:
        conn = self._conn
        conn.streaming = False
        if conn.alive:
            conn.try_write = conn.tx.try_write


class ShmLoan:
    """Room for one message in our ring (inline) or its bulk region (a ``Loan``)."""

    __slots__ = ("_conn", "_desc", "_mark", "_private", "buffer", "size")

    def __init__(
        self,
        conn: BulkSend,
        buffer: memoryview,
        private: bytearray | None,
        desc: bytes | None,
        mark: tuple[int, int],
    ) -> None:
        self._conn: BulkSend | None = conn
        self.buffer = buffer
        self._private = private
        self._desc = desc
        self._mark = mark
        self.size = buffer.nbytes
        conn.streaming = True
        conn.try_write = refuse

    def commit(self) -> bool:
        conn = self._conn
        if conn is None or not conn.alive:
            return False
        desc, private = self._desc, self._private
        payload: bytes | memoryview
        if desc is None:
            # The loan's bytearray is written into the ring as it stands:
            # the ring's write is the one copy an inline loan costs.  (A
            # view of our own, not the one lent: the user may release that.)
            assert private is not None
            payload, flag = memoryview(private), R.START
        else:
            assert conn.bulk_out is not None
            payload, flag = conn.bulk_out.seal(desc, conn.tx.checksum), R.START | R.DESC
        # The room was reserved by loan(), and nothing else writes meanwhile.
        if not conn.write_records(payload, array("I", [len(payload)]), bytes([flag]), 0):
            return False  # our ring was found corrupt: the pipe is gone
        if desc is not None:
            conn.bulk_out.published(self.size, 1)  # type: ignore[union-attr]
        self.buffer.release()
        self._end(conn)
        return True

    def abandon(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self.buffer.release()
        if self._desc is not None and conn.bulk_out is not None:
            conn.bulk_out.undo(self._mark)
        self._end(conn)

    def _end(self, conn: BulkSend) -> None:
        self._conn = None
        conn.streaming = False
        if conn.alive:
            conn.try_write = conn.tx.try_write
