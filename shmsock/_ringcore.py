"""The compiled C ring (``csrc/shmring.c``): loading it, its constants, its errors.

This module, :mod:`shmsock._ring` and :mod:`shmsock._bulkring` are the
only ones that call into ``shmsock._shmring``.  Loading it says what to do when it is not built
(:func:`_not_built`), and :func:`fail` is the only place where the C
return codes become exceptions.  The functions here work on whole rings
(size, format, statistics); :mod:`shmsock._ring` has the two sides.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any, Final, NoReturn

from ._errors import CorruptMessage, MessageTooLarge

__all__ = [
    "AGAIN",
    "CONT",
    "CTRL",
    "DESC",
    "EBULKCRC",
    "EEXTENT",
    "EFLAGS",
    "EPOSITION",
    "EREGION",
    "HEADER_SIZE",
    "MASK64",
    "MAX_CAPACITY",
    "MIN_CAPACITY",
    "MORE",
    "RECORD_HEADER_SIZE",
    "RING_MAGIC",
    "RING_VERSION",
    "START",
    "RingStats",
    "Side",
    "crc32c",
    "fail",
    "ffi",
    "init_ring",
    "lib",
    "max_payload",
    "messages_in",
    "read_stats",
    "region_size",
]


def _built(package: Path) -> bool:
    """Whether the directory *package* holds a compiled ``_shmring``."""
    return any((package / f"_shmring{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def _installed_elsewhere(source: Path, search: Sequence[str]) -> Path | None:
    """A built shmsock found on *search* without the entries that lead to *source*."""
    others = [entry for entry in search if Path(entry or ".").resolve() != source.parent]
    saved = sys.path[:]
    found: list[str] = []
    try:
        # Ask every finder (an editable install's too), as an import would:
        # importlib.util.find_spec would answer from sys.modules instead.
        sys.path[:] = others
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec("shmsock", None) if find_spec is not None else None
            if spec is not None:
                found += spec.submodule_search_locations or ()
    finally:
        sys.path[:] = saved
    for location in found:
        if Path(location).resolve() != source and _built(Path(location)):
            return Path(location)
    return None


def _not_built(package: Path, search: Sequence[str], error: ImportError) -> str:
    """What to tell a user whose ``import shmsock._shmring`` failed, and what to run."""
    core = "shmsock's C core (the extension module shmsock._shmring)"
    if _built(package):
        return (
            f"{core} in {package} does not load ({error}); rebuild it: "
            "`pip install -e .` in a source tree, or reinstall shmsock"
        )
    installed = _installed_elsewhere(package, search)
    if installed is not None:
        return (
            f"{core} is not built in {package}, a source tree that comes first on sys.path "
            f"and hides the shmsock installed in {installed}. Run from another directory or "
            "with `python -P` (no current directory on sys.path), or build the source tree "
            "in place with `pip install -e .`"
        )
    return (
        f"{core} is not built in {package}, a source tree. Build it in place with "
        "`pip install -e .` (this needs a C compiler and the Python headers), or install "
        "shmsock with `pip install .` and import it from another directory"
    )


try:
    from ._shmring import ffi, lib
except ImportError as exc:
    raise ImportError(
        _not_built(Path(__file__).resolve().parent, sys.path, exc), name="shmsock._shmring"
    ) from exc

START: Final = lib.SHM_F_START
MORE: Final = lib.SHM_F_MORE
CONT: Final = lib.SHM_F_CONT
DESC: Final = lib.SHM_F_DESC
CTRL: Final = lib.SHM_F_CTRL
HEADER_SIZE: Final = lib.SHM_RING_HEADER_SIZE
RECORD_HEADER_SIZE: Final = lib.SHM_REC_HEADER_SIZE
MIN_CAPACITY: Final = lib.SHM_MIN_CAPACITY
MAX_CAPACITY: Final = lib.SHM_MAX_CAPACITY
# The first 12 bytes of every ring header: magic (the C side's RING_MAGIC as
# bytes) and format version.  Openers check them to name a version mismatch.
RING_MAGIC: Final = b"SHMRING1"
RING_VERSION: Final = lib.SHM_RING_VERSION

AGAIN: Final = lib.SHM_AGAIN
EFLAGS: Final = lib.SHM_EFLAGS
MASK64: Final = (1 << 64) - 1
# Corruption codes the transport names in CorruptMessage.code itself.
EPOSITION: Final = lib.SHM_EPOSITION
EEXTENT: Final = lib.SHM_EEXTENT
EBULKCRC: Final = lib.SHM_EBULKCRC
EREGION: Final = lib.SHM_EREGION

_CORRUPTION: Final = {
    lib.SHM_EHEADER: "ring header has the wrong magic, version or capacity",
    lib.SHM_EPOSITION: "ring positions are impossible (backwards, too far ahead or misaligned)",
    lib.SHM_EMAGIC: "record has the wrong magic",
    lib.SHM_EVERSION: "record has an unknown version",
    lib.SHM_EFLAGS: "record has invalid flags",
    lib.SHM_ELENGTH: "record length is out of bounds",
    lib.SHM_ESEQUENCE: "record has an unexpected sequence number",
    lib.SHM_ECRC: "record fails its CRC32C check (payload and header fields)",
    lib.SHM_EPAD: "padding record is malformed",
    lib.SHM_EEXTENT: (
        "bulk descriptor is impossible (another region, out of bounds, out of order,"
        " overlapping what is held, or bad fields)"
    ),
    lib.SHM_EBULKCRC: "bulk payload fails its CRC32C check",
    lib.SHM_EREGION: "bulk region has the wrong magic, version, size or capacity",
}


def fail(rc: int, too_big: str = "record larger than the ring can hold") -> NoReturn:
    """Raise the exception for C return code *rc* (the one place that does)."""
    if rc in _CORRUPTION:
        raise CorruptMessage(_CORRUPTION[rc], rc)
    if rc == lib.SHM_ETOOBIG:
        raise MessageTooLarge(too_big)
    if rc == lib.SHM_ENOBUFS:
        raise BufferError("read buffer smaller than the next record")
    if rc == lib.SHM_EINVAL:
        raise ValueError("invalid ring arguments (flags, capacity, alignment or region size)")
    raise RuntimeError(f"unexpected ring return code {rc}")  # pragma: no cover


def region_size(capacity: int) -> int:
    """Bytes of memory a ring with *capacity* data bytes occupies.

    Raises ValueError unless capacity is a power of two within
    [MIN_CAPACITY, MAX_CAPACITY].
    """
    size: int = lib.shm_ring_region_size(capacity)
    if size == 0:
        raise ValueError(
            f"ring capacity must be a power of two from {MIN_CAPACITY} to {MAX_CAPACITY},"
            f" not {capacity}"
        )
    return size


def max_payload(capacity: int) -> int:
    """Largest payload one record can carry in a ring of *capacity* bytes."""
    region_size(capacity)
    return int(lib.shm_ring_max_payload(capacity))


def init_ring(region: object, capacity: int, start_pos: int = 0, start_seq: int = 0) -> None:
    """Format the writable buffer *region* as an empty ring.

    *start_pos* (a multiple of 8) and *start_seq* are the initial values of
    the free-running position and sequence counters.
    """
    buf = ffi.from_buffer(region, require_writable=True)
    try:
        rc = lib.shm_ring_init(buf, len(buf), capacity, start_pos, start_seq)
    finally:
        ffi.release(buf)
    if rc:
        fail(rc)


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C of *data*, as the ring computes it."""
    return int(lib.shm_crc32c(crc, data, len(data)))


