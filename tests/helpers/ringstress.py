"""The Python producer of tests/ring/test_ring_stress.py (run in a child process).

It writes records of known content into a ring in a file through the
binding, and sleeps and wakes through the waiter-flag protocol, one byte on
a pipe per wake-up each way.
"""

from __future__ import annotations

import mmap
import os
import random
from multiprocessing.connection import Connection

from shmsock import _ring as R

PY_RECORDS = 200_000
PY_CAP = 1 << 14


def expected(seq: int, maxp: int) -> bytes:
    rnd = random.Random(seq)
    size = rnd.randrange(maxp + 1) if rnd.random() < 0.05 else rnd.randrange(200)
    return (seq.to_bytes(8, "little") * (size // 8 + 1))[:size]


def py_producer(path: str, data_w: Connection, space_r: Connection) -> None:
    """Write PY_RECORDS records of ``expected`` into the ring at *path*; a
    byte on *data_w* wakes the consumer, one on *space_r* wakes this side."""
    fd = os.open(path, os.O_RDWR)
    mm = mmap.mmap(fd, R.region_size(PY_CAP))
    prod = R.Producer(mm, PY_CAP)
    rnd = random.Random(1)
    seq = 0
    while seq < PY_RECORDS:
        batch = [
            expected(s, prod.max_payload)
            for s in range(seq, min(seq + rnd.randrange(1, 40), PY_RECORDS))
        ]
        while batch:
            n, wake = prod.write_many(batch)
            if wake:
                data_w.send_bytes(b"d")
            if n == 0 and prod.prepare_wait(len(batch[0])):
                space_r.recv_bytes()
            del batch[:n]
            seq += n
    prod.release()
    mm.close()
    os.close(fd)
