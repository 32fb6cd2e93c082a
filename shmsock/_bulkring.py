"""Python face of the bulk-region positions (``csrc/shmbulk.c``).

The bulk half of the private binding: :mod:`shmsock._ring` holds the ring,
and :func:`shmsock._ringcore.fail` is still the one place where C return
codes become exceptions; this module only adds the classes over
``shm_bulk_writer`` and ``shm_bulk_reader``.  "No room" and "that
descriptor names a newer region" are states, returned as values.

Like the ring's classes, these hold no policy: they never wait, map, or
signal.  They do not own the memory they are given either: the caller
keeps each mapping alive while a writer or reader is attached to it, and
calls :meth:`BulkWriter.release` before unmapping
(``shmsock/_transport/shm/_bulk.py`` does both, in that order).
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from typing import Any, Final, NamedTuple

from ._ring import Consumer, Producer
from ._ringcore import fail as _fail
from ._ringcore import ffi, lib

__all__ = [
    "ALIGN",
    "DESC_SIZE",
    "HEADER_SIZE",
    "MAX_CAPACITY",
    "MIN_CAPACITY",
    "BulkReader",
    "BulkWriter",
    "Extent",
    "check_region",
    "desc_crc",
    "init_region",
    "keep_in_heap",
    "region_size",
    "verify",
]

DESC_SIZE: Final[int] = lib.SHM_DESC_SIZE
HEADER_SIZE: Final[int] = lib.SHM_BULK_HEADER_SIZE
ALIGN: Final[int] = lib.SHM_BULK_ALIGN
MIN_CAPACITY: Final[int] = lib.SHM_BULK_MIN_CAPACITY
MAX_CAPACITY: Final[int] = lib.SHM_BULK_MAX_CAPACITY
VERSION: Final[int] = lib.SHM_BULK_VERSION

_AGAIN: Final = lib.SHM_AGAIN
_NEWREGION: Final = lib.SHM_ENEWREGION


_DESC_CRC: Final = struct.Struct("<16xI12x")


def desc_crc(desc: bytes) -> int:
    """The checksum a descriptor from :meth:`BulkWriter.put` carries (0 without one)."""
    crc: int = _DESC_CRC.unpack(desc)[0]
    return crc


def region_size(capacity: int) -> int:
    """Bytes of a region with *capacity* data bytes (header included).

    Raises ValueError unless capacity is a power of two within
    [MIN_CAPACITY, MAX_CAPACITY].
    """
    size: int = lib.shm_bulk_region_size(capacity)
    if size == 0:
        raise ValueError(
            f"bulk region capacity must be a power of two from {MIN_CAPACITY} to"
            f" {MAX_CAPACITY}, not {capacity}"
        )
    return size


def init_region(region: mmap.mmap | bytearray, capacity: int, gen: int, pid: int) -> None:
    """Format the header of the writable *region* (its writer does, once)."""
    buf = ffi.from_buffer(region, require_writable=True)
    try:
        rc = lib.shm_bulk_init(buf, len(buf), capacity, gen, pid)
    finally:
        ffi.release(buf)
    if rc:
        _fail(rc)


def check_region(header: bytes, file_size: int, max_capacity: int) -> tuple[int, int]:
    """``(capacity, generation)`` of a region, from a private copy of its header.

    *file_size* is the size of the file it came from; a capacity above
    *max_capacity* is refused.  Raises CorruptMessage (``SHM_EREGION``).
    """
    cap = ffi.new("uint64_t *")
    gen = ffi.new("uint32_t *")
    rc = lib.shm_bulk_check(header, len(header), file_size, max_capacity, cap, gen)
    if rc:
        _fail(rc)
    return int(cap[0]), int(gen[0])


class BulkWriter:
    """The writer's positions in one region, for the producer of one ring.

    *region* is the writable mapping of the whole region (header
    included), formatted by :func:`init_region`.  With *prev* (the writer
    of the region this one replaces) positions continue from it.

    Descriptors come back as ``bytes`` of :data:`DESC_SIZE`: the payload of
    the DESC record that publishes the extent.  An extent is private until
    that record is published; :meth:`rewind` undoes the ones that never
    will be.
    """

    __slots__ = ("_buf", "_desc", "_w", "capacity", "gen", "max_extent")

    def __init__(
        self, producer: Producer, region: mmap.mmap, capacity: int, prev: BulkWriter | None
    ) -> None:
        self._buf = ffi.from_buffer(region, require_writable=True)
        self._w = ffi.new("shm_bulk_writer *")
        self._desc = ffi.new("uint8_t[]", DESC_SIZE)
        rc = lib.shm_bulk_writer_attach(
            self._w,
            producer._p,
            self._buf,
            len(self._buf),
            capacity,
            ffi.NULL if prev is None else prev._w,
        )
        if rc:
            self.release()
            _fail(rc)
        self.capacity = capacity
        self.gen = int(self._w.gen)
        self.max_extent = capacity // 2

    def release(self) -> None:
        """Let go of the mapping (before it is unmapped); unusable after."""
        ffi.release(self._buf)

    def put(self, data: bytes | memoryview, checksum: bool) -> bytes | None:
        """Copy *data* into a new extent; its descriptor, or None if no room now.

        The checksum is computed on *data*, not on the region.  Raises
        MessageTooLarge above :attr:`max_extent`, CorruptMessage when the
        consumer's released position is impossible.
        """
        return self._put(lib.shm_bulk_put, data, checksum)

    def put_sum(self, data: bytes | memoryview, crc: int) -> bytes | None:
        """As :meth:`put`, the checksum *crc* given: computed on the same *data* before.

        A plain copy (``shm_bulk_put_sum``): a publisher checksums a frame
        once and copies it into each subscriber's region.
        """
        return self._put(lib.shm_bulk_put_sum, data, crc)

    def _put(self, call: Any, data: bytes | memoryview, arg: int) -> bytes | None:
        """*call* (``shm_bulk_put`` or ``shm_bulk_put_sum``) on *data*; see :meth:`put`."""
        if isinstance(data, bytes):
            rc: int = call(self._w, data, len(data), arg, self._desc)
        else:
            src = ffi.from_buffer(data)
            try:
                rc = call(self._w, src, len(src), arg, self._desc)
            finally:
                ffi.release(src)
        if rc >= 0:
            desc: bytes = ffi.buffer(self._desc)[:]
            return desc
        if rc == _AGAIN:
            return None
        _fail(rc, f"frame of {len(data)} bytes exceeds the bulk region's limit {self.max_extent}")

    def alloc(self, size: int) -> tuple[int, bytes] | None:
        """Allocate an extent to fill in place: ``(offset in the mapping, descriptor)``.

        None when there is no room now.  The caller fills the extent, then
        calls :meth:`seal` on the descriptor.  Raises as :meth:`put`.
        """
        # The C side writes the descriptor into our own buffer (as put
        # does): cheaper than lending it a new bytearray.
        rc: int = lib.shm_bulk_alloc(self._w, size, self._desc)
        if rc >= 0:
            return rc, ffi.buffer(self._desc)[:]
        if rc == _AGAIN:
            return None
        _fail(rc, f"frame of {size} bytes exceeds the bulk region's limit of {self.max_extent}")

    def seal(self, desc: bytes, checksum: bool) -> bytes:
        """Checksum the filled extent *desc* names; its final descriptor."""
        desc_buf = self._desc
        ffi.memmove(desc_buf, desc, DESC_SIZE)
        rc = lib.shm_bulk_seal(self._w, desc_buf, checksum)
        if rc:
            _fail(rc)
        sealed: bytes = ffi.buffer(desc_buf)[:]
        return sealed

    @property
    def tail(self) -> int:
        """The private allocation position (for :meth:`rewind`)."""
        return int(self._w.tail)

    @property
    def released(self) -> int:
        """The consumer's released position, as the writer last saw it."""
        return int(self._w.released_cache)

    def rewind(self, tail: int) -> None:
        """Undo the allocations made since :attr:`tail` was *tail*."""
        rc = lib.shm_bulk_rewind(self._w, tail)
        if rc:
            _fail(rc)

    def prepare_wait(self, size: int) -> bool:
        """Announce that we wait for room for an extent of *size*, then re-check.

        True: sleep; the consumer reports "wake" once that room is free.
        False: the room is there (the announcement is withdrawn).
        """
        rc: int = lib.shm_bulk_prepare_wait(self._w, size)
        if rc < 0:
            _fail(rc, f"frame of {size} bytes exceeds the bulk region's limit of {self.max_extent}")
        return rc == 0

    def cancel_wait(self) -> None:
        lib.shm_bulk_cancel_wait(self._w)

    def unreleased(self) -> int:
        """Bytes allocated that the consumer has not released yet."""
        rc: int = lib.shm_bulk_unreleased(self._w)
        if rc < 0:
            _fail(rc)
        return rc