class RingStats:
    """Counters of a ring, read from shared memory without validation.

    For display only: a hostile or crashed peer may have written anything.
    """

    __slots__ = (
        "bytes_read",
        "bytes_written",
        "capacity",
        "consumer_waiting",
        "head",
        "head_seq",
        "msgs_dropped",
        "msgs_read",
        "msgs_written",
        "producer_state",
        "producer_waiting",
        "tail",
        "tail_seq",
    )
    bytes_read: int
    bytes_written: int
    capacity: int
    consumer_waiting: int
    head: int
    head_seq: int
    msgs_dropped: int
    msgs_read: int
    msgs_written: int
    producer_state: int
    producer_waiting: int
    tail: int
    tail_seq: int

    def __init__(self, raw: object) -> None:
        for name in self.__slots__:
            setattr(self, name, int(getattr(raw, name)))

    @property
    def used(self) -> int:
        """Bytes between the positions, clamped to [0, capacity]."""
        used = (self.tail - self.head) % (1 << 64)
        return min(used, self.capacity)


def read_stats(region: object) -> RingStats:
    """Snapshot of the counters in the ring header at the start of *region*."""
    buf = ffi.from_buffer(region)
    try:
        raw = ffi.new("shm_ring_stats *")
        rc = lib.shm_ring_stats_read(buf, len(buf), raw)
    finally:
        ffi.release(buf)
    if rc:
        fail(rc)
    return RingStats(raw)


# -- what producers and consumers share ------------------------------------------


class Side:
    """What producers and consumers share: the mapping they are attached to.

    The ring header's statistics are all-time figures of the ring, which
    may have had other producers or consumers before this one; ``bytes``
    and ``messages`` count from this side's attach, so they are exact for
    this side however the ring was used before.
    """

    __slots__ = ("_buf", "_bytes0", "_msgs0", "capacity", "max_payload")

    def __init__(self, region: object, capacity: int) -> None:
        self._buf = ffi.from_buffer(region, require_writable=True)
        self.capacity = capacity
        self.max_payload = max_payload(capacity)
        self._bytes0 = self._msgs0 = 0

    def release(self) -> None:
        """Drop the reference to the mapping; the object is unusable after."""
        ffi.release(self._buf)

    def _header(self) -> Any:
        """The ring header's counters now (a ``shm_ring_stats``), unchecked."""
        raw = ffi.new("shm_ring_stats *")
        rc: int = lib.shm_ring_stats_read(self._buf, len(self._buf), raw)
        if rc:
            fail(rc)
        return raw


def messages_in(unread: int, told: int) -> int:
    """*told* unread messages, as many as *unread* bytes can hold.

    For counting what is lost when nobody will read a ring again: *told* is
    one side's own message count less the other side's, which comes from
    the ring header unchecked, so it is only as honest as that side.
    """
    return min(told & MASK64, unread // int(RECORD_HEADER_SIZE))
