"""Async server: the ZeroMQ Guide's asynchronous client/server, DEALERs talking to a ROUTER.

The server and three clients at once, each in a process of its own:

    python examples/asyncsrv.py

Or one per shell, started in any order:

    python examples/asyncsrv.py server    # shell 1
    python examples/asyncsrv.py client    # shell 2
    python examples/asyncsrv.py client    # shell 3
    python examples/asyncsrv.py client    # shell 4

Unlike REQ and REP, nothing here goes in lockstep.  Each client is a
DEALER with a routing id of its own: one task sends its requests without
waiting, another takes the replies as they come, in any order and any
number (request n gets n % 3 + 1 replies).  The server binds a ROUTER on
shared memory and a DEALER on ``inproc://``, and runs ``shmsock.proxy``
between them; five worker tasks in the same process, each a DEALER,
receive ``[client id, request]`` and send ``[client id, reply]`` as often
as they like.  The ROUTER routes every reply to the client its id names.

The server stops once --clients clients (default 3) have come and gone
(peer events tell it).  The endpoint is shm://asyncsrv (--endpoint names
another; give every role the same).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import trio

import shmsock

REQUESTS = 6
WORKERS = 5


def say(line: str) -> None:
    # One write per line: the processes share one stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def replies_to(n: int) -> int:
    return n % 3 + 1


async def server(endpoint: str, clients: int) -> None:
    backend_endpoint = f"inproc://asyncsrv-workers-{os.getpid()}"
    async with (
        shmsock.socket(shmsock.ROUTER) as frontend,
        shmsock.socket(shmsock.DEALER) as backend,
    ):
        frontend.bind(endpoint)
        backend.bind(backend_endpoint)
        handled = 0

        async def worker() -> None:
            nonlocal handled
            async with shmsock.socket(shmsock.DEALER) as sock:
                sock.connect(backend_endpoint)
                while True:
                    client_id, request = await sock.recv_multipart()
                    n = int(request)
                    for k in range(replies_to(n)):
                        await sock.send_multipart([client_id, b"%d.%d" % (n, k)])
                    handled += 1

        async with frontend.peer_events() as events, trio.open_nursery() as nursery:
            for _ in range(WORKERS):
                nursery.start_soon(worker)
            nursery.start_soon(shmsock.proxy, frontend, backend)
            left = 0
            async for event in events:
                if event.kind is shmsock.PeerEventKind.DEPARTED:
                    left += 1
                    if left == clients:
                        nursery.cancel_scope.cancel()
                        break
    say(f"server: {handled} requests from {clients} clients, by {WORKERS} workers")


async def client(endpoint: str, clients: int) -> None:
    me = b"client-%d" % os.getpid()
    expected = {b"%d.%d" % (n, k) for n in range(REQUESTS) for k in range(replies_to(n))}
    got: set[bytes] = set()
    async with shmsock.socket(shmsock.DEALER, routing_id=me) as dealer:
        dealer.connect(endpoint)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:

                async def send_all() -> None:
                    for n in range(REQUESTS):
                        await dealer.send(b"%d" % n)

                nursery.start_soon(send_all)
                while got != expected:
                    got.add(await dealer.recv())
    say(f"client: {len(got)} replies to {REQUESTS} requests, as they came")


def main() -> None:
    parser = argparse.ArgumentParser(description="DEALER clients, a ROUTER server, async.")
    parser.add_argument(
        "role", nargs="?", default="all", choices=["all", "server", "client"], help="default: all"
    )
    parser.add_argument("--endpoint", default="shm://asyncsrv", help="(%(default)s)")
    parser.add_argument(
        "--clients", type=int, default=3, help="the server stops after this many (%(default)s)"
    )
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--endpoint", args.endpoint, "--clients", str(args.clients)]
        roles = ["server"] + ["client"] * args.clients
        procs = [subprocess.Popen([sys.executable, __file__, r, *flags]) for r in roles]
        sys.exit(max(p.wait() for p in procs))
    trio.run(server if args.role == "server" else client, args.endpoint, args.clients)


if __name__ == "__main__":
    main()
