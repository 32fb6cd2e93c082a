"""Shared-memory segments: one file, one ring.

A segment is a 64-byte segment header followed by one ring (see
docs/protocol.md).  The producer of a ring creates its segment:

1. ``O_CREAT|O_EXCL`` with mode 0200 (write-only: "unfinished");
2. ``posix_fallocate`` of the whole size, so a full filesystem fails here
   with :class:`SharedMemoryFull` and never later with SIGBUS;
3. map it, write the headers, format the ring;
4. ``fchmod`` 0600: published.

A connector may publish its ring with only the headers' page allocated
(``create(..., deferred=True)``), dial, and allocate the rest
(:meth:`Segment.reserve`) while the binder answers: nothing is written past
the headers before the connection exists, and a full filesystem still
fails the connect, not a later write.

An opener refuses a segment whose mode is still 0200 (its creator died
between steps 1 and 4), whose size does not match its header, or whose
magic or version is not ours, before it reads a byte of ring.

Segment header (little-endian):

======  ====  ===================================================
offset  size  field
======  ====  ===================================================
0       8     magic ``b"SHMSOCK\\x01"``
8       4     protocol version (1)
12      4     header size (64)
16      8     ring capacity
24      4     creator pid (for display only)
28      2     creator socket type
30      2     role: 1 connector's ring, 2 binder's ring
32      8     reader caught up: wall-clock ns when the ring's reader
              last found it empty and armed its wake-up (0: never;
              written by the reader, for display only)
40      24    reserved, zero
======  ====  ===================================================

Offset 32 is the only field written after publication, and not by the
creator: the reader stamps it each time it runs out of records to read (a
moment when it is about to sleep anyway, never per message), so monitoring
tools can tell when a connection last moved data.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import sys
import time
from typing import Final

from ... import _ring as R
from ..._errors import SegmentError, SharedMemoryFull, VersionMismatch
from ._fs import UserDir

MAGIC: Final = b"SHMSOCK\x01"
VERSION: Final = 1
HEADER: Final = 64
ROLE_CONNECTOR: Final = 1
ROLE_BINDER: Final = 2
_HDR = struct.Struct("<8sIIQIHH")
_RING_ID = struct.Struct("<8sI")  # ring header: magic, version
_STAMP = struct.Struct("<Q")
_STAMP_OFFSET: Final = 32
# Ring header fields read for statistics from any thread (see ring_used).
_POSITIONS = struct.Struct("<Q56xQ")  # tail at ring offset 64, head at 128
_POSITIONS_OFFSET: Final = HEADER + 64
_UNFINISHED: Final = 0o200
_MMAP_KW: dict[str, bool] = {"trackfd": False} if sys.version_info >= (3, 13) else {}


def _release(sides: list[R.Producer | R.Consumer], ring: memoryview, mm: mmap.mmap) -> None:
    """Unmap a segment: first the ring ends over it, then the view, then the mapping.

    In that order and no other: a C buffer over the view that outlives it
    (left to the garbage collector, which frees in any order) crashed
    CPython 3.11 once the view went first.  A segment's ``__del__`` calls
    this too, so the order holds however the segment is dropped: the
    collector runs every finalizer of what it frees before it clears any
    of it (PEP 442), so the sides and the view are still whole then.
    """
    for side in sides:
        side.release()
    sides.clear()
    ring.release()
    mm.close()


class Segment:
    """A mapped segment.  ``ring`` is the ring's region within the mapping.

    The producer or consumer of its ring is made by :meth:`producer` or
    :meth:`consumer`, and released by :meth:`close` (or when the segment is
    collected) before the mapping: the one order that is safe.
    """

    __slots__ = (
        "__weakref__",
        "_open",
        "_pending",
        "_sides",
        "capacity",
        "mm",
        "name",
        "pid",
        "ring",
        "role",
        "sock_type",
    )

    def __init__(
        self, name: str, mm: mmap.mmap, capacity: int, pid: int, sock_type: int, role: int
    ) -> None:
        self.name = name
        self.mm = mm
        self.capacity = capacity
        self.pid = pid
        self.sock_type = sock_type
        self.role = role
        self.ring = memoryview(mm)[HEADER : HEADER + R.region_size(capacity)]
        self._sides: list[R.Producer | R.Consumer] = []
        self._open = True  # until _release (close, or __del__)
        # A deferred create's descriptor and directory, until reserve().
        self._pending: tuple[int, str] | None = None

    def producer(self, *, checksum: bool) -> R.Producer:
        """The writing end of this segment's ring (released by :meth:`close`)."""
        side = R.Producer(self.ring, self.capacity, checksum=checksum)
        self._sides.append(side)
        return side

    def consumer(self, *, resync: bool = False) -> R.Consumer:
        """The reading end of this segment's ring (released by :meth:`close`)."""
        side = R.Consumer(self.ring, self.capacity, resync=resync)
        self._sides.append(side)
        return side

    @property
    def closed(self) -> bool:
        return not self._open

    def reserve(self) -> None:
        """Allocate the whole segment if ``create(deferred=True)`` did not.

        Raises SharedMemoryFull when the filesystem has no room; the
        segment is then unusable beyond its headers and must be dropped.
        """
        if self._pending is None:
            return
        (fd, where), self._pending = self._pending, None
        try:
            _allocate(fd, len(self.mm), where)
        finally:
            os.close(fd)

    @property
    def size(self) -> int:
        return len(self.mm)

    def mark_caught_up(self) -> None:
        """Record that the reader of this ring has just found it empty."""
        _STAMP.pack_into(self.mm, _STAMP_OFFSET, time.time_ns())

    def caught_up_ns(self) -> int:
        """The last :meth:`mark_caught_up` time, 0 if never (untrusted)."""
        value: int = _STAMP.unpack_from(self.mm, _STAMP_OFFSET)[0]
        return value

    def ring_used(self) -> int | None:
        """Bytes published in the ring and not yet read, or None once closed.

        Safe to call from another thread while the owner may close the
        segment: the positions are read by one ``unpack_from`` call, which
        holds the GIL from taking the buffer to releasing it, so a
        concurrent ``close`` either happens before (ValueError: None) or
        after, never during.  The result is clamped to the capacity.
        """
        try:
            tail, head = _POSITIONS.unpack_from(self.mm, _POSITIONS_OFFSET)
        except ValueError:
            return None
        used: int = (tail - head) & 0xFFFFFFFFFFFFFFFF
        return min(used, self.capacity)

    def close(self) -> None:
        """Release the ring's ends, then unmap.  Idempotent."""
        if self._pending is not None:
            os.close(self._pending[0])
            self._pending = None
        if self._open:
            self._open = False
            _release(self._sides, self.ring, self.mm)

    def __del__(self) -> None:
        # (Cheaper than a weakref.finalize per segment, and as safe: see
        # _release.)  Dropped unclosed, as by a fork() child that let go of
        # everything, or half-made by __init__.
        if getattr(self, "_open", False):
            self._open = False
            _release(self._sides, self.ring, self.mm)


