"""Network: one pipeline over shm:// on this host and tcp:// to another.

A ventilator hands out tasks to workers on its host over shm:// and to a
worker "elsewhere" over tcp:// (here, 127.0.0.1); a sink collects the
results from both transports on one socket.  Needs pyzmq:
pip install 'shmsock[zmq]'.

Every role at once, each in a process of its own:

    python examples/network.py
    python examples/network.py --pyzmq    # the remote worker is plain pyzmq

Or one role per shell, started in any order:

    python examples/network.py sink            # shell 1
    python examples/network.py worker          # shell 2
    python examples/network.py worker          # shell 3
    python examples/network.py remote-worker   # shell 4
    python examples/network.py ventilator      # shell 5

The ventilator binds one PUSH socket at shm://network-jobs and at --jobs-tcp
(tcp://127.0.0.1:5570), and deals tasks to its three peers in turn: two
local workers and the tcp:// endpoint (all the remote workers of one bound
tcp:// endpoint count as one peer, and share its turn).  The sink binds one
PULL at shm://network-results and at --results-tcp (tcp://127.0.0.1:5571).
On two hosts, bind the tcp:// endpoints on the address the other host
reaches, and give the remote workers those endpoints.  tcp:// without CURVE
is plain text: see docs/network.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import trio

import shmsock

TASKS = 100
JOBS_SHM = "shm://network-jobs"
RESULTS_SHM = "shm://network-results"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def ventilator(args: argparse.Namespace) -> None:
    async with shmsock.socket(shmsock.PUSH, linger=None) as jobs:
        jobs.bind(JOBS_SHM)
        jobs.bind(args.jobs_tcp)
        await jobs.wait_peers(3)  # two local workers and the tcp:// endpoint's
        for n in range(TASKS):
            await jobs.send(b"%d" % n)
        for _ in range(3):
            await jobs.send(b"stop")
    say(f"ventilator: sent {TASKS} tasks")


async def work(jobs_endpoint: str, results_endpoint: str, name: str) -> None:
    done = 0
    async with (
        shmsock.socket(shmsock.PULL) as jobs,
        shmsock.socket(shmsock.PUSH, linger=None) as results,
    ):
        jobs.connect(jobs_endpoint)
        results.connect(results_endpoint)
        async for task in jobs:
            if task == b"stop":
                break
            await results.send(b"%d" % (int(task) ** 2))
            done += 1
    say(f"{name} {os.getpid()}: did {done} tasks")


async def worker(args: argparse.Namespace) -> None:
    await work(JOBS_SHM, RESULTS_SHM, "worker")


async def remote_worker(args: argparse.Namespace) -> None:
    await work(args.jobs_tcp, args.results_tcp, "remote worker")


def pyzmq_worker(args: argparse.Namespace) -> None:
    """The remote worker as a plain pyzmq program: ZeroMQ on the other end."""
    import zmq

    ctx = zmq.Context()
    jobs, results = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    jobs.connect(args.jobs_tcp)
    results.connect(args.results_tcp)
    done = 0
    while (task := jobs.recv()) != b"stop":
        results.send(b"%d" % (int(task) ** 2))
        done += 1
    jobs.close()
    results.close()
    ctx.term()  # waits until the results are sent
    say(f"remote pyzmq worker {os.getpid()}: did {done} tasks")


async def sink(args: argparse.Namespace) -> None:
    async with shmsock.socket(shmsock.PULL) as results:
        results.bind(RESULTS_SHM)
        results.bind(args.results_tcp)
        total = 0
        for _ in range(TASKS):
            total += int(await results.recv())
    say(f"sink: {TASKS} results, sum of squares {total}")


ROLES = {
    "ventilator": ventilator,
    "worker": worker,
    "remote-worker": remote_worker,
    "sink": sink,
}


def main() -> None:
    parser = argparse.ArgumentParser(description="A pipeline over shm:// and tcp://.")
    parser.add_argument(
        "role",
        nargs="?",
        default="all",
        choices=["all", *ROLES, "pyzmq-worker"],
        help="default: all",
    )
    parser.add_argument(
        "--jobs-tcp", default="tcp://127.0.0.1:5570", help="ventilator's tcp:// (%(default)s)"
    )
    parser.add_argument(
        "--results-tcp", default="tcp://127.0.0.1:5571", help="sink's tcp:// (%(default)s)"
    )
    parser.add_argument(
        "--pyzmq", action="store_true", help="with all: the remote worker is plain pyzmq"
    )
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--jobs-tcp", args.jobs_tcp, "--results-tcp", args.results_tcp]
        remote = "pyzmq-worker" if args.pyzmq else "remote-worker"
        roles = ["sink", "ventilator", "worker", "worker", remote]
        procs = [subprocess.Popen([sys.executable, __file__, r, *flags]) for r in roles]
        sys.exit(max(p.wait() for p in procs))
    if args.role == "pyzmq-worker":
        pyzmq_worker(args)
        return
    trio.run(ROLES[args.role], args)


if __name__ == "__main__":
    main()
