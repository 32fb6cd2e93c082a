"""Poller: one task per socket in a nursery, where pyzmq uses zmq.Poller.

    python examples/poller.py            # the worker and a client, two processes
    python examples/poller.py worker     # in one shell
    python examples/poller.py client     # in another; either may start first

The worker binds two sockets: a PULL of jobs and a REP for orders.  With
pyzmq it would register both with a zmq.Poller and loop over the events;
with Trio each socket gets a task of its own in one nursery, and the tasks
share their state as any Trio tasks do.  The client sends 100 jobs, then
orders the worker to stop once it has done all 100.

The endpoints are shm://poller-jobs and shm://poller-orders; set
POLLER_PREFIX to use another name than "poller".
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import trio

import shmsock

JOBS = 100
PREFIX = os.environ.get("POLLER_PREFIX", "poller")
JOBS_ENDPOINT = f"shm://{PREFIX}-jobs"
ORDERS_ENDPOINT = f"shm://{PREFIX}-orders"


def say(line: str) -> None:
    # One write per line: the two processes share one stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def worker() -> None:
    async with (
        shmsock.socket(shmsock.PULL) as jobs,
        shmsock.socket(shmsock.REP) as orders,
    ):
        jobs.bind(JOBS_ENDPOINT)
        orders.bind(ORDERS_ENDPOINT)
        done = total = 0
        wanted = math.inf  # stop once this many jobs are done
        all_done = trio.Event()

        async def do_jobs() -> None:
            nonlocal done, total
            async for job in jobs:
                done += 1
                total += int(job) ** 2
                if done >= wanted:
                    all_done.set()

        async def obey(nursery: trio.Nursery) -> None:
            nonlocal wanted
            async for order in orders:
                verb, _, count = order.partition(b" ")
                if verb != b"stop":
                    await orders.send(b"unknown order " + order)
                    continue
                wanted = int(count)
                if done >= wanted:
                    all_done.set()
                await all_done.wait()
                await orders.send(b"stopping after %d jobs" % done)
                nursery.cancel_scope.cancel()  # ends both tasks

        async with trio.open_nursery() as nursery:
            nursery.start_soon(do_jobs)
            nursery.start_soon(obey, nursery)
    say(f"worker: {done} jobs, sum of squares {total}")


async def client() -> None:
    async with (
        shmsock.socket(shmsock.PUSH, linger=None) as jobs,
        shmsock.socket(shmsock.REQ) as orders,
    ):
        jobs.connect(JOBS_ENDPOINT)
        orders.connect(ORDERS_ENDPOINT)
        for n in range(JOBS):
            await jobs.send(b"%d" % n)
        with trio.fail_after(30):  # around send and recv: send waits for a worker
            await orders.send(b"stop %d" % JOBS)
            reply = await orders.recv()
    say(f"client: {reply.decode()}")


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else "all"
    if role == "all":
        procs = [subprocess.Popen([sys.executable, __file__, r]) for r in ("worker", "client")]
        sys.exit(max(p.wait() for p in procs))
    trio.run({"worker": worker, "client": client}[role])


if __name__ == "__main__":
    main()
