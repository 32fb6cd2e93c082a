"""Python face of the C ring (``csrc/shmring.c``): its producer and consumer.

The compiled module is loaded by :mod:`shmsock._ringcore`, which also has
the constants, the functions on whole rings, and :func:`~._ringcore.fail`,
the only place where the C return codes become exceptions; this module
re-exports them, so ``_ring`` is the one name the rest of the package
uses.  "Ring full" and "ring empty" are states, not errors, so they come
back as return values; everything else raises.

The objects here hold no policy: they never wait, retry or signal.  The
transport decides what to do with "full", "empty" and "wake".
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

from ._ringcore import (
    AGAIN,
    CONT,
    CTRL,
    DESC,
    EBULKCRC,
    EEXTENT,
    EFLAGS,
    EPOSITION,
    EREGION,
    HEADER_SIZE,
    MASK64,
    MAX_CAPACITY,
    MIN_CAPACITY,
    MORE,
    RECORD_HEADER_SIZE,
    RING_MAGIC,
    RING_VERSION,
    START,
    RingStats,
    Side,
    crc32c,
    fail,
    ffi,
    init_ring,
    lib,
    max_payload,
    messages_in,
    read_stats,
    region_size,
)
from ._ringread import Consumer, ReadBuffer

__all__ = [
    "CONT",
    "CTRL",
    "DESC",
    "EBULKCRC",
    "EEXTENT",
    "EFLAGS",
    "EPOSITION",
    "EREGION",
    "HEADER_SIZE",
    "MAX_CAPACITY",
    "MIN_CAPACITY",
    "MORE",
    "RECORD_HEADER_SIZE",
    "RING_MAGIC",
    "RING_VERSION",
    "START",
    "Consumer",
    "FanOut",
    "Producer",
    "ReadBuffer",
    "RingStats",
    "crc32c",
    "init_ring",
    "max_payload",
    "read_stats",
    "region_size",
    "spin",
]

#: What :func:`spin` returns when no ring had data (else the ring's index).
SPIN_TIMEOUT = int(lib.SHMSOCK_SPIN_TIMEOUT)
SPIN_PEER_IDLE = int(lib.SHMSOCK_SPIN_PEER_IDLE)
SPIN_DOORBELL = int(lib.SHMSOCK_SPIN_DOORBELL)


class Producer(Side):
    """The writing end of a ring in *region* (a writable buffer).

    Write methods return how the write went instead of raising for "full":

    - :meth:`write` returns 1 (written, and the consumer must be woken),
      0 (written) or -1 (no room now).
    - :meth:`write_many` returns ``(count_written, wake)``.

    They raise :class:`MessageTooLarge` for a record that can never fit and
    :class:`CorruptMessage` when the consumer's position in shared memory
    is impossible.

    ``try_write(data, len(data))`` is the C call under :meth:`write` with
    nothing around it, for the hottest path of all: it returns 0 or 1 as
    :meth:`write` does, and any negative value means "call :meth:`write`",
    which writes nothing more than it would have and turns the code into
    its result or exception.  *data* must be a bytes object.
    """

    __slots__ = ("_dropped0", "_p", "try_write")

    def __init__(self, region: object, capacity: int, *, checksum: bool = True) -> None:
        super().__init__(region, capacity)
        self._p = ffi.new("shm_producer *")
        rc = lib.shm_producer_attach(self._p, self._buf, len(self._buf), capacity)
        if rc:
            self.release()
            fail(rc)
        self._p.checksum = int(checksum)
        self._bytes0, self._msgs0 = int(self._p.bytes), int(self._p.msgs)
        self._dropped0 = int(self._p.dropped)
        # A partial calls C with no Python frame in between.
        self.try_write: Callable[[bytes, int], int] = partial(lib.shm_write_one, self._p)

    def write(self, data: bytes, flags: int = START, aux: int = 0) -> int:
        """Write one record; see the class docstring for the result."""
        if flags == START:
            if aux:
                rc: int = lib.shm_write_tagged(self._p, data, len(data), aux)
            else:
                rc = lib.shm_write_one(self._p, data, len(data))
        else:
            n, wake = self.write_records(
                data, array("I", [len(data)]), bytes([flags]), aux, atomic=True
            )
            return int(wake) if n else AGAIN
        if rc >= AGAIN:
            return rc
        fail(rc, f"record of {len(data)} bytes exceeds the ring's limit of {self.max_payload}")

    def write_many(self, messages: Sequence[bytes]) -> tuple[int, bool]:
        """Write as many leading *messages* as fit, one record each."""
        lens = array("I", map(len, messages))
        return self.write_records(b"".join(messages), lens, None, 0, atomic=False)

    def write_records(
        self,
        data: bytes | memoryview,
        lens: array[int],
        flags: bytes | None,
        aux: int,
        *,
        atomic: bool,
        announce: bool = False,
    ) -> tuple[int, bool]:
        """Write records whose payloads lie back to back in *data*.

        *lens* is an ``array('I')`` of payload sizes (ValueError if they add
        up to more than *data* holds) and *flags* a bytes
        object of one flag byte per record (None: every record is a
        one-frame message).  *aux* goes to records flagged START.  With
        *atomic*, all records are written or none.  With *announce*, a call
        that writes nothing leaves the "waiting for space" flag set, so the
        consumer reports "wake" once it frees space (see prepare_wait).
        """
        count = len(lens)
        if isinstance(data, bytes):
            buf, size = data, len(data)
        else:
            buf, size = ffi.from_buffer(data), data.nbytes
        rc: int = lib.shm_write(
            self._p,
            buf,
            size,
            ffi.from_buffer("uint32_t[]", lens),
            count,
            ffi.NULL if flags is None else flags,
            aux,
            atomic,
            announce,
        )
        if rc >= 0:
            return rc >> 1, bool(rc & 1)
        if rc == AGAIN:
            return 0, False
        fail(rc, f"a record exceeds the ring's limit of {self.max_payload} bytes")

    def can_write(self, size: int) -> bool:
        """Would a record of *size* payload bytes fit now?"""
        rc: int = lib.shm_producer_can_write(self._p, size)
        if rc < 0:
            fail(rc)
        return bool(rc)

    def prepare_wait(self, size: int) -> bool:
        """Announce that we wait for room for *size* bytes, then re-check.

        Returns True when the caller may sleep: the consumer will report
        "wake" after it next frees space.  Returns False when room appeared
        meanwhile.
        """
        rc: int = lib.shm_producer_prepare_wait(self._p, size)
        if rc < 0:
            fail(rc)
        return rc == 0

    def cancel_wait(self) -> None:
        lib.shm_producer_cancel_wait(self._p)

    def close(self) -> None:
        """Mark the ring closed (for monitoring); what it holds stays readable."""
        lib.shm_producer_close(self._p)

    @property
    def checksum(self) -> bool:
        """Whether the records written from now on carry a CRC32C.

        The owner may change it between writes: the C side reads it on each
        call, and each record says whether it carries one.
        """
        return bool(self._p.checksum)

    @checksum.setter
    def checksum(self, on: bool) -> None:
        self._p.checksum = int(on)

    def prepare_drain(self) -> bool:
        """Announce that we wait for the consumer to read everything.

        Returns True when the caller may sleep (the consumer reports "wake"
        after it next reads), False when the ring is already empty.
        """
        rc: int = lib.shm_producer_prepare_drain(self._p)
        if rc < 0:
            fail(rc)
        return rc == 0

    def unread(self) -> int:
        """Bytes written that the consumer has not read yet."""
        rc: int = lib.shm_producer_unread(self._p)
        if rc < 0:
            fail(rc)
        return rc

    def unread_messages(self) -> int:
        """Messages written whose last record the consumer has not read yet.

        The consumer's count is read from the ring header (see
        messages_in).  Raises CorruptMessage when the consumer's position
        is impossible.
        """
        unread = self.unread()
        if not unread:
            return 0
        return messages_in(unread, int(self._p.msgs) - int(self._header().msgs_read))

    @property
    def records(self) -> int:
        """Records written through this producer."""
        return int(self._p.records)

    @property
    def bytes(self) -> int:
        """Payload bytes written through this producer."""
        return (int(self._p.bytes) - self._bytes0) & MASK64

    @property
    def messages(self) -> int:
        """Messages completed through this producer (records ending a message).

        A plain read of private memory: safe from any thread, even after
        :meth:`release`.
        """
        return (int(self._p.msgs) - self._msgs0) & MASK64

    @property
    def tail(self) -> int:
        """The position after the last record written (this side's private copy)."""
        return int(self._p.tail)

    @property
    def used(self) -> int:
        """Bytes written and not yet known to be consumed (an upper bound)."""
        return int(self._p.tail - self._p.head_cache)

    @property
    def dropped(self) -> int:
        """Messages a :class:`FanOut` dropped for want of room in this ring.

        A plain read of private memory, as :attr:`messages`.
        """
        return (int(self._p.dropped) - self._dropped0) & MASK64

    def count_dropped(self, messages: int) -> None:
        """Count *messages* a publisher dropped outside a :class:`FanOut` (see :attr:`dropped`)."""
        lib.shm_producer_count_dropped(self._p, messages)

    def release(self) -> None:
        # The C state outlives the mapping (a FanOut may hold it): with no
        # ring, every call on it is refused (SHM_EINVAL) instead of writing
        # into memory that is gone.
        self._p.ring = ffi.NULL
        super().release()


class FanOut:
    """One message into several rings in one C call: a publisher's subscribers.

    Made over a fixed list of producers (which it keeps alive); each
    record's payload checksum is computed once for all of them (see
    ``shm_write_fanout`` in csrc/shmring.h).  ``write`` and
    ``write_records`` return the C result: the number of rings written
    plus the ``ANY_*`` bits; when it is not exactly ``len(producers)``,
    :meth:`results` says what became of each ring (WRITTEN, WAKE, 0 for no
    room, or a corruption code).  *mode* is DROP (a ring without room
    misses the message, and counts it in its ``dropped``), ALL (every ring
    gets it or none does; those without room are announced), CHECK (as
    ALL, writing nothing) or FITS (nothing looked at: only whether every
    ring could ever take it, MessageTooLarge if not).
    """

    DROP: Final = lib.SHM_FAN_DROP
    ALL: Final = lib.SHM_FAN_ALL
    CHECK: Final = lib.SHM_FAN_CHECK
    FITS: Final = lib.SHM_FAN_FITS
    WRITTEN: Final = lib.SHM_FAN_WRITTEN
    WAKE: Final = lib.SHM_FAN_WAKE
    ANY_WAKE: Final = lib.SHM_FAN_ANY_WAKE
    ANY_FULL: Final = lib.SHM_FAN_ANY_FULL
    ANY_ERROR: Final = lib.SHM_FAN_ANY_ERROR
    COUNT: Final = 0xFFFFFFFF  # the bits of the result that count rings written

    __slots__ = ("_one", "_producers", "_ps", "_results", "n")

    def __init__(self, producers: Sequence[Producer]) -> None:
        self._producers = tuple(producers)
        self.n = n = len(self._producers)
        self._ps = ffi.new("shm_producer *[]", [p._p for p in self._producers])
        self._results = ffi.new("int8_t[]", max(n, 1))
        self._one = partial(lib.shm_write_fanout_one, self._ps, n)

    def write(self, data: bytes, mode: int = 0) -> int:
        """Write a one-frame message (aux 0) into the rings (see the class docstring)."""
        rc: int = self._one(data, len(data), mode, self._results)
        if rc < 0:
            fail(rc, f"a message of {len(data)} bytes exceeds a ring's record limit")
        return rc

    def write_records(
        self, data: bytes, lens: array[int], flags: bytes | None, aux: int, mode: int = 0
    ) -> int:
        """Write records whose payloads lie back to back in *data* into every ring.

        As Producer.write_records: *flags* holds a flag byte per record, so
        the records make one message (*aux* goes to its START record), or
        is None: then every record is a one-frame message with aux 0, a
        batch, and a ring gets the whole batch or none of it (DROP counts
        each message of a batch a ring missed).  Results as for :meth:`write`.
        """
        rc: int = lib.shm_write_fanout(
            self._ps,
            self.n,
            data,
            len(data),
            ffi.from_buffer("uint32_t[]", lens),
            len(lens),
            ffi.NULL if flags is None else flags,
            aux,
            mode,
            self._results,
        )
        if rc < 0:
            fail(rc, "a record exceeds a ring's record limit, or the records are more than a ring")
        return rc

    def write_batch(self, data: bytes, lens: array[int], mode: int = 0) -> int:
        """Write a batch of one-frame messages into every ring, in one call
        (``write_records`` with no flags)."""
        return self.write_records(data, lens, None, 0, mode)

    def results(self) -> list[int]:
        """What became of each ring in the last write (see the class docstring)."""
        return ffi.unpack(self._results, self.n)  # type: ignore[no-any-return]


def spin(
    consumers: Sequence[Consumer],
    producers: Sequence[Producer | None],
    fds: Sequence[int],
    max_ns: int,
) -> int:
    """Watch *consumers* for data for up to *max_ns*, without the GIL.

    ``producers[i]`` is the producer of the ring that the peer of
    ``consumers[i]`` reads (None if there is none), ``fds[i]`` that peer's
    doorbell (-1 for none).  Returns the index of a consumer with something
    to read (data, or a position its read will report), or
    :data:`SPIN_TIMEOUT`, :data:`SPIN_PEER_IDLE` (every peer announced that
    it sleeps: no answer is coming) or :data:`SPIN_DOORBELL` (a doorbell has
    a byte or hung up).  The mechanism only: how long to spin, and whether
    at all, is the caller's (shmsock/_spin.c says how it yields the CPU).
    """
    n = len(consumers)
    if n == 1:
        p = producers[0]
        rc: int = lib.shmsock_spin(
            [consumers[0]._c],
            ffi.NULL if p is None else [p._p],
            [fds[0]],
            1,
            max_ns,
            ffi.NULL,
        )
        return rc
    txs = [p._p if p is not None else ffi.NULL for p in producers]
    rc = lib.shmsock_spin([c._c for c in consumers], txs, list(fds), n, max_ns, ffi.NULL)
    return rc
