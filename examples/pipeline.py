"""Pipeline: a ventilator hands out tasks, workers do them, a sink collects.

Every role at once, each in a process of its own:

    python examples/pipeline.py

Or one role per shell, started in any order:

    python examples/pipeline.py sink          # shell 1
    python examples/pipeline.py worker        # shell 2
    python examples/pipeline.py worker        # shell 3
    python examples/pipeline.py worker        # shell 4
    python examples/pipeline.py ventilator    # shell 5

The ventilator binds a PUSH socket at shm://pipeline-jobs and round-robins
tasks over the workers; each worker connects a PULL to it and a PUSH to the
sink, which binds a PULL at shm://pipeline-results and fair-queues the
results.  Connects wait for their binders, so any role may start first.
The ventilator waits for --workers workers (default 3) before it sends, and
then sends each of them a stop.  --jobs and --results name other endpoints;
give every role the same ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import trio

import shmsock

TASKS = 100


def say(line: str) -> None:
    # One write per line: the roles share one stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def ventilator(args: argparse.Namespace) -> None:
    async with shmsock.socket(shmsock.PUSH, linger=None) as jobs:
        jobs.bind(args.jobs)
        # Round-robin only spreads work over workers that are there: wait
        # for all of them, or the first to connect would get every task.
        await jobs.wait_peers(args.workers)
        for n in range(TASKS):
            await jobs.send(b"%d" % n)
        for _ in range(args.workers):
            await jobs.send(b"stop")
    say(f"ventilator: sent {TASKS} tasks")


async def worker(args: argparse.Namespace) -> None:
    done = 0
    async with (
        shmsock.socket(shmsock.PULL) as jobs,
        shmsock.socket(shmsock.PUSH, linger=None) as results,
    ):
        jobs.connect(args.jobs)
        results.connect(args.results)
        async for task in jobs:
            if task == b"stop":
                break
            await results.send(b"%d" % (int(task) ** 2))
            done += 1
    say(f"worker {os.getpid()}: did {done} tasks")


async def sink(args: argparse.Namespace) -> None:
    async with shmsock.socket(shmsock.PULL) as results:
        results.bind(args.results)
        total = 0
        for _ in range(TASKS):
            total += int(await results.recv())
    say(f"sink: {TASKS} results, sum of squares {total}")


ROLES = {"ventilator": ventilator, "worker": worker, "sink": sink}


def main() -> None:
    parser = argparse.ArgumentParser(description="A PUSH/PULL pipeline.")
    parser.add_argument(
        "role", nargs="?", default="all", choices=["all", *ROLES], help="default: all"
    )
    parser.add_argument(
        "--jobs", default="shm://pipeline-jobs", help="ventilator to workers (%(default)s)"
    )
    parser.add_argument(
        "--results", default="shm://pipeline-results", help="workers to sink (%(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=3, help="workers to wait for and stop (%(default)s)"
    )
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--jobs", args.jobs, "--results", args.results, "--workers", str(args.workers)]
        roles = ["sink", "ventilator"] + ["worker"] * args.workers
        procs = [subprocess.Popen([sys.executable, __file__, r, *flags]) for r in roles]
        sys.exit(max(p.wait() for p in procs))
    trio.run(ROLES[args.role], args)


if __name__ == "__main__":
    main()
