"""Metrics: a small pipeline that serves its Prometheus metrics on /metrics.

    python examples/metrics.py                                 # shell 1
    curl -s http://127.0.0.1:9464/metrics | grep '^shmsock_'   # shell 2

A ventilator sends --messages tasks (default 1000) to a worker, which sends
each result on to a sink; all three run in this process, at endpoints named
after its process id (shm://metrics-PID-jobs and shm://metrics-PID-results)
so that two runs never meet.  Importing shmsock registered its collector in
prometheus_client's default registry, so serving that registry is all it
takes: once the pipeline is done, the counters show every message.  It
serves on --port (default 9464; 0 takes any free port and prints it) for
--seconds (default: until Ctrl-C), and then exits:

    python examples/metrics.py --port 0 --messages 500 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import sys

import trio
from prometheus_client import start_http_server

import shmsock

PREFIX = f"metrics-{os.getpid()}"
JOBS = f"shm://{PREFIX}-jobs"
RESULTS = f"shm://{PREFIX}-results"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def ventilator(count: int) -> None:
    async with shmsock.socket(shmsock.PUSH, linger=None) as jobs:
        jobs.bind(JOBS)
        await jobs.wait_peers(1)
        for n in range(count):
            await jobs.send(b"%d" % n)
        await jobs.send(b"stop")


async def worker() -> None:
    async with (
        shmsock.socket(shmsock.PULL) as jobs,
        shmsock.socket(shmsock.PUSH, linger=None) as results,
    ):
        jobs.connect(JOBS)
        results.connect(RESULTS)
        async for task in jobs:
            if task == b"stop":
                break
            await results.send(b"%d" % (int(task) ** 2))


async def sink(count: int) -> int:
    total = 0
    async with shmsock.socket(shmsock.PULL) as results:
        results.bind(RESULTS)
        for _ in range(count):
            total += int(await results.recv())
    return total


async def main(port: int, count: int, seconds: float | None) -> None:
    server, _thread = start_http_server(port, addr="127.0.0.1")
    say(f"metrics: serving http://127.0.0.1:{server.server_port}/metrics")
    total = 0

    async def run_sink() -> None:
        nonlocal total
        total = await sink(count)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_sink)
        nursery.start_soon(worker)
        nursery.start_soon(ventilator, count)
    say(f"pipeline: {count} messages done, sum of squares {total}")
    # The sockets are closed; their counts stay in the metrics.
    await trio.sleep(float("inf") if seconds is None else seconds)
    server.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A pipeline that serves /metrics.")
    parser.add_argument("--port", type=int, default=9464, help="HTTP port (default 9464)")
    parser.add_argument("--messages", type=int, default=1000, help="tasks to send")
    parser.add_argument(
        "--seconds", type=float, default=None, help="serve this long afterwards, then exit"
    )
    args = parser.parse_args()
    try:
        trio.run(main, args.port, args.messages, args.seconds)
    except* KeyboardInterrupt:  # bare, or from inside the nursery, in a group
        say("metrics: stopped")
