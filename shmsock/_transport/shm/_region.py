"""Bulk regions as memory: sealed memfds, mapped, passed over the doorbell.

A bulk region (docs/protocol.md, "Bulk regions") is an anonymous memfd
that the writer of one ring makes when its first frame too large for a
record comes, and passes to the reader over the connection's doorbell
(SCM_RIGHTS).  Rules:

1. **Sealed before it leaves.**  The writer allocates the whole region
   (``posix_fallocate``: no memory, :class:`SharedMemoryFull` now, never
   SIGBUS later), seals it ``F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL``,
   maps it and formats its header, and only then passes it on.  Nobody can
   change its size after that, so a mapping of it can never fault: the
   hole a truncated ring segment leaves (docs/reliability.md) does not
   exist here.
2. **Checked before it is mapped.**  The reader refuses a descriptor that
   is not a regular file, lacks those seals, has a header (read with
   ``pread`` into private memory) that is not a region's, a size other
   than the header says, or a capacity above what its own ``max_msg_size``
   can need, and maps the rest read-only.
3. **Paid for once.**  Both sides map with ``MAP_POPULATE``: a fresh
   region's first touch costs several times a warm copy, and a region is
   kept and reused for the life of the connection, never made per message.
4. **One owner releases in order.**  :class:`Region` owns the mapping and
   the cffi view the C writer holds over it, and releases the view first,
   then the mapping (from :meth:`Region.close` or its finalizer), never
   the other way round.  A mapping that user code still has views of
   (a lease, a loan's buffer kept past its block) is left to the garbage
   collector, which unmaps it when the last view goes: never a dangling
   pointer.
5. **Descriptors are close-on-exec**, received ones too
   (``MSG_CMSG_CLOEXEC``).

The region has no name, so there is nothing to clean after a crash: the
kernel frees it with its last descriptor or mapping.
"""

from __future__ import annotations

import array
import errno
import fcntl
import mmap
import os
import socket
import stat
import sys
import weakref
from collections.abc import Sequence
from typing import Final

from ... import _bulkring as B
from ... import _ring as R
from ..._errors import CorruptMessage, SharedMemoryFull

