"""Weather updates: a PUB server, SUB clients that each follow one zip code.

The ZeroMQ Guide's first PUB/SUB example (wuserver, wuclient).  Every role
at once, each in a process of its own:

    python examples/weather.py

Or one role per shell, started in any order:

    python examples/weather.py server          # shell 1
    python examples/weather.py client 10001    # shell 2
    python examples/weather.py client 10002    # shell 3

The server binds a PUB socket at shm://weather and publishes updates
"ZIP TEMPERATURE HUMIDITY" for random zip codes 10000 to 10009.  Each client
subscribes to its zip code (with the trailing space, so that 1000 would not
match 10001) before it connects, receives --updates updates (default 20)
and prints their average temperature.  The publisher filters: a client's
ring holds only its own zip code's updates.  The server waits for
--clients clients (default 2), publishes while any is attached, and
stops once the last one left.  --endpoint names another endpoint; give
every role the same one.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys

import trio

import shmsock


def say(line: str) -> None:
    # One write per line: the roles share one stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def server(args: argparse.Namespace) -> None:
    rng = random.Random()
    sent = 0
    async with shmsock.socket(shmsock.PUB) as pub:
        pub.bind(args.endpoint)
        # A client's subscription arrives with its connection: once it is
        # attached, it gets every update for its zip code from here on.
        await pub.wait_peers(args.clients)
        while pub.peer_count:
            zipcode = rng.randrange(10000, 10010)
            temperature = rng.randrange(-80, 135)
            humidity = rng.randrange(10, 60)
            await pub.send(f"{zipcode} {temperature} {humidity}".encode())
            sent += 1
            if sent % 100 == 0:
                await trio.sleep(0.001)  # an update every 10 us or so, not a flood
    say(f"server: published {sent} updates")


async def client(args: argparse.Namespace) -> None:
    async with shmsock.socket(shmsock.SUB) as sub:
        sub.subscribe(f"{args.zipcode} ")
        sub.connect(args.endpoint)
        total = 0
        for _ in range(args.updates):
            zipcode, temperature, _humidity = (await sub.recv()).decode().split()
            assert zipcode == args.zipcode  # the publisher sent only ours
            total += int(temperature)
    say(f"client {args.zipcode}: average temperature {total / args.updates:.1f} F")


def main() -> None:
    parser = argparse.ArgumentParser(description="Weather updates over PUB/SUB.")
    parser.add_argument(
        "role", nargs="?", default="all", choices=["all", "server", "client"], help="default: all"
    )
    parser.add_argument("zipcode", nargs="?", default="10001", help="a client's (%(default)s)")
    parser.add_argument("--endpoint", default="shm://weather", help="(%(default)s)")
    parser.add_argument(
        "--clients", type=int, default=2, help="clients the server waits for (%(default)s)"
    )
    parser.add_argument(
        "--updates", type=int, default=20, help="updates a client averages (%(default)s)"
    )
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--endpoint", args.endpoint, "--clients", "2", "--updates", str(args.updates)]
        roles = [["server"], ["client", "10001"], ["client", "10002"]]
        procs = [subprocess.Popen([sys.executable, __file__, *r, *flags]) for r in roles]
        sys.exit(max(p.wait() for p in procs))
    trio.run(server if args.role == "server" else client, args)


if __name__ == "__main__":
    main()
