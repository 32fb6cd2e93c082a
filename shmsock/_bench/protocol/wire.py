"""The conversation between the bench's coordinator and each worker process.

Over a multiprocessing pipe: a worker says ``"ready"``, then serves commands
until ``("quit", None)``.  A throughput receiver answers ``("run", params)``
with ``"armed"``, then ``"measuring"`` when its warm-up ends,
``("result", {...})`` when its measured window ends, and ``("done", {...})``
once every sender's END came.  A sender answers ``("run", params)`` by
sending until the coordinator says ``("stop", None)`` (or ``max_seconds``
pass), then sends its END and answers ``("stopped", {...})``.  A round-trip
server answers ``("serve", params)`` with ``"serving"``, echoes until the
one-byte ``STOP`` message (which it echoes too) and then says ``"idle"``;
the client answers ``("run", params)`` with ``("result", {...})``.  Any
failure is sent as ``("error", text)``.

A peer's roles are mostly setup: ``receiving``, ``sending``, ``echoing`` and
``timing`` (and their ``_async`` twins, given a way to wait for a command
off the event loop) serve the coordinator's commands with the loops of
``loops.py``.  ``entry`` starts every worker.  The coordinator's side is
``rigs.py``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from .loops import Chunk, EndSender, drive, receive_window, rounds_async, rounds_sync, send_window
from .messages import STOP, Checker, Mismatch

Spec = dict[str, Any]
PR_SET_PDEATHSIG = 1

Wait = Callable[[], Awaitable[Any]]  # the next command, without blocking the event loop


def entry(role: Callable[[Connection, Spec], None], conn: Connection, spec: Spec) -> None:
    """Start a worker: the environment and niceness it asks for, and errors reported.

    A worker dies with its parent, the forkserver, which ends when the bench
    does: a server blocked in its library's receive would otherwise outlive
    a bench that was killed.
    """
    parent = os.getppid()
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)  # the parent went before the request took effect
    os.environ.update(spec.get("env", {}))
    if spec.get("nice"):
        os.nice(spec["nice"])
    try:
        role(conn, spec)
    except (EOFError, BrokenPipeError):
        pass  # the coordinator went away
    except BaseException as exc:
        try:
            conn.send(("error", _describe(exc)))
        except OSError:
            pass
        raise SystemExit(1) from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Mismatch):
        return f"message check failed: {exc}"
    tail = traceback.format_exception(exc)[-3:]
    return "".join(tail).strip()


def fail(text: str) -> NoReturn:
    raise RuntimeError(text)


def commands(conn: Connection) -> Iterator[tuple[str, Any]]:
    """The coordinator's commands, until it says quit.

    A "stop" that comes after a sender stopped by itself is passed over.
    """
    while True:
        cmd, p = conn.recv()
        if cmd == "quit":
            return
        if cmd != "stop":
            yield cmd, p


async def commands_async(wait: Wait) -> AsyncIterator[tuple[str, Any]]:
    """commands() for a worker under an event loop; *wait* gets one in a thread."""
    while True:
        cmd, p = await wait()
        if cmd == "quit":
            return
        if cmd != "stop":
            yield cmd, p


def receiving(
    conn: Connection, chunk: Chunk, checker: Checker, before: Callable[[], object] = bool
) -> None:
    """Run receive windows (see receive_window) until told to quit.

    *before* runs before each window, once every sender is up.
    """
    for cmd, p in commands(conn):
        if cmd == "run":
            before()
            drive(receive_window(conn, chunk, checker, p))


async def receiving_async(conn: Connection, wait: Wait, chunk: Chunk, checker: Checker) -> None:
    async for cmd, p in commands_async(wait):
        if cmd == "run":
            await receive_window(conn, chunk, checker, p)


def sending(
    conn: Connection,
    chunk: Chunk,
    send_end: EndSender,
    sid: int = 0,
    too_large: tuple[type[BaseException], ...] = (),
) -> None:
    """Run send windows (see send_window) until told to quit."""
    for cmd, p in commands(conn):
        if cmd == "run":
            drive(send_window(conn, chunk, send_end, p, sid, too_large))


async def sending_async(
    conn: Connection,
    wait: Wait,
    chunk: Chunk,
    send_end: EndSender,
    sid: int = 0,
    too_large: tuple[type[BaseException], ...] = (),
) -> None:
    async for cmd, p in commands_async(wait):
        if cmd == "run":
            await send_window(conn, chunk, send_end, p, sid, too_large)


def echoing(conn: Connection, recv: Callable[[], bytes], send: Callable[[bytes], object]) -> None:
    """An echo server's life: on "serve", echo until the STOP message (echoed too)."""
    for cmd, _ in commands(conn):
        if cmd == "serve":
            conn.send("serving")
            while True:
                m = recv()
                send(m)
                if len(m) == len(STOP):
                    break
            conn.send("idle")


async def echoing_async(
    conn: Connection,
    wait: Wait,
    recv: Callable[[], Awaitable[bytes]],
    send: Callable[[bytes], Awaitable[object]],
) -> None:
    async for cmd, _ in commands_async(wait):
        if cmd == "serve":
            conn.send("serving")
            while True:
                m = await recv()
                await send(m)
                if len(m) == len(STOP):
                    break
            conn.send("idle")


def timing(conn: Connection, send: Callable[[bytes], object], recv: Callable[[], bytes]) -> None:
    """A round-trip client's life: on "run", time the rounds and answer with them."""
    for cmd, p in commands(conn):
        if cmd == "run":
            conn.send(("result", rounds_sync(send, recv, p)))


async def timing_async(
    conn: Connection,
    wait: Wait,
    send: Callable[[bytes], Awaitable[object]],
    recv: Callable[[], Awaitable[bytes]],
) -> None:
    async for cmd, p in commands_async(wait):
        if cmd == "run":
            conn.send(("result", await rounds_async(send, recv, p)))
