"""PUB -> N SUB, one process each: shmsock over ``shm://`` and pyzmq over ``ipc://``.

The figure is the messages delivered per second over all subscribers
(each message counts once per subscriber that got it).  Every subscriber
subscribes to everything, and no message may be lost: a lost one fails
the trial, so both publishers wait for a full subscriber instead of
dropping (shmsock's ``nodrop``, libzmq's ``XPUB_NODROP``), and the figure
is the rate the slowest subscriber allows, as for a real feed that must
arrive whole.  shmsock's ways: one ``await send`` per message, with the
subscribers receiving one message per ``await recv`` or in batches
(``recv_many``); and batches at both ends, the publisher sending its pool
of 256 messages with one ``send_many``, as a feed that has several
messages at hand would (libzmq batches the same way inside its I/O
thread, where pyzmq's publisher cannot see it).

The conversation (``suite.fanout_window``): every worker says "ready".  A
subscriber answers ``("run", params)`` with "armed", measures from its
first message plus ``warmup`` for ``seconds`` and sends ``("result",
{"messages", "seconds"})``, then reads on until the publisher's END and
says ``("done", {"checked": n})``.  The publisher answers ``("run",
params)`` with "sending" once every subscriber is attached (and so
subscribed), sends until ``("stop", None)``, then its END, and says
``("stopped", {"sent": n})``.  ``("quit", None)`` ends either.  Message
``j`` starts with ``j`` modulo the pool's length (8 bytes), which every
subscriber checks: a lost, repeated or reordered message is an error.  The
check is the same code for every way, and each reads the clock once per
POOL messages, whether it receives batches or one message per call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from itertools import islice
from multiprocessing.connection import Connection
from typing import Any

from .pyzmq import address as zmq_address
from .pyzmq import queue_length

SEQ = struct.Struct("<Q")
END = b"\xff" * 8 + b"END"
POOL = 256
#: How many messages a publisher sends between looks at its pipe.
STRIDE = 256


def _pool(size: int) -> list[bytes]:
    body = bytes(range(256)) * (size // 256 + 1)
    return [SEQ.pack(j) + body[: max(0, size - SEQ.size)] for j in range(POOL)]


class _Counter:
    """A subscriber's window and its checks."""

    def __init__(self, params: dict[str, Any], size: int) -> None:
        from time import perf_counter

        self.now = perf_counter
        self.warmup = params["warmup"]
        self.seconds = params["seconds"]
        self.size = size
        self.expect = 0
        self.start = 0.0
        self.measure_from = 0.0
        self.checked = 0
        self.mark_checked = -1  # checked when the measured window began
        self.mark_time = 0.0
        self.result: dict[str, float] | None = None

    def take(self, messages: Iterable[bytes]) -> bool:
        """Check and count *messages*, then read the clock; True once END came.

        A way that receives one message per call passes an iterator that
        receives POOL of them (``islice(iter(recv, None), POOL)``): the
        same check, and the clock read once per POOL messages, as for a
        batch of POOL, so that the bench's own work costs each way alike.
        """
        for m in messages:
            if m == END:
                return True
            if len(m) != self.size or SEQ.unpack_from(m)[0] != self.expect:
                self._wrong(m)
            self.expect = (self.expect + 1) % POOL
            self.checked += 1
        self._tick()
        return False

    def take_one(self, m: bytes) -> bool:
        """``take([m])`` for an async receiver (which cannot pass an iterator).

        The same check; the clock is read once per POOL messages, as for a
        batch of POOL.
        """
        if m == END:
            return True
        if len(m) != self.size or SEQ.unpack_from(m)[0] != self.expect:
            self._wrong(m)
        self.expect = expect = (self.expect + 1) % POOL
        self.checked += 1
        if not expect or not self.start:
            self._tick()
        return False

    def _wrong(self, m: bytes) -> None:
        got = SEQ.unpack_from(m)[0] if len(m) >= 8 else None
        raise AssertionError(
            f"message {self.checked}: seq {got}, length {len(m)};"
            f" expected seq {self.expect}, length {self.size}"
        )

    def _tick(self) -> None:
        """Read the clock: start, open or close the measured window."""
        t = self.now()
        if not self.start:
            self.start = t
            self.measure_from = t + self.warmup
        if self.result is None and t >= self.measure_from:
            if self.mark_checked < 0:
                self.mark_checked = self.checked
                self.mark_time = t
            elif t - self.mark_time >= self.seconds:
                self.result = {
                    "messages": self.checked - self.mark_checked,
                    "seconds": t - self.mark_time,
                }


def _serve(conn: Connection, run: Callable[[dict[str, Any]], None]) -> None:
    conn.send("ready")
    while True:
        cmd, params = conn.recv()
        if cmd == "quit":
            return
        run(params)


# -- shmsock --------------------------------------------------------------------------


