"""How a message becomes records: the one place that decides how it is written.

A ring of ``capacity`` bytes takes records of at most ``capacity / 2 - 24``
payload bytes (``max_record``; see "Largest record" in docs/protocol.md),
and a record of ``n`` payload bytes takes ``record_span(n)`` bytes of ring.
So:

- a frame of at most ``inline_max`` bytes (64 KiB, or ``max_record`` if
  smaller) is a record of the ring; a larger one goes to the ring's bulk
  region (``_bulk``) and is a DESC record of ``DESC_SIZE`` bytes;
- a message whose records take at most half the ring together
  (``max_atomic``) is written *at once*: all its records in one call, or
  none.  Whatever its size, with bulk regions, that is every message but
  one of thousands of frames;
- such a message is *streamed*: cut into fragments of a quarter ring
  (``fragment``), written as the reader frees room, and delivered by the
  reader only once complete.  Only ``await send()`` streams.
"""

from __future__ import annotations

from array import array
from typing import Final

from ... import _bulkring as B
from ... import _ring as R
from ..._errors import MessageTooLarge
from ._bulk import inline_limit

__all__ = ["Framing", "record_span"]

_HEADER: Final[int] = R.RECORD_HEADER_SIZE
_DESC_SPAN: Final[int] = (B.DESC_SIZE + _HEADER + 7) & ~7


def record_span(n: int) -> int:
    """Bytes of ring a record of *n* payload bytes takes (header, padding)."""
    return (n + _HEADER + 7) & ~7


class Framing:
    """Messages to records, for the rings one socket writes (all of one capacity)."""

    __slots__ = ("capacity", "fragment", "inline_max", "max_atomic", "max_record")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.max_record = R.max_payload(capacity)
        self.inline_max = inline_limit(self.max_record)
        self.max_atomic = capacity // 2
        self.fragment = capacity // 4 - _HEADER

    def span(self, n: int) -> int:
        """Bytes of ring a frame of *n* bytes takes: its record, or its DESC record."""
        return record_span(n) if n <= self.inline_max else _DESC_SPAN

    def check_atomic(self, frames: list[bytes], size: int) -> None:
        """Raise MessageTooLarge unless the message can be written at once."""
        if len(frames) == 1 or sum(self.span(len(f)) for f in frames) <= self.max_atomic:
            return
        raise MessageTooLarge(
            f"a message of {len(frames)} frames needs more than half the ring"
            f" ({self.capacity} bytes) for its records, the most send_nowait can write at"
            " once; use await send()"
        )

    @staticmethod
    def encode(frames: list[bytes]) -> tuple[bytes, array[int], bytes]:
        """A multipart message as records: joined payloads, lengths, flags.

        The caller has checked that it can be written at once.
        """
        last = len(frames) - 1
        flags = bytearray()
        for i in range(len(frames)):
            f = R.START if i == 0 else 0
            if i < last:
                f |= R.MORE
            flags.append(f)
        return b"".join(frames), array("I", map(len, frames)), bytes(flags)

    def fragments(self, frames: list[bytes]) -> list[tuple[bytes | memoryview, int]]:
        """A message to stream, as records: (payload, flags) each."""
        out: list[tuple[bytes | memoryview, int]] = []
        step = self.fragment
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            view = memoryview(frame)  # fragments are views: no copy until the ring
            pieces: list[bytes | memoryview] = [
                view[o : o + step] for o in range(0, len(frame), step)
            ] or [b""]
            for j, piece in enumerate(pieces):
                f = R.CONT if j < len(pieces) - 1 else (R.MORE if i < last else 0)
                out.append((piece, f))
        out[0] = (out[0][0], out[0][1] | R.START)
        return out

    def batch_too_large(self, lens: array[int]) -> MessageTooLarge:
        """Say why a batch of one-frame messages can never be written at once."""
        biggest = max(lens)
        if biggest > self.max_record:
            return MessageTooLarge(
                f"a message of {biggest} bytes does not fit one record of this socket's"
                f" {self.capacity}-byte ring (at most {self.max_record}): use send()"
            )
        need = sum(map(record_span, lens))
        return MessageTooLarge(
            f"a batch of {len(lens)} messages takes {need} bytes of ring, more than this"
            f" socket's {self.capacity}-byte ring holds: send smaller batches"
        )
