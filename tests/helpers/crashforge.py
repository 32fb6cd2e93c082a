"""The ring states a writer killed in the middle of a write leaves behind.

A producer writes a batch of records in this order (csrc/shmring.c,
docs/protocol.md): for each record, the padding header if the record
wraps, the record header, the payload; then it publishes the batch with
one store of ``tail``, followed by the statistics on its line of the
header (``tail_seq``, ``bytes_written`` and so on), and finally clears
``consumer_waiting`` if the reader was asleep.  A SIGKILL can stop it
after any of those stores, so the state it leaves is the state before the
batch with a prefix of those stores applied.

:func:`plan` derives that store sequence for a batch from the protocol
document and checks it against the real C producer run on a copy of the
ring: applying every store must give exactly the bytes the producer
wrote.  :func:`units` cuts the sequence into the pieces a crash can fall
between (every byte of the record bytes, which a ``memcpy`` may write in
any order anyway but which nobody may read before the tail covers them;
each 8-byte position store whole, as the hardware makes it), and
:func:`crash` applies a prefix of them to a live ring.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from helpers import ringforge as rf
from shmsock import _ring as R

Record = tuple[bytes, int]  # payload, START/MORE/CONT flags


@dataclass(frozen=True)
class Store:
    """Bytes the producer stores at *offset* of the ring region."""

    offset: int
    data: bytes
    what: str  # "pad", "header", "payload", "tail", a statistics field, "waiting"


def encode(frames: list[bytes], *, fragment: int | None) -> list[list[Record]]:
    """The batches a sender writes for a message (docs/protocol.md, "Messages").

    With *fragment* None the message goes in one batch, one record per
    frame (the atomic path).  Otherwise it is streamed: one record per
    batch, frames cut into pieces of at most *fragment* bytes.
    """
    last = len(frames) - 1
    if fragment is None:
        batch = [
            (f, (rf.START if i == 0 else 0) | (rf.MORE if i < last else 0))
            for i, f in enumerate(frames)
        ]
        return [batch]
    out: list[list[Record]] = []
    for i, frame in enumerate(frames):
        pieces = [frame[o : o + fragment] for o in range(0, len(frame), fragment)] or [b""]
        for j, piece in enumerate(pieces):
            flags = rf.CONT if j < len(pieces) - 1 else (rf.MORE if i < last else 0)
            out.append([(piece, flags)])
    out[0] = [(out[0][0][0], out[0][0][1] | rf.START)]
    return out


def plan(
    region: bytes | bytearray | memoryview,
    cap: int,
    batch: list[Record],
    aux: int = 0,
    checksum: bool = True,
) -> list[Store]:
    """The stores, in order, with which the producer writes *batch* now."""
    before = bytes(region)
    after = bytearray(before)
    prod = R.Producer(after, cap, checksum=checksum)
    try:
        n, _wake = prod.write_records(
            b"".join(p for p, _f in batch),
            array("I", [len(p) for p, _f in batch]),
            bytes(f for _p, f in batch),
            aux,
            atomic=True,
        )
    finally:
        prod.release()
    assert n == len(batch), "the batch does not fit: the sender would wait, not write"

    stores: list[Store] = []

    def take(offset: int, size: int, what: str) -> None:
        stores.append(Store(offset, bytes(after[offset : offset + size]), what))

    pos = rf.get(bytearray(before[: rf.HEADER]), "tail")
    for payload, _flags in batch:
        size = rf.rec_size(len(payload))
        off = pos % cap
        contig = cap - off
        if size > contig:
            if contig >= rf.REC:
                take(rf.HEADER + off, rf.REC, "pad")
            pos += contig
            off = 0
        take(rf.HEADER + off, rf.REC, "header")
        if payload:
            take(rf.HEADER + off + rf.REC, len(payload), "payload")
        pos += size
    # The tail first (release), then the statistics on the producer's line.
    take(rf.FIELDS["tail"][0], 8, "tail")
    for field, (offset, fmt) in sorted(rf.FIELDS.items(), key=lambda kv: kv[1][0]):
        if rf.FIELDS["tail"][0] < offset < rf.FIELDS["head"][0] and field != "producer_state":
            take(offset, 8 if fmt == "<Q" else 4, field)
    if rf.get(bytearray(before[: rf.HEADER]), "consumer_waiting"):
        take(rf.FIELDS["consumer_waiting"][0], 4, "waiting")

    check = bytearray(before)
    for s in stores:
        check[s.offset : s.offset + len(s.data)] = s.data
    assert check == after, "the documented write order does not produce what the C ring wrote"
    return stores


def units(stores: list[Store]) -> list[Store]:
    """*stores* cut into the smallest pieces a crash can fall between."""
    out: list[Store] = []
    for s in stores:
        if s.what in ("pad", "header", "payload"):
            out.extend(Store(s.offset + i, s.data[i : i + 1], s.what) for i in range(len(s.data)))
        else:
            out.append(s)
    return out


def apply(region: bytearray | memoryview, pieces: list[Store]) -> None:
    """Store *pieces* into *region*, in order."""
    for s in pieces:
        region[s.offset : s.offset + len(s.data)] = s.data


def published(pieces: list[Store]) -> bool:
    """Whether a crash after *pieces* left the batch's tail published."""
    return any(s.what == "tail" for s in pieces)


def index_of(pieces: list[Store], what: str, nth: int = 0) -> int:
    """Index of the *nth* piece of kind *what* (the crash point just before it)."""
    found = [i for i, s in enumerate(pieces) if s.what == what]
    return found[nth]
