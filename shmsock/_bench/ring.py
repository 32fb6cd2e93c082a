"""Single-process ring microbenchmark.

One producer and one consumer on the same ring in one thread: batches of
records are written with one C call and read back with one C call.  It
measures the C ring plus the binding's per-batch cost, with no waiting and
no second core involved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .. import _ring as R


@dataclass
class RingResult:
    size: int
    batch: int
    checksum: bool
    records_per_s: float

    @property
    def bytes_per_s(self) -> float:
        return self.records_per_s * self.size


def run(
    size: int = 1024,
    batch: int = 64,
    checksum: bool = True,
    seconds: float = 1.0,
    capacity: int = 1 << 20,
) -> RingResult:
    """Write and read batches for about *seconds*; return the record rate."""
    region = bytearray(R.region_size(capacity))
    R.init_ring(region, capacity)
    prod = R.Producer(region, capacity, checksum=checksum)
    cons = R.Consumer(region, capacity)
    buf = R.ReadBuffer(capacity, batch)
    msgs = [bytes(size)] * batch
    total = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(32):
            prod.write_many(msgs)
            total += len(cons.read(buf)[0])
        now = time.perf_counter()
        if now >= deadline:
            break
    prod.release()
    cons.release()
    return RingResult(size, batch, checksum, total / (now - start))
