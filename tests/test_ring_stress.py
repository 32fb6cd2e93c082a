"""Stress tests of the ring: two threads, two processes, real sleeping.

The C program tests/c/ring_stress.c pushes a million records of random
sizes through one ring, between two threads and between two processes,
checking every byte, and sleeps for real on both sides through the
waiter-flag protocol.  A lost wake-up hangs it, which the timeout turns
into a failure.  The Python run does the same across two interpreters
through the binding, with the ring in a file in shared memory.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import random
import re
import select
import subprocess
import sysconfig
from pathlib import Path

import pytest

from shmsock import _ring as R

ROOT = Path(__file__).resolve().parent.parent
RECORDS = 1_000_000


def compile_stress(tmp: Path, extra: list[str] | None = None) -> Path:
    exe = tmp / "ring_stress"
    cc = sysconfig.get_config_var("CC") or "cc"
    cmd = [
        *cc.split()[:1],
        "-std=c11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        f"-I{ROOT / 'csrc'}",
        str(ROOT / "tests" / "c" / "ring_stress.c"),
        str(ROOT / "csrc" / "shmring.c"),
        str(ROOT / "csrc" / "crc32c.c"),
        "-o",
        str(exe),
        *(extra or []),
    ]
    subprocess.run(cmd, check=True)
    return exe


@pytest.fixture(scope="module")
def stress_exe(tmp_path_factory):
    return compile_stress(tmp_path_factory.mktemp("cstress"))


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_c_stress_million_records(stress_exe, mode):
    out = subprocess.run(
        [str(stress_exe), mode, str(RECORDS), "65536", "4242"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(
        r"ok records=(\d+) bytes=(\d+) consumer_sleeps=(\d+) producer_sleeps=(\d+)\n", out.stdout
    )
    assert m, out.stdout
    records, nbytes, csleeps, psleeps = map(int, m.groups())
    assert records == RECORDS
    assert nbytes > RECORDS  # random sizes, not all empty
    # Both sides really went to sleep and were really woken, many times.
    assert csleeps > 10
    assert psleeps > 10


# ---------------------------------------------------------------- Python


PY_RECORDS = 200_000
PY_CAP = 1 << 14


def expected(seq: int, maxp: int) -> bytes:
    rnd = random.Random(seq)
    size = rnd.randrange(maxp + 1) if rnd.random() < 0.05 else rnd.randrange(200)
    return (seq.to_bytes(8, "little") * (size // 8 + 1))[:size]


def py_producer(path: str, data_w: int, space_r: int) -> None:
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
                os.write(data_w, b"d")
            if n == 0 and prod.prepare_wait(len(batch[0])):
                os.read(space_r, 1)
            del batch[:n]
            seq += n
    prod.release()
    mm.close()
    os.close(fd)


def test_python_stress_across_processes(tmp_path):
    path = str(tmp_path / "ring")
    with open(path, "wb") as f:
        f.truncate(R.region_size(PY_CAP))
    fd = os.open(path, os.O_RDWR)
    mm = mmap.mmap(fd, R.region_size(PY_CAP))
    R.init_ring(mm, PY_CAP, start_pos=(1 << 64) - 4 * PY_CAP, start_seq=(1 << 64) - 100)
    cons = R.Consumer(mm, PY_CAP)
    buf = R.ReadBuffer(PY_CAP, 64)
    data_r, data_w = os.pipe()
    space_r, space_w = os.pipe()
    # fork, so that the child inherits the pipe descriptors.
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=py_producer, args=(path, data_w, space_r))
    child.start()
    try:
        seq = sleeps = 0
        rnd = random.Random(2)
        while seq < PY_RECORDS:
            got, flags, _aux, wake = cons.read(buf, rnd.randrange(1, 64))
            if wake:
                os.write(space_w, b"s")
            if not got:
                if cons.prepare_wait():
                    sleeps += 1
                    # A generous bound, so a dead producer fails the test
                    # instead of hanging it.
                    ready, _, _ = select.select([data_r], [], [], 30)
                    assert ready, "lost wake-up, or the producer died"
                    os.read(data_r, 1)
                continue
            assert flags is None
            for msg in got:
                assert msg == expected(seq, cons.max_payload), f"record {seq} differs"
                seq += 1
        assert sleeps > 0
    finally:
        child.join(timeout=60)
        if child.is_alive():  # pragma: no cover - only on failure
            child.kill()
        cons.release()
        mm.close()
        os.close(fd)
    assert child.exitcode == 0
    assert cons.records == PY_RECORDS