class BulkReader:
    """The reader's view of one region, for the consumer of one ring.

    The region's capacity and generation come from :func:`check_region`
    on a private copy of its header.  With *prev* (the reader of the
    region this one replaces), the release accounting carries on; without,
    and with *resync*, the first extent's position is adopted as found.

    :meth:`accept` returns each extent's place and checksum, and the
    position to :meth:`release` once it (and every extent before it) is
    done with.
    """

    __slots__ = ("_r", "capacity", "gen")

    def __init__(
        self,
        consumer: Consumer,
        capacity: int,
        gen: int,
        prev: BulkReader | None = None,
        *,
        resync: bool = False,
    ) -> None:
        self._r = ffi.new("shm_bulk_reader *")
        rc = lib.shm_bulk_reader_attach(
            self._r, consumer._c, capacity, gen, ffi.NULL if prev is None else prev._r, resync
        )
        if rc:
            _fail(rc)
        self.capacity = capacity
        self.gen = gen

    def accept(self, desc: bytes) -> Extent | None:
        """Validate the descriptor *desc*; the extent it names, or None.

        None: it names a newer region, :attr:`want_gen`; attach a reader to
        that region and call ``accept`` on it.  Raises CorruptMessage for
        an impossible descriptor; a refused one changes nothing.
        """
        if len(desc) != DESC_SIZE:
            _fail(lib.SHM_EEXTENT)
        r = self._r
        rc: int = lib.shm_bulk_accept(r, desc)
        if rc == 0:
            return Extent(int(r.offset), int(r.len), int(r.crc), bool(r.checked), int(r.expect))
        if rc == _NEWREGION:
            return None
        _fail(rc)

    @property
    def want_gen(self) -> int:
        return int(self._r.want_gen)

    @property
    def released(self) -> int:
        return int(self._r.released)

    def release(self, pos: int) -> bool:
        """Publish that everything before *pos* is released; True: wake the writer."""
        rc: int = lib.shm_bulk_release(self._r, pos)
        if rc < 0:
            _fail(rc)
        return rc == 1


