"""Frames too large for a ring record: one copy in, a descriptor, one copy out.

Rules (docs/protocol.md, "Bulk regions", has the bytes):

1. **Inline or bulk is decided by size alone** (:func:`inline_limit`):
   frames up to 64 KiB, or half the ring's largest record if that is
   smaller, go into the ring as today; larger ones are copied once into
   the writer's bulk region and travel as a DESC record, in order with
   everything else on the ring.  A loan above :data:`LOAN_INLINE_MAX`
   (32 KiB) goes to the region too: filling it there costs less than
   copying it into the ring.  Multipart, aux words and every check of
   the ring stay as they are.
2. **Nothing is visible before its record.**  An extent is the writer's
   private business until the DESC record naming it is published, so a
   message whose record is never published (no room in the ring, a
   cancelled send, an abandoned loan) is simply undone (:meth:`BulkOut.undo`):
   cancellation is atomic for every size.
3. **A region per ring, kept and grown.**  The writer makes its first
   region at its first large frame, sized for it (``_region.capacity_for``),
   and replaces it with a larger one when a frame comes whose own region
   would be larger, or a
   message whose large frames together need more than it holds at once
   (:meth:`BulkOut.ready_for`; up to what the peer's ``max_msg_size``
   needs).  Each region goes to the reader over
   the doorbell before any descriptor naming it is published.  A
   connector's ring outlives its binders, so a connector keeps its older
   regions until the ring has been read past their last descriptor, and
   passes them all with its HELLO to the next binder (:meth:`BulkOut.fds`).
4. **The reader trusts nothing**: the C side checks each descriptor
   against the reader's private state (``csrc/shmbulk.c``); a region is
   checked before it is mapped (``_region.open_region``); a descriptor
   naming a region that never came is corruption.
5. **One copy by default.**  :meth:`BulkIn.take` copies the extent into a
   new ``bytes``, verifies the checksum on that private copy and releases
   the extent at once.  :meth:`BulkIn.lease` hands out a read-only view
   instead (:class:`Lease`); leases may be released in any order: the
   reader tracks them privately and publishes ``bulk_released`` over the
   contiguous released prefix.  At most :data:`MAX_LEASES` are out per
   ring; past that a lease holds a private copy.
6. **Room is waited for like ring room**: the writer announces the
   position it needs released (``prepare_wait``) and the reader reports
   "wake" from the release that reaches it; the doorbell byte is the
   ring's ``S``.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final

from ... import _bulkring as B
from ... import _ring as R
from ..._errors import CorruptMessage, MessageTooLarge
from .. import Lease
from ._region import (
    Region,
    capacity_for,
    capacity_for_all,
    create_region,
    extents_need,
    max_capacity,
    open_region,
)

__all__ = [
    "INLINE_MAX",
    "LOAN_INLINE_MAX",
    "MAX_LEASES",
    "BulkIn",
    "BulkOut",
    "Held",
    "bulk_bytes",
    "inline_limit",
]

#: The largest frame that goes into the ring itself.
INLINE_MAX: Final = 64 * 1024
#: The largest loan that is a private buffer, copied into the ring when it
#: ends; a larger one is an extent of the bulk region, filled in place.
#: Below about 32 KiB that copy costs less than an extent's bookkeeping;
#: above it the extent wins, and a lease of it is then in place too (loan ->
#: lease between two processes, alternating: 24 KiB 102K msg/s copied
#: against 95K in place, 32 KiB level, 48 KiB 86-90K against 92-96K,
#: 64 KiB 80-82K against 94K).
LOAN_INLINE_MAX: Final = 32 * 1024
#: Leases one reader may hold on one ring before it copies instead.
MAX_LEASES: Final = 64
#: Regions received and not yet named by a descriptor, at most.
_MAX_PENDING: Final = 8
_GEN = struct.Struct("<20xI8x")
_M64: Final = 1 << 64
_M63: Final = 1 << 63


def inline_limit(ring_max_payload: int) -> int:
    """The largest frame that stays in a ring whose records hold *ring_max_payload*."""
    return min(INLINE_MAX, ring_max_payload)


class BulkOut:
    """The bulk regions one ring's producer writes to.

    *send_region* passes a new region's descriptor to the reader now (None:
    there is no reader now).  *keep* (a connector's ring) keeps older
    regions for the next reader (rule 3).
    """

    __slots__ = (
        "_fits",
        "_fresh_tail",
        "_keep",
        "_olds",
        "_producer",
        "bytes",
        "descs",
        "region",
        "send_region",
    )

    def __init__(
        self,
        producer: R.Producer,
        send_region: Callable[[int], None] | None = None,
        *,
        keep: bool = False,
    ) -> None:
        self._producer = producer
        self.send_region = send_region
        self._keep = keep
        self.region: Region | None = None
        # Replaced regions kept for the next reader, each with the ring
        # position after the last record that can name it (None: the
        # message that replaced it is not published yet).
        self._olds: list[list[Any]] = []
        self._fresh_tail = 0
        # The largest frame known to need no larger region than this one:
        # capacity_for costs 0.55 us, a tenth of a loan's own work.
        self._fits = 0
        self.bytes = 0  # bytes of the frames published (statistics)
        self.descs = 0  # and their number

    def _writer(self, size: int) -> B.BulkWriter:
        """The writer of a region at least as large as a frame of *size* gets, made if need be.

        A region made for smaller frames is replaced even if it could take
        this one: a region made for a 40 KiB loan (512 KiB) would hold two
        200 KiB frames at a time where their own region (2 MiB) holds ten.
        The socket refuses a frame larger than its receiver accepts, so
        the region made is no larger than the receiver accepts either.
        """
        region = self.region
        if region is not None:
            writer = region.writer
            assert writer is not None
            if size <= self._fits:
                return writer
            if capacity_for(size) <= writer.capacity:
                self._fits = size  # capacity_for never falls as the size grows
                return writer
        writer = self._make(capacity_for(size))
        self._fits = size
        return writer

    def _make(self, capacity: int) -> B.BulkWriter:
        """Replace the region with a new one of *capacity*, passed to the reader now."""
        region = self.region
        new = create_region(capacity, 1 if region is None else region.gen + 1)
        try:
            writer = new.attach_writer(self._producer, region)
            if self.send_region is not None:
                self.send_region(new.fd)
        except BaseException:
            new.close()
            raise
        self.region = new
        self._fits = 0
        self._fresh_tail = writer.tail
        if region is not None:
            if self._keep:
                self._olds.append([region, None])
            else:
                region.close()  # the reader has it, or it is in flight to it
        return writer

    def ready(self, size: int) -> None:
        """Have a region that can hold an extent of *size* (made and passed now if need be).

        Raises as :meth:`put` does when it makes one.
        """
        self._writer(size)

    def ready_for(self, sizes: Sequence[int], limit: int) -> None:
        """Have a region that takes extents of *sizes* all at once, whatever it holds (rule 3).

        For one message's frames: its extents are all allocated before its
        records are published, and the reader releases nothing it has not
        read, so a region that could never hold them all at once would
        leave the send waiting for ever.  A region that holds them when
        empty (``_region.extents_need``) is always, eventually, enough.
        A new one is sized by ``_region.capacity_for_all`` within what a
        reader whose ``max_msg_size`` is *limit* accepts.

        Raises MessageTooLarge (nothing made) when no region that reader
        accepts holds them, and as :meth:`put` does when it makes one.
        """
        if len(sizes) == 1:  # (the region for a frame is always one)
            self._writer(sizes[0])
            return
        region = self.region
        if (
            region is not None
            and max(extents_need(sizes), capacity_for(max(sizes))) <= region.capacity
        ):
            return  # it takes them, and is as large as their largest frame's (see _writer)
        capacity = capacity_for_all(sizes, limit)
        if capacity is None:
            raise MessageTooLarge(
                f"{len(sizes)} frames of {sum(sizes)} bytes in all need"
                f" {extents_need(sizes)} bytes of bulk region at once, more than a"
                f" receiver whose max_msg_size is {limit} accepts; nothing was sent"
            )
        self._make(capacity)

    def batch_room(self, size: int) -> int:
        """Bytes of extents one batch may take, whose largest frame is *size*.

        Half the region that would take *size* (the current one, or the one
        :meth:`_writer` would make): an empty region always has that much
        room in one piece, so a batch within it never waits for ever.
        """
        region = self.region
        writer = region.writer if region is not None else None
        capacity = capacity_for(size)
        if writer is not None and capacity <= writer.capacity:
            return writer.max_extent
        return capacity // 2

    def check_batch(self, lens: Sequence[int], inline: int) -> None:
        """Raise MessageTooLarge if a batch's messages above *inline* exceed :meth:`batch_room`.

        Checked before anything of the batch is written: such a batch
        could never be in the region at once.
        """
        big = [n for n in lens if n > inline]
        need = sum((n + B.ALIGN - 1) & ~(B.ALIGN - 1) for n in big)
        room = self.batch_room(max(big))
        if need > room:
            raise MessageTooLarge(
                f"a batch of {len(lens)} messages needs {need} bytes of bulk region for its"
                f" {len(big)} messages above {inline} bytes, more than one batch may take"
                f" ({room}): send smaller batches"
            )

    def _forget(self) -> None:
        """Close the replaced regions that no record left in the ring can name."""
        try:
            head = self._producer.tail - self._producer.unread()
        except CorruptMessage:
            return  # the reader's position is impossible: keep them
        keep = []
        for old in self._olds:
            end = old[1]
            if end is not None and (head - end) % _M64 < _M63:
                old[0].close()
            else:
                keep.append(old)
        self._olds = keep

    def put(self, frame: bytes | memoryview, checksum: bool) -> bytes | None:
        """Copy *frame* into a region; its descriptor, or None if no room now.

        Raises SharedMemoryFull (no memory for a region), CorruptMessage
        (the reader's released position is impossible), OSError (the new
        region could not be passed to the reader).
        """
        if self._olds:
            self._forget()
        return self._writer(len(frame)).put(frame, checksum)

    def put_sum(self, frame: bytes | memoryview, crc: int) -> bytes | None:
        """:meth:`put` with the checksum *crc* of *frame* known (copied, not computed)."""
        if self._olds:
            self._forget()
        return self._writer(len(frame)).put_sum(frame, crc)

    def alloc(self, size: int) -> tuple[memoryview, bytes] | None:
        """A writable view of a new extent of *size* bytes, and its descriptor.

        None if no room now.  Fill the view, release it, then :meth:`seal`
        the descriptor; or :meth:`undo` if the message is abandoned.
        """
        if self._olds:
            self._forget()
        writer = self._writer(size)
        got = writer.alloc(size)
        if got is None:
            return None
        assert self.region is not None
        offset, desc = got
        return memoryview(self.region.mm)[offset : offset + size], desc

    def seal(self, desc: bytes, checksum: bool) -> bytes:
        assert self.region is not None and self.region.writer is not None
        return self.region.writer.seal(desc, checksum)

    def mark(self) -> tuple[int, int]:
        """Where the next extent goes, for :meth:`undo`."""
        region = self.region
        if region is None or region.writer is None:
            return 0, 0
        return region.gen, region.writer.tail

    def undo(self, mark: tuple[int, int]) -> None:
        """Take back every extent allocated since *mark*: their records were not published."""
        region = self.region
        if region is None or region.writer is None:
            return
        gen, tail = mark
        region.writer.rewind(tail if gen == region.gen else self._fresh_tail)

    def published(self, size: int, count: int) -> None:
        """*count* frames of *size* bytes in all went out, their records published."""
        self.bytes += size
        self.descs += count
        for old in self._olds:
            if old[1] is None:
                old[1] = self._producer.tail

    def prepare_wait(self, size: int) -> bool:
        """Announce a wait for room for *size* (see BulkWriter); True: sleep."""
        return self._writer(size).prepare_wait(size)

    def cancel_wait(self) -> None:
        if self.region is not None and self.region.writer is not None:
            self.region.writer.cancel_wait()

    def fds(self) -> list[int]:
        """The descriptors of the regions a new reader may find named, oldest first.

        Forgets the older regions that no record left in the ring can name.
        """
        if self._olds:
            self._forget()
        regions = [old[0] for old in self._olds]
        if self.region is not None:
            regions.append(self.region)
        return [r.fd for r in regions]

    def close(self) -> None:
        """Release every region (the reader keeps its own mappings)."""
        for old in self._olds:
            old[0].close()
        self._olds = []
        if self.region is not None:
            self.region.close()
            self.region = None


def bulk_bytes(bulk: BulkOut | None) -> int:
    """Bytes a ring's frames in bulk regions add to its own count (a descriptor each)."""
    return 0 if bulk is None else bulk.bytes - bulk.descs * B.DESC_SIZE


class _Entry:
    """One extent the reader holds: released in any order, published in order."""

    __slots__ = ("done", "end", "region")

    def __init__(self, end: int, region: Region) -> None:
        self.end = end
        self.region = region
        self.done = False


class Held:
    """A frame in a bulk region, accepted in order and not yet taken (a HeldFrame).

    :meth:`copy` or :meth:`lease` takes it, once; dropped untaken, it is
    released (its finalizer), so a message that is never delivered (a
    late reply, a connection that ended) does not pin the region.
    """

    __slots__ = ("_entry", "_extent", "_owner")

    def __init__(self, owner: BulkIn, extent: B.Extent, entry: _Entry) -> None:
        self._owner = owner
        self._extent = extent
        self._entry = entry

    def __len__(self) -> int:
        return self._extent.length

    def copy(self) -> bytes:
        owner, entry, ext = self._owner, self._entry, self._extent
        if owner is None:
            raise ValueError("this frame was taken already")
        self._owner = None  # type: ignore[assignment]
        try:
            data = B.copy_out(entry.region.mm, ext)
        except CorruptMessage:
            owner.release(entry)
            owner.corrupt()
            raise
        owner.release(entry)
        return data

    def lease(self) -> Lease:
        owner, entry, ext = self._owner, self._entry, self._extent
        if owner is None:
            raise ValueError("this frame was taken already")
        if owner.leases >= MAX_LEASES:
            return Lease(memoryview(self.copy()))
        self._owner = None  # type: ignore[assignment]
        view = memoryview(entry.region.mm)[ext.offset : ext.offset + ext.length]
        try:
            B.verify(view, ext)
        except CorruptMessage:
            view.release()
            owner.release(entry)
            owner.corrupt()
            raise
        owner.leases += 1
        return Lease(view, partial(owner.end_lease, entry))

    def __del__(self) -> None:
        owner = self._owner
        if owner is not None:
            owner.release(self._entry)


class BulkIn:
    """The bulk regions one ring's consumer reads from (rules 4 and 5).

    *limit* is this reader's ``max_msg_size``; *resync* that it takes over
    a ring another reader was reading.  *fetch* reads the doorbell now, for
    a descriptor whose region has not been seen yet (it was sent before the
    descriptor was published, so it is there); *wake* signals the writer
    when a release reaches the room it waits for; *corrupt* ends the
    connection when a frame fails its checksum.
    """

    __slots__ = (
        "_consumer",
        "_entries",
        "_max_cap",
        "_olds",
        "_pending",
        "_resync",
        "bytes",
        "corrupt",
        "descs",
        "fetch",
        "leases",
        "reader",
        "region",
        "wake",
    )

    def __init__(self, consumer: R.Consumer, limit: int, *, resync: bool = False) -> None:
        self._consumer = consumer
        self._max_cap = max_capacity(limit)
        self._resync = resync
        self.fetch: Callable[[], None] = _nothing
        self.wake: Callable[[], None] = _nothing
        self.corrupt: Callable[[], None] = _nothing
        self._pending: dict[int, Region] = {}
        self.region: Region | None = None
        self.reader: B.BulkReader | None = None
        self._entries: deque[_Entry] = deque()
        self._olds: list[Region] = []  # replaced regions that held frames still pin
        self.leases = 0
        self.bytes = 0  # bytes of the frames accepted (statistics)
        self.descs = 0  # and their number

    def add(self, fds: list[int]) -> None:
        """Regions passed over the doorbell: check and map each (closes the fds).

        Raises CorruptMessage if one is refused or too many are waiting.
        """
        for i, fd in enumerate(fds):
            try:
                region = open_region(fd, self._max_cap)
            except BaseException:
                for rest in fds[i + 1 :]:
                    _close_fd(rest)
                raise
            old = self._pending.pop(region.gen, None)
            if old is not None:
                old.close()
            self._pending[region.gen] = region
        if len(self._pending) > _MAX_PENDING:
            raise CorruptMessage(
                f"the peer passed more than {_MAX_PENDING} bulk regions it has not used",
                R.EREGION,
            )

    def _switch(self, gen: int) -> B.BulkReader:
        """Start reading region *gen*, which a descriptor just named."""
        region = self._pending.pop(gen, None)
        if region is None:
            self.fetch()
            region = self._pending.pop(gen, None)
        if region is None:
            raise CorruptMessage(
                f"a bulk descriptor names region {gen}, which the peer never passed",
                R.EEXTENT,
            )
        try:
            reader = B.BulkReader(
                self._consumer, region.capacity, gen, self.reader, resync=self._resync
            )
        except BaseException:
            region.close()
            raise
        # Frames of up to half this region are coming, copied into new
        # bytes each (rule 5): let the allocator keep that much in its heap
        # rather than map and fault in every one (see keep_in_heap).
        B.keep_in_heap(region.capacity)
        for stale in [g for g in self._pending if g < gen]:
            self._pending.pop(stale).close()
        old = self.region
        if old is not None:
            if any(e.region is old for e in self._entries):
                self._olds.append(old)
            else:
                old.close()
        self.region, self.reader = region, reader
        return reader

    def hold(self, desc: bytes) -> Held:
        """Accept the descriptor *desc*, in ring order: the frame it names, held.

        Raises CorruptMessage when the descriptor or its region is refused.
        """
        reader = self.reader
        if reader is None:
            if len(desc) != B.DESC_SIZE:
                raise CorruptMessage("bulk descriptor has the wrong size", R.EEXTENT)
            reader = self._switch(_GEN.unpack(desc)[0])
        extent = reader.accept(desc)
        if extent is None:
            extent = self._switch(reader.want_gen).accept(desc)
            if extent is None:  # pragma: no cover - the C side refuses a gen that goes back
                raise CorruptMessage("bulk descriptor names no region", R.EEXTENT)
        region = self.region
        assert region is not None
        entry = _Entry(extent.end, region)
        self._entries.append(entry)
        self.bytes += extent.length
        self.descs += 1
        return Held(self, extent, entry)

    def take(self, desc: bytes) -> bytes:
        """The frame *desc* names, copied (see :meth:`Held.copy`)."""
        return self.hold(desc).copy()

    def lease(self, desc: bytes) -> Lease:
        """The frame *desc* names, in place (see :meth:`Held.lease`)."""
        return self.hold(desc).lease()

    def end_lease(self, entry: _Entry) -> None:
        self.leases -= 1
        self.release(entry)

    def release(self, entry: _Entry) -> None:
        """*entry* is done with: publish the released prefix; wake the writer if due."""
        if entry.done:
            return
        entry.done = True
        reader = self.reader
        if reader is None:
            return  # closed
        queue = self._entries
        end = None
        while queue and queue[0].done:
            end = queue.popleft().end
        # (A finalizer may have published a later end meanwhile.)
        if end is not None and 0 < (end - reader.released) % _M64 < _M63 and reader.release(end):
            self.wake()
        if self._olds:
            holding = {id(e.region) for e in queue}
            for region in [r for r in self._olds if id(r) not in holding]:
                self._olds.remove(region)
                region.close()

    def close(self) -> None:
        """Unmap every region; mappings that leases still view go with the last view."""
        self.reader = None
        for region in [*self._pending.values(), *self._olds]:
            region.close()
        self._pending.clear()
        self._olds = []
        if self.region is not None:
            self.region.close()
            self.region = None
        self._entries.clear()


def _nothing() -> None:
    pass


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
