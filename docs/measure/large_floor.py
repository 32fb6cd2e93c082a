"""16 MiB PUSH -> PULL: shmsock and pyzmq against the bare mechanism's floor (issue 22).

    python docs/measure/large_floor.py [--rounds 5] [--count 800]

Each round runs, one after the other: the floor (``large_floor.c``, built
here with ``cc``: the two copies of the bulk region and nothing else), then
shmsock over shm:// (``await send()`` / ``await recv()``, checksums off, the
way of the bench's "CRC off" figure), then pyzmq over ipc:// (blocking
``send``/``recv``).  Every sender cycles through four distinct 16 MiB
messages, as the bench's do.  Prints msg/s per round, then the median of
each and the ratios per round.  Needs the ``zmq`` extra and a C compiler.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SIZE = 16 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


def _pool() -> list[bytes]:
    body = os.urandom(SIZE)
    return [bytes([i]) + body[1:] for i in range(4)]


def _shmsock_sender(endpoint: str, count: int) -> None:
    import trio

    import shmsock

    async def main() -> None:
        pool = _pool()
        async with shmsock.socket(shmsock.PUSH, checksum=False, linger=None) as s:
            s.connect(endpoint)
            for i in range(count + 1):
                await s.send(pool[i % 4])
            await s.send(b"end")

    trio.run(main)


def _pyzmq_sender(endpoint: str, count: int) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.connect(endpoint)
    pool = _pool()
    for i in range(count + 1):
        s.send(pool[i % 4])
    s.send(b"end")
    s.close(linger=-1)
    ctx.term()


def _sender(kind: str, endpoint: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--sender", kind, endpoint, str(count)])


def shmsock_rate(count: int) -> float:
    """msg/s from the first message after the first to the last."""
    import trio

    import shmsock

    async def main() -> float:
        rate = 0.0
        endpoint = f"shm://large-floor-{os.getpid()}"
        async with shmsock.socket(shmsock.PULL, checksum=False, linger=0) as s:
            s.bind(endpoint)
            child = _sender("shmsock", endpoint, count)
            await s.recv()  # the first: connecting and the region's making are not timed
            t0 = time.perf_counter()
            n = 0
            while len(await s.recv()) == SIZE:
                n += 1
            rate = n / (time.perf_counter() - t0)
            child.wait()
        return rate

    return trio.run(main)


def pyzmq_rate(count: int) -> float:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    endpoint = f"ipc://{tempfile.gettempdir()}/large-floor-{os.getpid()}"
    s.bind(endpoint)
    child = _sender("pyzmq", endpoint, count)
    s.recv()
    t0 = time.perf_counter()
    n = 0
    while len(s.recv()) == SIZE:
        n += 1
    rate = n / (time.perf_counter() - t0)
    child.wait()
    s.close(linger=0)
    ctx.term()
    return rate


def main() -> None:
    if sys.argv[1:2] == ["--sender"]:
        kind, endpoint, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        (_shmsock_sender if kind == "shmsock" else _pyzmq_sender)(endpoint, count)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=800, help="messages per run (pyzmq: half)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        floor = os.path.join(tmp, "floor")
        subprocess.run(
            ["cc", "-std=c11", "-O2", "-march=native", "-Wall", "-Wextra", "-o", floor,
             os.path.join(HERE, "large_floor.c")],
            check=True,
        )  # fmt: skip
        rows = []
        for r in range(args.rounds):
            out = subprocess.run(
                [floor, "2", "16384", "0", "4", str(args.count)], check=True, capture_output=True
            )
            row = (float(out.stdout), shmsock_rate(args.count), pyzmq_rate(args.count // 2))
            rows.append(row)
            print(
                f"round {r + 1}: floor {row[0]:.0f}  shmsock {row[1]:.0f}"
                f"  pyzmq {row[2]:.0f} msg/s;"
                f"  floor/pyzmq {row[0] / row[2]:.2f}  shmsock/pyzmq {row[1] / row[2]:.2f}"
                f"  shmsock/floor {row[1] / row[0]:.2f}",
                flush=True,
            )
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"median: floor {med[0]:.0f}  shmsock {med[1]:.0f}  pyzmq {med[2]:.0f} msg/s")


if __name__ == "__main__":
    main()
