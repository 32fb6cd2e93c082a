"""The standard library's ``multiprocessing.Queue`` and ``Pipe``.

``Queue.put``/``get`` of ``bytes`` (pickled by the queue's feeder thread),
bounded like pyzmq's high-water mark: 1000 messages, fewer above 64 KiB so
that no more than 64 MiB waits in it; an unbounded queue would take every
message a fast sender makes.  ``Pipe`` is ``send_bytes``/``recv_bytes``,
no pickling.  A Queue takes many producers, so it is in the fan-in too: the
senders all put into one queue.  The coordinator makes the queues and pipes (``shared``) and
hands them to both processes when it starts them, the one way
multiprocessing shares them.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any

from ..protocol import (
    Checker,
    Pool,
    Spec,
    echoing,
    one_by_one,
    receiving,
    send_each,
    sending,
    step,
    timing,
)

QUEUE_BYTES = 64 << 20


def shared(ctx: Any, params: dict[str, Any], size: int) -> dict[str, Any]:
    """What both processes of a rig must be given at their start."""
    if params["kind"] == "queue":
        depth = max(2, min(1000, QUEUE_BYTES // size))
        return {"queue": ctx.Queue(depth), "replies": ctx.Queue(depth)}
    a, b = ctx.Pipe(duplex=True)
    return {"ends": (a, b)}


def _receive(conn: Connection, spec: Spec, recv: Any) -> None:
    checker = Checker(spec["size"], spec.get("senders", 1))
    chunk = one_by_one(recv, checker, step(spec["size"]))
    conn.send("ready")
    receiving(conn, chunk, checker)


def _send(conn: Connection, spec: Spec, send: Any) -> None:
    sid = spec.get("sid", 0)
    pool = Pool(spec["size"], sid)
    conn.send("ready")
    sending(conn, *send_each(send, pool, step(pool.size)), sid)


def queue_receiver(conn: Connection, spec: Spec) -> None:
    _receive(conn, spec, spec["queue"].get)


def queue_sender(conn: Connection, spec: Spec) -> None:
    q = spec["queue"]
    try:
        _send(conn, spec, q.put)
    finally:
        q.cancel_join_thread()  # everything sent was read: nothing to wait for


def pipe_receiver(conn: Connection, spec: Spec) -> None:
    _receive(conn, spec, spec["ends"][0].recv_bytes)


def pipe_sender(conn: Connection, spec: Spec) -> None:
    _send(conn, spec, spec["ends"][1].send_bytes)


def queue_echo(conn: Connection, spec: Spec) -> None:
    replies = spec["replies"]
    conn.send("ready")
    try:
        echoing(conn, spec["queue"].get, replies.put)
    finally:
        replies.cancel_join_thread()


def queue_client(conn: Connection, spec: Spec) -> None:
    requests = spec["queue"]
    conn.send("ready")
    try:
        timing(conn, requests.put, spec["replies"].get)
    finally:
        requests.cancel_join_thread()


def pipe_echo(conn: Connection, spec: Spec) -> None:
    end = spec["ends"][0]
    conn.send("ready")
    echoing(conn, end.recv_bytes, end.send_bytes)


def pipe_client(conn: Connection, spec: Spec) -> None:
    end = spec["ends"][1]
    conn.send("ready")
    timing(conn, end.send_bytes, end.recv_bytes)
