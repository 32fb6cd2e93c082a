"""Broker: the ZeroMQ Guide's request-reply broker, a ROUTER and a DEALER joined by shmsock.proxy.

Broker, two workers and three clients at once, each in a process of its own:

    python examples/broker.py

Or one per shell, started in any order:

    python examples/broker.py broker    # shell 1
    python examples/broker.py worker    # shell 2
    python examples/broker.py worker    # shell 3
    python examples/broker.py client    # shell 4
    python examples/broker.py client    # shell 5
    python examples/broker.py client    # shell 6

Clients are REQ sockets and workers REP sockets, each as simple as if it
talked to the other directly; neither knows how many of the other there
are.  The broker binds a ROUTER for the clients and a DEALER for the
workers and runs ``shmsock.proxy`` between them: a request goes to the
next worker in turn, with its client's envelope in front, and the reply
finds its way back by it.

Nothing here runs forever: the broker watches its peers through peer
events and stops once --workers workers (default 2) have connected and
--clients clients (default 3) have left; each worker stops when the broker
departs.  (Waiting for the workers means a worker started late, after the
clients were served, still finds the broker and stops.)

The endpoints are shm://broker-frontend and shm://broker-backend
(--frontend and --backend name others; give every role the same).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import trio

import shmsock

REQUESTS = 5


def say(line: str) -> None:
    # One write per line: the processes share one stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def broker(frontend_endpoint: str, backend_endpoint: str, clients: int, workers: int) -> None:
    async with (
        shmsock.socket(shmsock.ROUTER) as frontend,
        shmsock.socket(shmsock.DEALER) as backend,
    ):
        frontend.bind(frontend_endpoint)
        backend.bind(backend_endpoint)
        async with (
            frontend.peer_events() as client_events,
            backend.peer_events() as worker_events,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(shmsock.proxy, frontend, backend)
            came = 0
            async for event in worker_events:
                if event.kind is shmsock.PeerEventKind.CONNECTED:
                    came += 1
                    if came == workers:
                        break
            left = 0
            async for event in client_events:  # it kept what came meanwhile
                if event.kind is shmsock.PeerEventKind.DEPARTED:
                    left += 1
                    if left == clients:
                        nursery.cancel_scope.cancel()  # stops the proxy between two messages
                        break
    say(f"broker: {clients} clients came and went")


async def worker(frontend_endpoint: str, backend_endpoint: str, *_: int) -> None:
    served = 0
    async with shmsock.socket(shmsock.REP) as rep:
        rep.connect(backend_endpoint)
        async with rep.peer_events() as events, trio.open_nursery() as nursery:

            async def serve() -> None:
                nonlocal served
                async for request in rep:
                    await rep.send(request.upper())
                    served += 1

            async def until_the_broker_departs() -> None:
                async for event in events:
                    if event.kind is shmsock.PeerEventKind.DEPARTED:
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(serve)
            nursery.start_soon(until_the_broker_departs)
    say(f"worker: served {served} requests")


async def client(frontend_endpoint: str, backend_endpoint: str, *_: int) -> None:
    me = b"client %d" % os.getpid()
    async with shmsock.socket(shmsock.REQ) as req:
        req.connect(frontend_endpoint)
        with trio.fail_after(30):  # around send and recv: send waits for the broker
            for i in range(REQUESTS):
                request = me + b" request %d" % i
                await req.send(request)
                assert await req.recv() == request.upper()  # its own reply, never another's
    say(f"client: {REQUESTS} replies, each to its own request")


def main() -> None:
    parser = argparse.ArgumentParser(description="A request-reply broker: ROUTER, DEALER, proxy.")
    parser.add_argument(
        "role",
        nargs="?",
        default="all",
        choices=["all", "broker", "worker", "client"],
        help="default: all",
    )
    parser.add_argument("--frontend", default="shm://broker-frontend", help="(%(default)s)")
    parser.add_argument("--backend", default="shm://broker-backend", help="(%(default)s)")
    parser.add_argument(
        "--clients", type=int, default=3, help="the broker stops after this many (%(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="the broker waits for this many (%(default)s)"
    )
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--frontend", args.frontend, "--backend", args.backend]
        flags += ["--clients", str(args.clients), "--workers", str(args.workers)]
        roles = ["broker"] + ["worker"] * args.workers + ["client"] * args.clients
        procs = [subprocess.Popen([sys.executable, __file__, r, *flags]) for r in roles]
        sys.exit(max(p.wait() for p in procs))
    role = {"broker": broker, "worker": worker, "client": client}[args.role]
    trio.run(role, args.frontend, args.backend, args.clients, args.workers)


if __name__ == "__main__":
    main()