class Extent(NamedTuple):
    """An accepted extent: where it is in the region's mapping, and its checksum."""

    offset: int  # from the start of the mapping (header included)
    length: int
    crc: int
    checked: bool  # the crc is to be verified
    end: int  # the position that releases it (and everything before it)


# A bytes object whose contents the caller fills (CPython's own API for
# that: PyBytes_FromStringAndSize with NULL), so a frame is written once,
# by the C copy, instead of zeroed or copied first.
_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype = ctypes.py_object
_new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


# The allocator a received frame's bytes come from (a bytes object above
# 512 bytes is PyMem_RawMalloc's), for keep_in_heap.
_raw_malloc = ctypes.pythonapi.PyMem_RawMalloc
_raw_malloc.restype = ctypes.c_void_p
_raw_malloc.argtypes = (ctypes.c_size_t,)
_raw_free = ctypes.pythonapi.PyMem_RawFree
_raw_free.restype = None
_raw_free.argtypes = (ctypes.c_void_p,)

#: glibc's ceiling for its dynamic mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX
#: on 64-bit), less room for the chunk's own header and page rounding.
HEAP_BLOCK_MAX: Final = (32 << 20) - (64 << 10)


def keep_in_heap(size: int) -> None:
    """Let blocks up to *size* bytes come from, and go back to, the malloc heap.

    glibc serves a block above its mmap threshold (128 KiB at first) with a
    fresh mmap, and gives a heap top above twice that back to the kernel
    on free: every new 1 MiB ``bytes`` then costs 256 page faults, the
    kernel zeroing each page, about four times the copy that fills it.
    glibc raises both thresholds itself when the program frees a mapped
    block larger than the threshold (its "dynamic threshold": the program
    uses blocks that large for a while).  Allocating and freeing one such
    block, never touched (so never faulted in), is that signal, given
    once instead of learnt from the first frames; nothing is set, so glibc
    keeps adapting.  Capped at glibc's ceiling (HEAP_BLOCK_MAX); with
    another allocator it costs one allocation and changes nothing.
    """
    size = min(size, HEAP_BLOCK_MAX)
    block = _raw_malloc(size)
    if block:
        _raw_free(block)


def copy_out(region: mmap.mmap, extent: Extent) -> bytes:
    """*extent*'s frame copied out of *region* into new bytes, its checksum checked on the copy.

    One pass over the region (``shm_bulk_copy_verify``): each word is
    checksummed as it is copied (above 2 MiB, each piece while it is in
    the cache).  Raises
    CorruptMessage (``SHM_EBULKCRC``) on a mismatch.
    """
    n = extent.length
    data: bytes = _new_bytes(None, n)
    dst = ffi.from_buffer(data)  # nobody else holds it yet: filling it is safe
    try:
        src = ffi.from_buffer(region)
        try:
            rc = lib.shm_bulk_copy_verify(
                dst, src + extent.offset, n, extent.crc, 1 if extent.checked else 0
            )
        finally:
            ffi.release(src)  # before anything may unmap the region
    finally:
        ffi.release(dst)
    if rc:
        _fail(rc)
    return data


def verify(copy: object, extent: Extent) -> None:
    """Check *extent*'s checksum on *copy* (bytes, or a buffer over the region).

    Raises CorruptMessage (``SHM_EBULKCRC``) on a mismatch; nothing for an
    extent that carries no checksum.
    """
    if not extent.checked:
        return
    if isinstance(copy, bytes):
        rc = lib.shm_bulk_verify(copy, extent.length, extent.crc, 1)
    else:
        buf = ffi.from_buffer(copy)
        try:
            rc = lib.shm_bulk_verify(buf, extent.length, extent.crc, 1)
        finally:
            ffi.release(buf)
    if rc:
        _fail(rc)