def segment_size(capacity: int) -> int:
    return HEADER + R.region_size(capacity)


def _allocate(fd: int, size: int, where: str, *, first: int = 0) -> None:
    """Make *fd*, a segment in directory *where*, *size* bytes long, all allocated.

    With *first*, only the first *first* bytes are allocated.
    """
    try:
        if first:
            os.ftruncate(fd, size)
        os.posix_fallocate(fd, 0, first or size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise SharedMemoryFull(
                f"no room for a {size}-byte segment in {where}: {os.strerror(exc.errno)}"
            ) from None
        raise


def create(
    d: UserDir, name: str, capacity: int, sock_type: int, role: int, *, deferred: bool = False
) -> Segment:
    """Create, size, format and publish a segment holding an empty ring.

    With *deferred*, only the page holding the headers is allocated: the
    caller must call :meth:`Segment.reserve` before anything is written
    past it.  (Allocating a 1 MiB segment costs a few hundred microseconds
    here, as long as the binder's answer to a HELLO takes.)

    Raises FileExistsError if *name* exists, SharedMemoryFull when the
    filesystem has no room.
    """
    size = segment_size(capacity)
    fd = d.create(name, _UNFINISHED)
    try:
        _allocate(fd, size, d.path, first=min(size, mmap.PAGESIZE) if deferred else 0)
        mm = mmap.mmap(fd, size, **_MMAP_KW)
        try:
            _HDR.pack_into(mm, 0, MAGIC, VERSION, HEADER, capacity, os.getpid(), sock_type, role)
            seg = Segment(name, mm, capacity, os.getpid(), sock_type, role)
            R.init_ring(seg.ring, capacity)
        except BaseException:
            mm.close()
            raise
        os.fchmod(fd, 0o600)  # published: openers may use it from now on
    except BaseException:
        os.close(fd)
        d.unlink(name)
        raise
    if deferred:
        seg._pending = (fd, d.path)
    else:
        os.close(fd)
    return seg


def _refuse_unfinished(d: UserDir, name: str, st: os.stat_result) -> None:
    if (
        stat.S_ISREG(st.st_mode)
        and stat.S_IMODE(st.st_mode) == _UNFINISHED
        and st.st_uid == os.geteuid()
    ):
        raise SegmentError(f"{d.path}/{name} is unfinished: its creator died before publishing it")


def open_existing(d: UserDir, name: str, role: int) -> Segment:
    """Map someone's published segment after checking everything about it.

    Raises FileNotFoundError, UnsafeFile (symlink, FIFO or anything but a
    regular file, not ours, wrong mode), SegmentError (unfinished,
    truncated, not a segment, wrong role) or VersionMismatch (the segment
    header or the ring header has another version; both are named).  The
    file is mapped only once its size is known, and read only once the size
    matches what its header declares, so a short file never causes SIGBUS.
    """
    try:
        fd = d.open_raw(name)
    except PermissionError:
        # Without root, a write-only (unfinished) file cannot be opened for
        # reading; say what it is.  (The name is looked at, not trusted.)
        _refuse_unfinished(d, name, os.stat(name, dir_fd=d.fd, follow_symlinks=False))
        raise
    try:
        st = os.fstat(fd)
        _refuse_unfinished(d, name, st)
        d.check(fd, name, 0o600)
        if st.st_size < HEADER:
            raise SegmentError(f"{d.path}/{name} is truncated ({st.st_size} bytes)")
        mm = mmap.mmap(fd, st.st_size, **_MMAP_KW)
    finally:
        os.close(fd)
    try:
        magic, version, hsize, capacity, pid, sock_type, seg_role = _HDR.unpack_from(mm, 0)
        if magic != MAGIC:
            raise SegmentError(f"{d.path}/{name} is not a shmsock segment")
        if version != VERSION:
            raise VersionMismatch(version, VERSION, f"segment {d.path}/{name}")
        try:
            expected = segment_size(capacity)
        except ValueError:
            raise SegmentError(f"{d.path}/{name} declares an invalid capacity") from None
        if hsize != HEADER or expected != st.st_size:
            raise SegmentError(f"{d.path}/{name} does not have the size its header declares")
        if seg_role != role:
            raise SegmentError(f"{d.path}/{name} has role {seg_role}, expected {role}")
        ring_magic, ring_version = _RING_ID.unpack_from(mm, HEADER)
        if ring_magic != R.RING_MAGIC:
            raise SegmentError(f"{d.path}/{name} does not hold a shmsock ring")
        if ring_version != R.RING_VERSION:
            raise VersionMismatch(ring_version, R.RING_VERSION, f"the ring in {d.path}/{name}")
        return Segment(name, mm, capacity, pid, sock_type, seg_role)
    except BaseException:
        mm.close()
        raise
