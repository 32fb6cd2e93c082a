"""Pipeline: a ventilator hands out tasks, workers do them, a sink collects.

    python examples/pipeline.py            # everything, in separate processes
    python examples/pipeline.py worker     # one role (ventilator, worker, sink)

The ventilator binds a PUSH socket and round-robins tasks over the workers;
each worker connects a PULL to it and a PUSH to the sink; the sink binds a
PULL and fair-queues the results.  Any role may start first: connects wait
for their binders.
"""

from __future__ import annotations

import os
import subprocess
import sys

import trio

import shmsock

TASKS = 100
WORKERS = 3
PREFIX = os.environ.get("PIPELINE_PREFIX", f"pipeline-{os.getpid()}")
JOBS = f"shm://{PREFIX}-jobs"
RESULTS = f"shm://{PREFIX}-results"


def say(line: str) -> None:
    # One write per line: the roles share one stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def ventilator() -> None:
    async with shmsock.socket(shmsock.PUSH, linger=None) as jobs:
        jobs.bind(JOBS)
        # Round-robin only spreads work over workers that are there: wait
        # for all of them, or the first to connect would get every task.
        await jobs.wait_peers(WORKERS)
        for n in range(TASKS):
            await jobs.send(b"%d" % n)
        for _ in range(WORKERS):
            await jobs.send(b"stop")
    say(f"ventilator: sent {TASKS} tasks")


async def worker() -> None:
    done = 0
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
            done += 1
    say(f"worker {os.getpid()}: did {done} tasks")


async def sink() -> None:
    async with shmsock.socket(shmsock.PULL) as results:
        results.bind(RESULTS)
        total = 0
        for _ in range(TASKS):
            total += int(await results.recv())
    say(f"sink: {TASKS} results, sum of squares {total}")


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else "all"
    if role == "all":
        env = {**os.environ, "PIPELINE_PREFIX": PREFIX}
        roles = ["sink", "ventilator"] + ["worker"] * WORKERS
        procs = [subprocess.Popen([sys.executable, __file__, r], env=env) for r in roles]
        sys.exit(max(p.wait() for p in procs))
    trio.run({"ventilator": ventilator, "worker": worker, "sink": sink}[role])


if __name__ == "__main__":
    main()
