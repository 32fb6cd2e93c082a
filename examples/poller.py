"""Poller: one task per socket in a nursery, where pyzmq uses zmq.Poller.

Worker and client at once, each in a process of its own:

    python examples/poller.py

Or one per shell, started in either order:

    python examples/poller.py worker    # shell 1
    python examples/poller.py client    # shell 2

The worker binds two sockets: a PULL of jobs and a REP for orders.  With
pyzmq it would register both with a zmq.Poller and loop over the events;
with Trio each socket gets a task of its own in one nursery, and the tasks
share their state as any Trio tasks do.  The client sends 100 jobs, then
orders the worker to stop once it has done all 100.

The endpoints are shm://poller-jobs and shm://poller-orders (--jobs and
--orders name others; give both roles the same).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import trio

import shmsock

JOBS = 100


def say(line: str) -> None:
    # One write per line: the two processes share one stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def worker(jobs_endpoint: str, orders_endpoint: str) -> None:
    async with (
        shmsock.socket(shmsock.PULL) as jobs,
        shmsock.socket(shmsock.REP) as orders,
    ):
        jobs.bind(jobs_endpoint)
        orders.bind(orders_endpoint)
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


async def client(jobs_endpoint: str, orders_endpoint: str) -> None:
    async with (
        shmsock.socket(shmsock.PUSH, linger=None) as jobs,
        shmsock.socket(shmsock.REQ) as orders,
    ):
        jobs.connect(jobs_endpoint)
        orders.connect(orders_endpoint)
        for n in range(JOBS):
            await jobs.send(b"%d" % n)
        with trio.fail_after(30):  # around send and recv: send waits for a worker
            await orders.send(b"stop %d" % JOBS)
            reply = await orders.recv()
    say(f"client: {reply.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description="One task per socket, where pyzmq polls.")
    parser.add_argument(
        "role", nargs="?", default="all", choices=["all", "worker", "client"], help="default: all"
    )
    parser.add_argument("--jobs", default="shm://poller-jobs", help="jobs (%(default)s)")
    parser.add_argument("--orders", default="shm://poller-orders", help="orders (%(default)s)")
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--jobs", args.jobs, "--orders", args.orders]
        roles = ("worker", "client")
        procs = [subprocess.Popen([sys.executable, __file__, r, *flags]) for r in roles]
        sys.exit(max(p.wait() for p in procs))
    trio.run(worker if args.role == "worker" else client, args.jobs, args.orders)


if __name__ == "__main__":
    main()