__all__ = [
    "MAX_FDS",
    "Region",
    "capacity_for",
    "capacity_for_all",
    "create_region",
    "max_capacity",
    "open_region",
    "recv_with_fds",
    "send_fds",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB

#: Regions hold at least two of the frames they were made for (so the
#: writer fills one while the reader empties the other) and, for frames up
#: to 1 MiB, eight of them up to 8 MiB.
_SMALL_REGION: Final = 8 * MiB
#: Descriptors one doorbell read takes at most; the writer sends one region
#: at a time, or a connector's few with its HELLO.
MAX_FDS: Final = 8

_SEALS: Final = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_MMAP_KW: dict[str, bool] = {"trackfd": False} if sys.version_info >= (3, 13) else {}
_FD_BYTES: Final = array.array("i").itemsize
# recv_with_fds runs on every doorbell read: plain ints, since a flag test
# against socket's IntFlag members runs enum code (0.85 us against 17 ns).
_ANC_SPACE: Final = socket.CMSG_SPACE(MAX_FDS * _FD_BYTES)
_CLOEXEC: Final = int(socket.MSG_CMSG_CLOEXEC)
_CTRUNC: Final = int(socket.MSG_CTRUNC)


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


def capacity_for(frame: int) -> int:
    """Capacity of a region made for frames of *frame* bytes."""
    frame = (frame + B.ALIGN - 1) & ~(B.ALIGN - 1)
    cap = max(_pow2(2 * frame), min(_SMALL_REGION, _pow2(8 * frame)), B.MIN_CAPACITY)
    return min(cap, B.MAX_CAPACITY)


def _aligned(sizes: Sequence[int]) -> list[int]:
    return [(n + B.ALIGN - 1) & ~(B.ALIGN - 1) for n in sizes]


def extents_need(sizes: Sequence[int]) -> int:
    """Bytes of region that extents of *sizes*, written at once, can need.

    Their aligned sizes, plus the largest once more: an extent that would
    run past the end of the data area starts at its beginning instead
    (``csrc/shmbulk.c``), which wastes less than that extent, and happens
    at most once within a region's span.  So an empty region of this size
    takes them wherever its next extent starts.  For one frame it is twice
    the frame: the rule that a region takes a frame of half its capacity.
    """
    aligned = _aligned(sizes)
    return sum(aligned) + max(aligned)


def capacity_for_all(sizes: Sequence[int], limit: int) -> int | None:
    """Capacity of a region made for extents of *sizes* written at once (one message).

    The region for the largest of them (:func:`capacity_for`) when it
    takes them all at once; else one sized as for a single frame of their
    total (two such messages fit, as two frames do); else, where a reader
    whose ``max_msg_size`` is *limit* refuses that large a region, the
    smallest that takes them at once.  None when even that is refused.
    """
    aligned = _aligned(sizes)
    total, largest = sum(aligned), max(aligned)
    need = total + largest
    most = max_capacity(limit)
    for cap in (capacity_for(largest), capacity_for(total), max(_pow2(need), B.MIN_CAPACITY)):
        if need <= cap <= most:
            return cap
    return None


def max_capacity(limit: int) -> int:
    """The largest region a reader whose ``max_msg_size`` is *limit* accepts."""
    return capacity_for(max(limit, 1))


class Region:
    """One mapped region, and the one object that unmaps it (rule 4).

    ``mm`` is the whole mapping (header included); ``fd`` the writer's
    descriptor (-1 on the reader's side, which closes its own once mapped).
    A writer attaches its C state with :meth:`attach_writer`, which holds a
    cffi view of the mapping until :meth:`close`.
    """

    __slots__ = ("__weakref__", "_finalizer", "capacity", "fd", "gen", "mm", "writer")

    def __init__(self, mm: mmap.mmap, fd: int, capacity: int, gen: int) -> None:
        self.mm = mm
        self.fd = fd
        self.capacity = capacity
        self.gen = gen
        self.writer: B.BulkWriter | None = None
        self._finalizer = weakref.finalize(self, _close, mm, fd, [None])

    def attach_writer(self, producer: R.Producer, prev: Region | None) -> B.BulkWriter:
        """The C writer's state over this region, continuing *prev*'s positions."""
        writer = B.BulkWriter(
            producer, self.mm, self.capacity, None if prev is None else prev.writer
        )
        self.writer = writer
        # The finalizer releases the writer's view before the mapping too.
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _close, self.mm, self.fd, [writer])
        return writer

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Release the writer's view, unmap (unless views remain), close the fd.

        Idempotent.
        """
        self._finalizer()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Region gen {self.gen} capacity {self.capacity} {state}>"


def _close(mm: mmap.mmap, fd: int, holders: list[B.BulkWriter | None]) -> None:
    """Rule 4's order: the C writer's view, then the mapping, then the fd."""
    for writer in holders:
        if writer is not None:
            writer.release()
    try:
        mm.close()
    except BufferError:
        pass  # views of it remain (a lease, a loan's buffer): the last one unmaps it
    if fd >= 0:
        os.close(fd)


def create_region(capacity: int, gen: int) -> Region:
    """Make, allocate, seal, map and format a region (rule 1).

    Raises SharedMemoryFull when the memory for it cannot be had.
    """
    size = B.region_size(capacity)
    fd = os.memfd_create("shmsock-bulk", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG, errno.EDQUOT):
                raise SharedMemoryFull(
                    f"no memory for a {size}-byte bulk region: {os.strerror(exc.errno)}"
                ) from None
            raise
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        mm = mmap.mmap(
            fd,
            size,
            flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
            **_MMAP_KW,
        )
    except BaseException:
        os.close(fd)
        raise
    region = Region(mm, fd, capacity, gen)
    try:
        B.init_region(mm, capacity, gen, os.getpid())
    except BaseException:
        region.close()
        raise
    return region


def _refuse(why: str) -> CorruptMessage:
    return CorruptMessage(f"bulk region refused: {why}", R.EREGION)


def open_region(fd: int, max_cap: int) -> Region:
    """Check the region in *fd* (rule 2) and map it read-only; *fd* is closed.

    Raises CorruptMessage naming what is wrong.
    """
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse("not a regular file")
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            raise _refuse("not a sealable memory file") from None
        if seals & _SEALS != _SEALS:
            raise _refuse(f"seals {seals:#x} lack shrink, grow or seal")
        header = os.pread(fd, 64, 0)
        capacity, gen = B.check_region(header, st.st_size, max_cap)
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        mm = mmap.mmap(fd, st.st_size, flags=flags, prot=mmap.PROT_READ, **_MMAP_KW)
    finally:
        os.close(fd)
    return Region(mm, -1, capacity, gen)


def send_fds(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    """Send *data* with *fds* attached (SCM_RIGHTS); raises OSError as send does."""
    sock.sendmsg(
        [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    )


def recv_with_fds(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
    """Read up to *size* bytes and the descriptors that came with them.

    The descriptors arrive close-on-exec.  Raises CorruptMessage (after
    closing what did arrive) when the peer sent more than :data:`MAX_FDS`
    at once, OSError and BlockingIOError as ``recv`` does.  (The stdlib's
    ``socket.recv_fds`` cannot ask for close-on-exec: it drops its flags.)
    """
    data, ancdata, flags, _addr = sock.recvmsg(size, _ANC_SPACE, _CLOEXEC)
    if not ancdata and not flags & _CTRUNC:
        return data, []
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % _FD_BYTES])
    if flags & _CTRUNC:
        for fd in fds:
            os.close(fd)
        raise CorruptMessage(f"the peer passed more than {MAX_FDS} descriptors at once", R.EREGION)
    return data, list(fds)
