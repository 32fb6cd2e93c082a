"""RPC over REQ/REP: a small calculator server and a client.

Server and client at once, each in a process of its own:

    python examples/rpc.py

Or one per shell, started in either order:

    python examples/rpc.py server    # shell 1
    python examples/rpc.py client    # shell 2

The server binds a REP socket at shm://rpc (--endpoint names another; give
both the same) and answers until a client asks it to quit, which this
client does after its calls.  Requests are multipart messages
``[method, json-args]``; replies are ``[b"ok", json-result]`` or
``[b"error", message]``.  The client guards each call with a Trio
deadline: a server that dies mid-call turns into trio.BrokenResourceError
at once, not a hang.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from typing import Any

import trio

import shmsock

METHODS = {"add": lambda a, b: a + b, "sqrt": math.sqrt, "upper": str.upper}


async def server(endpoint: str) -> None:
    async with shmsock.socket(shmsock.REP) as rep:
        rep.bind(endpoint)
        print("server: ready", flush=True)
        while True:
            method, raw = await rep.recv_multipart()
            if method == b"quit":
                await rep.send_multipart([b"ok", b"null"])
                break
            try:
                result = METHODS[method.decode()](*json.loads(raw))
                await rep.send_multipart([b"ok", json.dumps(result).encode()])
            except Exception as exc:  # the error goes back to the caller
                await rep.send_multipart([b"error", repr(exc).encode()])


async def call(req: shmsock.Socket, method: str, *args: Any) -> Any:
    with trio.fail_after(5):
        await req.send_multipart([method.encode(), json.dumps(args).encode()])
        status, payload = await req.recv_multipart()
    if status != b"ok":
        raise RuntimeError(payload.decode())
    return json.loads(payload)


async def client(endpoint: str) -> None:
    async with shmsock.socket(shmsock.REQ) as req:
        req.connect(endpoint)
        print("add(2, 3) =", await call(req, "add", 2, 3))
        print("sqrt(2) =", round(await call(req, "sqrt", 2), 6))
        print("upper('shm') =", await call(req, "upper", "shm"))
        try:
            await call(req, "sqrt", -1)
        except RuntimeError as exc:
            print("sqrt(-1) failed:", exc)
        await call(req, "quit")


def main() -> None:
    parser = argparse.ArgumentParser(description="RPC over REQ/REP.")
    parser.add_argument(
        "role", nargs="?", default="all", choices=["all", "server", "client"], help="default: all"
    )
    parser.add_argument("--endpoint", default="shm://rpc", help="where they meet (%(default)s)")
    args = parser.parse_args()
    if args.role == "all":
        flags = ["--endpoint", args.endpoint]
        server_proc = subprocess.Popen([sys.executable, __file__, "server", *flags])
        client_proc = subprocess.Popen([sys.executable, __file__, "client", *flags])
        sys.exit(max(client_proc.wait(), server_proc.wait()))
    trio.run(server if args.role == "server" else client, args.endpoint)


if __name__ == "__main__":
    main()
