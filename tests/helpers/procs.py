"""Run shmsock peers in other OS processes.

``spawn(target, *args)`` starts ``target(*args)`` (a function of
``tests/helpers/peers.py``) in a fresh interpreter with this test's SHMSOCK_ROOT,
and gives back a handle with a pipe to talk to it.  Children report
through the pipe, so tests synchronise on events, never on sleeps.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import trio

_ctx = multiprocessing.get_context("spawn")


def forked() -> multiprocessing.context.BaseContext:
    """A context whose children fork from a server with shmsock imported.

    Starting a child this way costs a few milliseconds instead of the few
    hundred a fresh interpreter takes: for tests that start many.  The
    server itself is a fresh interpreter, so no test's state leaks into it.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        [
            "trio",
            "shmsock",
            "zmq",
            "helpers.procs",
            "helpers.peers",
            "helpers.crashpeers",
            "helpers.soak",
            "helpers.zmq_peers",
        ]
    )
    return ctx


def _bootstrap(root: str, conn: Connection, target: Callable[..., Any], args: tuple) -> None:
    os.environ["SHMSOCK_ROOT"] = root
    target(conn, *args)


class Child:
    """A child process running a peer; ``with spawn(...) as child:`` ends it surely.

    Leaving the block kills the child if it still runs and closes the
    pipe, however the block is left: the boilerplate every test used to
    write as try/finally.
    """

    def __init__(
        self,
        target: Callable[..., Any],
        *args: Any,
        ctx: multiprocessing.context.BaseContext = _ctx,
    ) -> None:
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(  # type: ignore[attr-defined]
            target=_bootstrap,
            args=(os.environ["SHMSOCK_ROOT"], child_conn, target, args),
            daemon=True,
        )
        self.proc.start()
        child_conn.close()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    async def recv(self, timeout: float = 30) -> Any:
        """The next thing the child reports (fails the test after *timeout*)."""
        with trio.fail_after(timeout):
            return await trio.to_thread.run_sync(self._recv_blocking, abandon_on_cancel=True)

    def _recv_blocking(self) -> Any:
        return self.conn.recv()

    def send(self, obj: Any) -> None:
        self.conn.send(obj)

    async def expect(self, value: Any, timeout: float = 30) -> None:
        got = await self.recv(timeout)
        assert got == value, f"child said {got!r}, expected {value!r}"

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.join(10)

    async def join(self, timeout: float = 30) -> int:
        with trio.fail_after(timeout):
            await trio.to_thread.run_sync(self.proc.join, abandon_on_cancel=True)
        assert self.proc.exitcode is not None
        return self.proc.exitcode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def finish(self, timeout: float = 30) -> None:
        """Tell the child to exit ("exit" on its pipe) and check it did, with status 0.

        A child whose work ends by itself may have left already, its pipe
        closed: then there is no one to tell, and its status alone counts.
        """
        try:
            self.send("exit")
        except BrokenPipeError:
            pass
        assert await self.join(timeout) == 0

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(10)
        self.conn.close()


def spawn(
    target: Callable[..., Any],
    *args: Any,
    ctx: multiprocessing.context.BaseContext = _ctx,
) -> Child:
    """Start ``target(pipe, *args)`` in a child process (spawned by default)."""
    return Child(target, *args, ctx=ctx)