def shm_subscriber(conn: Connection, spec: dict[str, Any]) -> None:
    import trio

    import shmsock

    batch = spec.get("style") in ("batch", "many")

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB) as sub:
            sub.subscribe(b"")
            sub.connect(f"shm://{spec['name']}")
            conn.send("ready")
            while True:
                cmd, params = await trio.to_thread.run_sync(conn.recv)
                if cmd == "quit":
                    return
                c = _Counter(params, spec["size"])
                conn.send("armed")
                sent = False
                while True:
                    if c.take(await sub.recv_many(1024)) if batch else c.take_one(await sub.recv()):
                        break
                    if c.result is not None and not sent:
                        conn.send(("result", c.result))
                        sent = True
                if not sent:
                    raise AssertionError("END came before the window ended")
                conn.send(("done", {"checked": c.checked}))

    trio.run(main)


def shm_publisher(conn: Connection, spec: dict[str, Any]) -> None:
    import trio

    import shmsock

    many = spec.get("style") == "many"

    async def main() -> None:
        async with shmsock.socket(shmsock.PUB, nodrop=True, linger=None) as pub:
            pub.bind(f"shm://{spec['name']}")
            conn.send("ready")
            pool = _pool(spec["size"])
            while True:
                cmd, _params = await trio.to_thread.run_sync(conn.recv)
                if cmd == "quit":
                    return
                await pub.wait_peers(spec["subscribers"])
                conn.send("sending")
                n = 0
                while not conn.poll():
                    if many:
                        await pub.send_many(pool)
                    else:
                        for m in pool:
                            await pub.send(m)
                    n += len(pool)
                cmd, _ = conn.recv()
                assert cmd == "stop", cmd
                await pub.send(END)
                conn.send(("stopped", {"sent": n, "na": None}))

    trio.run(main)


# -- pyzmq ----------------------------------------------------------------------------


def zmq_subscriber(conn: Connection, spec: dict[str, Any]) -> None:
    def body() -> None:
        import zmq

        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, queue_length(spec["size"]))
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(zmq_address(spec))

        def run(params: dict[str, Any]) -> None:
            c = _Counter(params, spec["size"])
            conn.send("armed")
            sent = False
            messages = iter(sub.recv, None)  # recv() per message, no Python frame
            while not c.take(islice(messages, POOL)):
                if c.result is not None and not sent:
                    conn.send(("result", c.result))
                    sent = True
            if not sent:
                raise AssertionError("END came before the window ended")
            conn.send(("done", {"checked": c.checked}))

        try:
            _serve(conn, run)
        finally:
            sub.close(0)
            ctx.term()

    body()


def zmq_publisher(conn: Connection, spec: dict[str, Any]) -> None:
    def body() -> None:
        import zmq

        ctx = zmq.Context()
        # An XPUB, to know when every subscriber has subscribed (libzmq's
        # slow joiner), and NODROP, so that a full subscriber makes it wait.
        pub = ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.SNDHWM, queue_length(spec["size"]))
        pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        pub.setsockopt(zmq.XPUB_NODROP, 1)
        pub.bind(zmq_address(spec))
        pool = _pool(spec["size"])
        subscribed = 0

        def run(params: dict[str, Any]) -> None:
            nonlocal subscribed
            while subscribed < spec["subscribers"]:
                pub.recv()
                subscribed += 1
            conn.send("sending")
            n = 0
            send = pub.send
            while not conn.poll():
                for m in pool:
                    send(m)
                n += len(pool)
            cmd, _ = conn.recv()
            assert cmd == "stop", cmd
            send(END)
            conn.send(("stopped", {"sent": n, "na": None}))

        try:
            _serve(conn, run)
        finally:
            pub.close(0)
            ctx.term()

    body()


# -- the ways -------------------------------------------------------------------------


class FanWay:
    """One way of publishing to several subscribers: a line of the table."""

    def __init__(
        self,
        key: str,
        label: str,
        peer: str,
        publisher: Callable[[Connection, dict[str, Any]], None],
        subscriber: Callable[[Connection, dict[str, Any]], None],
        style: str = "",
    ) -> None:
        self.key = key
        self.label = label
        self.peer = peer
        self.publisher = publisher
        self.subscriber = subscriber
        self.style = style


WAYS = (
    FanWay("shm-await", "shmsock await send/recv", "shmsock", shm_publisher, shm_subscriber),
    FanWay(
        "shm-batch",
        "shmsock await send/recv_many",
        "shmsock",
        shm_publisher,
        shm_subscriber,
        style="batch",
    ),
    FanWay(
        "shm-many",
        "shmsock await send_many/recv_many",
        "shmsock",
        shm_publisher,
        shm_subscriber,
        style="many",
    ),
    FanWay("pyzmq", "pyzmq ipc:// send/recv", "pyzmq", zmq_publisher, zmq_subscriber),
)
