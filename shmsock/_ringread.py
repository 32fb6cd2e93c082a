"""The reading end of a ring (``csrc/shmring.c``): a consumer and its scratch buffer.

Part of the ring binding, re-exported by :mod:`shmsock._ring`, the one name
the rest of the package uses.  Like the producer, a consumer holds no
policy: "empty" is a return value, it never waits, and every error comes
from :func:`~._ringcore.fail`.  What it reads is copied out of shared
memory before anything looks at it, and the C side has validated every
position and length it gives back.
"""

from __future__ import annotations

import struct

from ._ringcore import MASK64, Side, fail, ffi, lib, messages_in

__all__ = ["Consumer", "ReadBuffer"]


_splitters: dict[tuple[int, int], struct.Struct] = {}


def _splitter(size: int, count: int) -> struct.Struct:
    """A Struct that cuts *count* payloads of *size* bytes apart."""
    key = (size, count)
    s = _splitters.get(key)
    if s is None:
        if len(_splitters) >= 256:  # sizes that vary batch to batch
            _splitters.clear()
        s = _splitters[key] = struct.Struct(f"{size}s" * count)
    return s


class ReadBuffer:
    """Private scratch memory that :meth:`Consumer.read` copies records into.

    One buffer can serve many consumers, one read at a time.
    """

    __slots__ = ("aux", "flags", "lens", "max_count", "out", "size", "view")

    def __init__(self, size: int, max_count: int = 256) -> None:
        self.size = size
        self.max_count = max_count
        self.out = ffi.new("uint8_t[]", size)
        self.view = ffi.buffer(self.out, size)
        self.lens = ffi.new("uint32_t[]", max_count)
        self.flags = ffi.new("uint8_t[]", max_count)
        self.aux = ffi.new("uint32_t[]", max_count)


class Consumer(Side):
    """The reading end of a ring in *region* (a writable buffer).

    With *resync* the consumer takes over a ring that another consumer was
    reading and adopts the sequence number it finds next.
    """

    __slots__ = ("_c",)

    def __init__(self, region: object, capacity: int, *, resync: bool = False) -> None:
        super().__init__(region, capacity)
        self._c = ffi.new("shm_consumer *")
        rc = lib.shm_consumer_attach(self._c, self._buf, len(self._buf), capacity, resync)
        if rc:
            self.release()
            fail(rc)
        self._bytes0, self._msgs0 = int(self._c.bytes), int(self._c.msgs)

    def read(
        self, buf: ReadBuffer, max_count: int = 0
    ) -> tuple[list[bytes], list[int] | None, list[int] | None, bool]:
        """Read up to *max_count* records (default: as many as *buf* holds).

        Returns ``(payloads, flags, aux, wake)``.  *flags* and *aux* are
        None when every record is a plain one-frame message, the common
        case; otherwise they hold one entry per payload.  *wake* means the
        producer was waiting for space and must now be woken.  An empty
        ring gives an empty list.

        Raises CorruptMessage when the next record is invalid; records read
        before it in the same call are returned, and the error comes on
        the next call.
        """
        count = max_count if 0 < max_count <= buf.max_count else buf.max_count
        rc: int = lib.shm_read(self._c, buf.out, buf.size, buf.lens, buf.flags, buf.aux, count)
        if rc < 0:
            fail(rc)
        n = rc >> 3
        if n == 0:
            return [], None, None, bool(rc & 1)
        raw = buf.view
        out: list[bytes]
        if n == 1:
            # One record (a round trip's request or reply): no lists to unpack.
            out = [raw[: buf.lens[0]]]
            if rc & 2:
                return out, [buf.flags[0]], [buf.aux[0]], bool(rc & 1)
            return out, None, None, bool(rc & 1)
        if not rc & 4:
            # Payloads of one length (the common case of a batch): one
            # Struct call makes all the bytes objects, with no Python-level
            # loop; it is three times faster than slicing one by one.
            out = list(_splitter(buf.lens[0], n).unpack_from(raw))
        else:
            # Slicing the C buffer makes each bytes object with one copy.
            out = []
            append = out.append
            pos = 0
            for size in ffi.unpack(buf.lens, n):
                end = pos + size
                append(raw[pos:end])
                pos = end
        if rc & 2:
            return out, ffi.unpack(buf.flags, n), ffi.unpack(buf.aux, n), bool(rc & 1)
        return out, None, None, bool(rc & 1)

    def available(self) -> int:
        """Bytes the producer has published and we have not read."""
        rc: int = lib.shm_consumer_available(self._c)
        if rc < 0:
            fail(rc)
        return rc

    def unread_messages(self) -> int:
        """Messages published whose last record we have not read yet.

        The producer's count is read from the ring header (see
        messages_in).  Raises CorruptMessage when the producer's position
        is impossible.
        """
        unread = self.available()
        if not unread:
            return 0
        return messages_in(unread, int(self._header().msgs_written) - int(self._c.msgs))

    def prepare_wait(self) -> bool:
        """Announce that we are about to sleep, then re-check.

        Returns True when the caller may sleep: the producer will report
        "wake" on its next publish.  Returns False when data arrived
        meanwhile.
        """
        rc: int = lib.shm_consumer_prepare_wait(self._c)
        if rc < 0:
            fail(rc)
        return rc == 0

    def cancel_wait(self) -> None:
        lib.shm_consumer_cancel_wait(self._c)

    @property
    def records(self) -> int:
        """Records read through this consumer."""
        return int(self._c.records)

    @property
    def bytes(self) -> int:
        """Payload bytes read through this consumer."""
        return (int(self._c.bytes) - self._bytes0) & MASK64

    @property
    def messages(self) -> int:
        """Messages read through this consumer (records that end a message).

        Counts a message when its last record is read, whether or not the
        transport then delivers it.  Safe from any thread, even after
        :meth:`release`.
        """
        return (int(self._c.msgs) - self._msgs0) & MASK64
