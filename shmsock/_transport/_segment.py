"""Shared-memory segments: one file, one ring.

A segment is a 64-byte segment header followed by one ring (see
docs/protocol.md).  The producer of a ring creates its segment:

1. ``O_CREAT|O_EXCL`` with mode 0200 (write-only: "unfinished");
2. ``posix_fallocate`` of the whole size, so a full filesystem fails here
   with :class:`SharedMemoryFull` and never later with SIGBUS;
3. map it, write the headers, format the ring;
4. ``fchmod`` 0600: published.

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
32      32    reserved, zero
======  ====  ===================================================
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import sys
from typing import Final

from .. import _ring as R
from .._errors import SegmentError, SharedMemoryFull, VersionMismatch
from ._fs import UserDir

MAGIC: Final = b"SHMSOCK\x01"
VERSION: Final = 1
HEADER: Final = 64
ROLE_CONNECTOR: Final = 1
ROLE_BINDER: Final = 2
_HDR = struct.Struct("<8sIIQIHH")
_UNFINISHED: Final = 0o200
_MMAP_KW: dict[str, object] = {"trackfd": False} if sys.version_info >= (3, 13) else {}


class Segment:
    """A mapped segment.  ``ring`` is the ring's region within the mapping."""

    __slots__ = ("capacity", "mm", "name", "pid", "ring", "role", "sock_type")

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

    @property
    def size(self) -> int:
        return len(self.mm)

    def close(self) -> None:
        """Unmap.  Producers and consumers on ``ring`` must be released first."""
        self.ring.release()
        self.mm.close()


def segment_size(capacity: int) -> int:
    return HEADER + R.region_size(capacity)


def create(d: UserDir, name: str, capacity: int, sock_type: int, role: int) -> Segment:
    """Create, size, format and publish a segment holding an empty ring.

    Raises FileExistsError if *name* exists, SharedMemoryFull when the
    filesystem has no room.
    """
    size = segment_size(capacity)
    fd = d.create(name, _UNFINISHED)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise SharedMemoryFull(
                    f"no room for a {size}-byte segment in {d.path}: {os.strerror(exc.errno)}"
                ) from None
            raise
        mm = mmap.mmap(fd, size, **_MMAP_KW)  # type: ignore[call-overload]
        try:
            _HDR.pack_into(mm, 0, MAGIC, VERSION, HEADER, capacity, os.getpid(), sock_type, role)
            seg = Segment(name, mm, capacity, os.getpid(), sock_type, role)
            R.init_ring(seg.ring, capacity)
        except BaseException:
            mm.close()
            raise
        os.fchmod(fd, 0o600)  # published: openers may use it from now on
    except BaseException:
        d.unlink(name)
        raise
    finally:
        os.close(fd)
    return seg


def open_existing(d: UserDir, name: str, role: int) -> Segment:
    """Map someone's published segment after checking everything about it.

    Raises FileNotFoundError, UnsafeFile (symlink, not ours, wrong mode),
    SegmentError (unfinished, truncated, not a segment, wrong role) or
    VersionMismatch.
    """
    fd = d.open_raw(name)
    try:
        st = os.fstat(fd)
        if (
            stat.S_ISREG(st.st_mode)
            and stat.S_IMODE(st.st_mode) == _UNFINISHED
            and st.st_uid == os.geteuid()
        ):
            raise SegmentError(
                f"{d.path}/{name} is unfinished: its creator died before publishing it"
            )
        d.check(fd, name, 0o600)
        if st.st_size < HEADER:
            raise SegmentError(f"{d.path}/{name} is truncated ({st.st_size} bytes)")
        mm = mmap.mmap(fd, st.st_size, **_MMAP_KW)  # type: ignore[call-overload]
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
        return Segment(name, mm, capacity, pid, sock_type, seg_role)
    except BaseException:
        mm.close()
        raise
