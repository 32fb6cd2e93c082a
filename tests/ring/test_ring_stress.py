"""Stress tests of the ring: two threads, two processes, real sleeping.

The C program tests/ring/c/ring_stress.c pushes a million records of random
sizes through one ring, between two threads and between two processes,
checking every byte, and sleeps for real on both sides through the
waiter-flag protocol.  A lost wake-up hangs it, which the timeout turns
into a failure.  The Python run does the same across two interpreters
through the binding, with the ring in a file in shared memory.

The same program built with ThreadSanitizer (``tox -e tsan``, and the
normal suite when the compiler supports it) shows that the two threads
never race: every byte the consumer reads was published to it by a
release/acquire pair, across wrap-around, padding and the waiter-flag
protocol.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import random
import re
import subprocess
import sysconfig
from pathlib import Path

import pytest
from helpers import cbuild
from helpers.ringstress import PY_CAP, PY_RECORDS, expected, py_producer

from shmsock import _ring as R

ROOT = Path(__file__).resolve().parents[2]
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
        str(ROOT / "tests" / "ring" / "c" / "ring_stress.c"),
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


# ---------------------------------------------------------------- ThreadSanitizer

# (records, capacity): a tiny ring wraps and pads all the time; a larger one
# carries records of every size.  SHMSOCK_TSAN_SCALE runs longer.
TSAN_RUNS = [(50_000, 256), (10_000, 4096)]
TSAN_SCALE = float(os.environ.get("SHMSOCK_TSAN_SCALE", "1"))
TSAN_ENV = {**cbuild.clean_env(), "TSAN_OPTIONS": "halt_on_error=1 exitcode=66"}


def compile_tsan(tmp: Path, extra: tuple[str, ...] = ()) -> Path:
    if not cbuild.can_sanitize("thread"):
        pytest.skip(f"{cbuild.cc()} cannot build with -fsanitize=thread")
    # gcc warns that TSan ignores atomic_thread_fence.  The fences order the
    # waiter flags against the positions (a lost wake-up would hang the
    # run); data is published by release/acquire, which TSan does model.
    quiet = ("-Wno-tsan",) if cbuild.accepts("-Wno-tsan") else ()
    return cbuild.compile_c(
        tmp / "ring_stress_tsan", "ring_stress.c", sanitize="thread", extra=(*quiet, *extra)
    )


@pytest.fixture(scope="module")
def tsan_exe(tmp_path_factory):
    return compile_tsan(tmp_path_factory.mktemp("tsan"))


@pytest.mark.parametrize(("records", "capacity"), TSAN_RUNS)
def test_tsan_threads_never_race(tsan_exe, records, capacity):
    records = int(records * TSAN_SCALE)
    out = subprocess.run(
        [str(tsan_exe), "threads", str(records), str(capacity), "77"],
        capture_output=True,
        text=True,
        timeout=600,
        env=TSAN_ENV,
    )
    assert "ThreadSanitizer" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"ok records={records} ")
    sleeps = re.search(r"consumer_sleeps=(\d+) producer_sleeps=(\d+)", out.stdout)
    assert sleeps and min(map(int, sleeps.groups())) > 10  # the waiter flags were used


def test_tsan_catches_a_ring_without_release_and_acquire(tmp_path):
    """The check has teeth: the same ring with its release stores and acquire
    loads made relaxed is reported (x86 would still run it correctly)."""
    weak = (
        "-U__ATOMIC_RELEASE",
        "-D__ATOMIC_RELEASE=0",
        "-U__ATOMIC_ACQUIRE",
        "-D__ATOMIC_ACQUIRE=0",
        "-Wno-builtin-macro-redefined",
    )
    if not cbuild.accepts(*weak):
        pytest.skip(f"{cbuild.cc()} cannot redefine the memory order macros")
    exe = compile_tsan(tmp_path, weak)
    out = subprocess.run(
        [str(exe), "threads", "20000", "256", "77"],
        capture_output=True,
        text=True,
        timeout=600,
        env=TSAN_ENV,
    )
    assert out.returncode == 66
    assert "WARNING: ThreadSanitizer: data race" in out.stderr
    assert "shm_read" in out.stderr


# ---------------------------------------------------------------- Python


def test_python_stress_across_processes(tmp_path):
    path = str(tmp_path / "ring")
    with open(path, "wb") as f:
        f.truncate(R.region_size(PY_CAP))
    fd = os.open(path, os.O_RDWR)
    mm = mmap.mmap(fd, R.region_size(PY_CAP))
    R.init_ring(mm, PY_CAP, start_pos=(1 << 64) - 4 * PY_CAP, start_seq=(1 << 64) - 100)
    cons = R.Consumer(mm, PY_CAP)
    buf = R.ReadBuffer(PY_CAP, 64)
    # A fresh interpreter, not fork: by now this process has threads
    # (libzmq's, trio's workers), and a forked child of a threaded process
    # can hang on a lock one of them held.  The wake-up pipes go with it.
    ctx = multiprocessing.get_context("spawn")
    data_r, data_w = ctx.Pipe(duplex=False)
    space_r, space_w = ctx.Pipe(duplex=False)
    child = ctx.Process(target=py_producer, args=(path, data_w, space_r))
    child.start()
    data_w.close()
    space_r.close()
    try:
        seq = sleeps = 0
        rnd = random.Random(2)
        while seq < PY_RECORDS:
            got, flags, _aux, wake = cons.read(buf, rnd.randrange(1, 64))
            if wake:
                space_w.send_bytes(b"s")
            if not got:
                if cons.prepare_wait():
                    sleeps += 1
                    # A generous bound, so a dead producer fails the test
                    # instead of hanging it.
                    assert data_r.poll(30), "lost wake-up, or the producer died"
                    data_r.recv_bytes()
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
