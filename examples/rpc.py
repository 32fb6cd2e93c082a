"""RPC over REQ/REP: a small calculator server and a client.

    python examples/rpc.py                  # server and client, two processes
    python examples/rpc.py server | client  # one role

Requests are multipart messages ``[method, json-args]``; replies are
``[b"ok", json-result]`` or ``[b"error", message]``.  The client guards
each call with a Trio deadline: a server that dies mid-call turns into
trio.BrokenResourceError at once, not a hang.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import trio

import shmsock

ENDPOINT = os.environ.get("RPC_ENDPOINT", f"shm://rpc-{os.getpid()}")
METHODS = {"add": lambda a, b: a + b, "sqrt": math.sqrt, "upper": str.upper}


async def server() -> None:
    async with shmsock.socket(shmsock.REP) as rep:
        rep.bind(ENDPOINT)
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


async def client() -> None:
    async with shmsock.socket(shmsock.REQ) as req:
        req.connect(ENDPOINT)
        print("add(2, 3) =", await call(req, "add", 2, 3))
        print("sqrt(2) =", round(await call(req, "sqrt", 2), 6))
        print("upper('shm') =", await call(req, "upper", "shm"))
        try:
            await call(req, "sqrt", -1)
        except RuntimeError as exc:
            print("sqrt(-1) failed:", exc)
        await call(req, "quit")


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else "all"
    if role == "all":
        env = {**os.environ, "RPC_ENDPOINT": ENDPOINT}
        server_proc = subprocess.Popen([sys.executable, __file__, "server"], env=env)
        client_proc = subprocess.Popen([sys.executable, __file__, "client"], env=env)
        sys.exit(max(client_proc.wait(), server_proc.wait()))
    trio.run(server if role == "server" else client)


if __name__ == "__main__":
    main()
