"""A publisher's large messages: copied into each subscriber's bulk region.

``shm_write_fanout`` writes a message into many rings at once, but not a
message with a frame larger than a ring record (about half the ring):
such a message's frames above ``inline_max`` go into the ring's bulk
region instead, each named by a DESC record (``_bulk``), as a PUSH's do.
A region belongs to one ring (one reader's released position, one waiter
flag, extents validated in that reader's order), so a large
message is copied into the region of each subscriber it goes to and
named by a descriptor in that subscriber's ring.  (A region shared by
every subscriber, its extents reference-counted, would save the copies,
but a slow subscriber would then hold the room of all of them, and the
regions' protocol, which readers validate, would change.)  Rules:

1. **Checksummed once.**  The first subscriber's copy computes each
   frame's CRC32C in the same pass (``BulkOut.put``); the others get a
   plain copy carrying that CRC (``BulkOut.put_sum``).  Both are computed
   on, and copied from, the publisher's private frame.
2. **Regions first.**  Before anything is written anywhere, each
   subscriber's connection has a region able to take all the message's
   large frames at once (``BulkOut.ready_for``): a region that cannot be
   made raises SharedMemoryFull with nothing sent, as for any socket.
3. **Drop: per subscriber, all or none.**  A subscriber whose region or
   ring has no room for the whole message misses it (its extents are
   taken back, nothing of it is visible) and it is counted in that ring's
   ``dropped``, exactly as a small message missed by ``shm_write_fanout``.
4. **Nodrop: every subscriber or none** (:func:`room`).  Every region's
   room is checked by allocating the message's extents and taking them
   back, and every ring's room for the records by ``shm_write_fanout``'s
   CHECK mode; a subscriber without room is announced (its reader rings
   when it frees room) and marked not writable, and nothing was written
   anywhere.  With room everywhere the write that follows cannot miss:
   we are the only writer of these rings and regions, so room only grows.
5. **In order.**  Each subscriber's records go into its ring after
   everything written to it before, so its small and large messages
   arrive in the order they were sent; the reader's side is unchanged.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ... import _bulkring as B
from ... import _ring as R
from ..._errors import CorruptMessage

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["check_batch", "flags_of", "prepare", "publish", "room", "stand_ins"]

_DESC_PAD: Final = bytes(B.DESC_SIZE)


def flags_of(frames: Sequence[object]) -> list[int]:
    """The record flags of a multipart message of these frames."""
    last = len(frames) - 1
    return [(R.START if i == 0 else 0) | (R.MORE if i < last else 0) for i in range(last + 1)]


def stand_ins(
    frames: Sequence[bytes | memoryview], flags: list[int], inline: int
) -> tuple[bytes, array[int], bytes]:
    """Records the size of the message's, a descriptor's for each large frame (room checks)."""
    payloads = [f if len(f) <= inline else _DESC_PAD for f in frames]
    return b"".join(payloads), array("I", map(len, payloads)), bytes(flags)


def prepare(conns: Sequence[Connection], frames: Sequence[bytes | memoryview], inline: int) -> None:
    """Rule 2: on every live connection, a region that takes all the large frames at once.

    (``BulkOut.ready_for``: one too small would make the message wait, or
    be missed, for ever.)  Raises SharedMemoryFull, or MessageTooLarge when
    no region a subscriber accepts could hold them (nothing written
    anywhere); a connection whose region cannot be passed, or whose
    reader's position is impossible, is ended as broken.
    """
    sizes = [len(f) for f in frames if len(f) > inline]
    for conn in conns:
        if conn.alive:
            try:
                conn._bulk().ready_for(sizes, conn.peer_limit)
            except (CorruptMessage, OSError) as exc:
                conn._bulk_broken(exc)


def room(conns: Sequence[Connection], frames: Sequence[bytes | memoryview], inline: int) -> bool:
    """Rule 4's region half: whether each live connection's region has room for the extents.

    Each without is announced and marked not writable; nothing stays
    allocated.  (The caller checks the rings' room for the records.)
    """
    big = [len(f) for f in frames if len(f) > inline]
    ok = True
    for conn in conns:
        if not conn.alive:
            continue
        bulk = conn._bulk()
        mark = bulk.mark()
        try:
            for size in big:
                if bulk.alloc(size) is None and (
                    bulk.prepare_wait(size) or bulk.alloc(size) is None
                ):
                    conn.writable = False  # its reader rings SPACE once there is room
                    ok = False
                    break
        except (CorruptMessage, OSError) as exc:
            bulk.undo(mark)
            conn._bulk_broken(exc)
            continue
        bulk.undo(mark)
    return ok


def publish(
    conns: Sequence[Connection],
    frames: Sequence[bytes | memoryview],
    flags: list[int],
    aux: int,
    inline: int,
    messages: int,
) -> int:
    """Write the records (*flags*) of *frames* into each live connection that has room.

    Frames above *inline* go into the connection's region first, named by
    DESC records; a connection without room for all of it misses it,
    *messages* counted as dropped (rule 3).  Returns how many missed it.
    """
    crcs: list[int | None] = [None] * len(frames)
    missed = 0
    for conn in conns:
        if not conn.alive:
            continue
        bulk = conn._bulk()
        checksum = conn.tx.checksum
        mark = bulk.mark()
        payloads: list[bytes | memoryview] = []
        kinds = bytearray()
        size = count = 0
        try:
            for i, frame in enumerate(frames):
                flag = flags[i]
                if len(frame) <= inline:
                    payloads.append(frame)
                    kinds.append(flag)
                    continue
                crc = crcs[i]
                if crc is None or not checksum:
                    desc = bulk.put(frame, checksum)
                    if desc is not None and checksum:
                        crcs[i] = B.desc_crc(desc)
                else:
                    desc = bulk.put_sum(frame, crc)
                if desc is None:
                    break
                payloads.append(desc)
                kinds.append(flag | R.DESC)
                size += len(frame)
                count += 1
            else:
                lens = array("I", map(len, payloads))
                if conn.write_records(b"".join(payloads), lens, bytes(kinds), aux):
                    bulk.published(size, count)
                    continue
        except (CorruptMessage, OSError) as exc:
            bulk.undo(mark)
            conn._bulk_broken(exc)
            continue
        bulk.undo(mark)
        if conn.alive:
            conn.tx.count_dropped(messages)
            missed += 1
    return missed


def check_batch(conns: Sequence[Connection], lens: array[int], inline: int) -> None:
    """Raise MessageTooLarge if a batch's large messages could never be in a region at once.

    As a PUSH's batch (``BulkSend._offer_bulk_batch``): one batch may take
    half the region its largest message needs.
    """
    for conn in conns:
        if conn.alive:
            conn._bulk().check_batch(lens, inline)
