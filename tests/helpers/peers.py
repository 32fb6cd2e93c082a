"""Peers that tests run in other OS processes (see procs.py).

Each function takes the pipe to the test first, then its own arguments,
runs a Trio program, and reports through the pipe: "ready" once bound or
connected, then whatever the test asks for.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
from multiprocessing.connection import Connection

import trio
import trio.testing

import shmsock


def _attach(sock: shmsock.Socket, endpoint: str, bind: bool) -> None:
    if bind:
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)


def push_numbers(
    conn: Connection, endpoint: str, bind: bool, start: int, count: int, tag: str = ""
) -> None:
    """Send b"<tag>:<i>" for i in [start, start+count), then wait to be told to exit."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=None) as push:
            _attach(push, endpoint, bind)
            conn.send("ready")
            for i in range(start, start + count):
                await push.send(f"{tag}:{i}".encode())
            conn.send("sent")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def push_and_return(conn: Connection, endpoint: str, count: int, size: int) -> None:
    """Connect a PUSH (linger=None), send *count* messages of *size* bytes, say "sent", return.

    The process then ends as a multiprocessing child ends, through
    ``os._exit`` (which runs no atexit handler), with what libzmq still
    holds for the receiver.
    """

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=None, sndhwm=count) as push:
            push.connect(endpoint)
            await push.wait_peers(1)
            for i in range(count):
                await push.send(i.to_bytes(4, "big") * (size // 4))
            conn.send("sent")

    trio.run(main)


def push_bursts(
    conn: Connection, endpoint: str, bind: bool, count: int, tag: str, seed: int
) -> None:
    """Send b"<tag>:<i>" for i in [0, count) in bursts of 1 to 40 with short
    pauses between some, so that a receiver keeps running dry and waking;
    then wait to be told to exit."""

    async def main() -> None:
        rng = random.Random(seed)
        async with shmsock.socket(shmsock.PUSH, linger=None) as push:
            _attach(push, endpoint, bind)
            conn.send("ready")
            i = 0
            while i < count:
                for _ in range(min(rng.choice((1, 2, 5, 40)), count - i)):
                    await push.send(f"{tag}:{i}".encode())
                    i += 1
                if rng.random() < 0.3:
                    await trio.sleep(rng.choice((0.0001, 0.0005, 0.002)))
            conn.send("sent")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def push_when_told(conn: Connection, endpoint: str, bind: bool) -> None:
    """On each (delay, message) from the test, wait *delay* seconds and send it.

    The delay lets the test be busy (spinning, say) when the message comes.
    None ends it.
    """

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=None) as push:
            _attach(push, endpoint, bind)
            conn.send("ready")
            while (order := await trio.to_thread.run_sync(conn.recv)) is not None:
                delay, message = order
                await trio.sleep(delay)
                await push.send(message)

    trio.run(main)


def pull_digest(conn: Connection, endpoint: str, bind: bool, count: int) -> None:
    """Receive *count* messages; report how many, and a digest of them in order."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            _attach(pull, endpoint, bind)
            conn.send("ready")
            h = hashlib.sha256()
            for _ in range(count):
                h.update(await pull.recv())
                h.update(b"|")
            conn.send((count, h.hexdigest()))
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def pull_collect(conn: Connection, endpoint: str, bind: bool, **options: object) -> None:
    """A PULL that reads all the time; each time it is told "report", it
    reports the frame lengths of every message it got since the last
    report (all that had reached its rings) and how many it dropped.
    Anything else ends it."""

    async def main() -> None:
        got: list[list[int]] = []

        async def read(pull: shmsock.Socket) -> None:
            while True:
                got.append([len(f) for f in await pull.recv_multipart()])

        async with shmsock.socket(shmsock.PULL, **options) as pull:
            _attach(pull, endpoint, bind)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read, pull)
                conn.send("ready")
                while await trio.to_thread.run_sync(conn.recv) == "report":
                    # Once the reader waits, it has taken everything there is.
                    await trio.testing.wait_all_tasks_blocked()
                    dropped = sum(st.dropped for st in pull._stats_by_endpoint().values())
                    conn.send((list(got), dropped))
                    got.clear()
                nursery.cancel_scope.cancel()

    trio.run(main)


def pull_idle(conn: Connection, endpoint: str, bind: bool, **options: object) -> None:
    """Attach a PULL that never reads, until killed or told to exit."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL, **options) as pull:
            _attach(pull, endpoint, bind)
            conn.send("ready")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def pair_echo(conn: Connection, endpoint: str, bind: bool) -> None:
    """A PAIR that sends back every message until it receives b"quit"."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR, linger=None) as pair:
            _attach(pair, endpoint, bind)
            conn.send("ready")
            async for msg in pair:
                if msg == b"quit":
                    break
                await pair.send(msg)
            conn.send("done")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def pair_send_then_wait(conn: Connection, endpoint: str, bind: bool, msgs: list[bytes]) -> None:
    """Send *msgs* on a PAIR, report "sent", then wait (to be killed)."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR) as pair:
            _attach(pair, endpoint, bind)
            conn.send("ready")
            for m in msgs:
                await pair.send(m)
            conn.send("sent")
            await trio.sleep_forever()

    trio.run(main)


def bind_and_hold(conn: Connection, endpoint: str, kind: str = "PULL") -> None:
    """Bind, report "ready" (or the error's class name), then wait."""

    async def main() -> None:
        async with shmsock.socket(shmsock.SocketType[kind]) as sock:
            try:
                sock.bind(endpoint)
            except shmsock.ShmsockError as exc:
                conn.send(type(exc).__name__)
                return
            conn.send("ready")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def bind_race(conn: Connection, endpoint: str) -> None:
    """On "go", try to bind; report the outcome, then hold until told to exit."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as sock:
            conn.send("ready")
            assert await trio.to_thread.run_sync(conn.recv) == "go"
            try:
                sock.bind(endpoint)
                conn.send("bound")
            except shmsock.AddressInUse:
                conn.send("in use")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def rep_server(conn: Connection, endpoint: str, bind: bool, name: str, **options: object) -> None:
    """A REP answering b"<name>:" + request, until it receives b"quit".

    It answers b"nap" 20 ms late, long enough for a spinning REQ to sleep.
    """

    async def main() -> None:
        async with shmsock.socket(shmsock.REP, **options) as rep:
            _attach(rep, endpoint, bind)
            conn.send("ready")
            while True:
                req = await rep.recv()
                if req == b"nap":
                    await trio.sleep(0.02)
                await rep.send(name.encode() + b":" + req)
                if req == b"quit":
                    break
            conn.send("done")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def rep_hold(conn: Connection, endpoint: str, bind: bool) -> None:
    """A REP that receives one request, reports it, and never answers."""

    async def main() -> None:
        async with shmsock.socket(shmsock.REP) as rep:
            _attach(rep, endpoint, bind)
            conn.send("ready")
            conn.send(await rep.recv())
            await trio.sleep_forever()

    trio.run(main)


def req_client(
    conn: Connection, endpoint: str, bind: bool, name: str, count: int, **options: object
) -> None:
    """A REQ sending *count* requests b"<name>-<i>"; reports the replies."""

    async def main() -> None:
        async with shmsock.socket(shmsock.REQ, **options) as req:
            _attach(req, endpoint, bind)
            conn.send("ready")
            replies = []
            for i in range(count):
                await req.send(f"{name}-{i}".encode())
                replies.append(await req.recv())
            conn.send(replies)
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def push_ctrl_c_at_doorbell(conn: Connection, endpoint: str) -> None:
    """Send one message, with a Ctrl-C arriving just as its write has
    claimed the sleeping reader's wake-up; report how trio.run ended and
    which doorbells rang.  linger=None: a lost wake-up would hang the exit.
    """
    from helpers import seam

    rung: list[bytes] = []

    def before_ring(conn: seam.Connection, what: bytes) -> None:
        if not rung:
            # Python runs the handler at the next bytecode, here, before
            # the real doorbell: where a real Ctrl-C can land.
            signal.raise_signal(signal.SIGINT)
        rung.append(what)

    class Patcher:  # monkeypatch's setattr, without pytest in this child
        @staticmethod
        def setattr(obj: object, name: str, value: object) -> None:
            setattr(obj, name, value)

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=None) as push:
            push.connect(endpoint)
            await push.wait_peers(1)
            conn.send("ready")
            await trio.to_thread.run_sync(conn.recv)  # the reader sleeps now
            seam.patch_doorbells(Patcher, before_ring)
            await push.send(b"hello")
            await trio.sleep_forever()

    try:
        trio.run(main)
    except KeyboardInterrupt:
        conn.send(("interrupted", rung))
    else:
        conn.send(("returned", rung))


async def _ctrl_c_once_all_blocked() -> None:
    await trio.testing.wait_all_tasks_blocked()
    os.kill(os.getpid(), signal.SIGINT)


def ctrl_c_in_blocked_recv(conn: Connection, endpoint: str) -> None:
    """Block the main task in recv() and Ctrl-C it from outside; report what
    the recv raised and what the PAIR and a REQ do next."""

    async def main() -> list[object]:
        out: list[object] = []
        async with (
            shmsock.socket(shmsock.PAIR) as a,
            shmsock.socket(shmsock.PAIR) as b,
            shmsock.socket(shmsock.REP) as rep,
            shmsock.socket(shmsock.REQ) as req,
        ):
            a.bind(endpoint)
            b.connect(endpoint)
            rep.bind(endpoint + "-rr")
            req.connect(endpoint + "-rr")
            await b.wait_peers(1)
            await req.wait_peers(1)
            await req.send(b"q1")
            assert await rep.recv() == b"q1"  # and no reply yet
            for sock in (b, req):
                # A system task (KI-protected, like Trio's run loop) sends
                # the signal once every task sleeps; Trio hands it to the
                # main task, blocked in recv.
                trio.lowlevel.spawn_system_task(_ctrl_c_once_all_blocked)
                try:
                    out.append(await sock.recv())
                except KeyboardInterrupt:
                    out.append("KeyboardInterrupt")
            await a.send(b"after")
            out.append(await b.recv())  # nothing was taken; the PAIR works on
            await req.send(b"q2")  # the interrupted recv abandoned q1, as a cancel does
            await rep.send(b"r1")
            out.append(await rep.recv())
            await rep.send(b"r2")
            out.append(await req.recv())
        return out

    conn.send(trio.run(main))


def fork_and_wait(conn: Connection, bind_endpoint: str, pair_endpoint: str) -> None:
    """Bind a PULL and connect a PAIR, fork a child that only lives on, report
    the child's pid, then wait to be killed (the child stays)."""

    async def main() -> None:
        async with (
            shmsock.socket(shmsock.PULL) as pull,
            shmsock.socket(shmsock.PAIR) as pair,
        ):
            pull.bind(bind_endpoint)
            pair.connect(pair_endpoint)
            await pair.wait_peers(1)
            pid = os.fork()
            if pid == 0:
                while True:  # until killed, holding whatever it inherited
                    signal.pause()
            conn.send(pid)
            await trio.sleep_forever()

    trio.run(main)


def bind_then_freeze(conn: Connection, endpoint: str) -> None:
    """Bind a PUSH; on "freeze", stop handling events (reported as "frozen") until killed.

    A binder alive but deaf: it never sees its connector go.
    """

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH) as sock:
            sock.bind(endpoint)
            conn.send("ready")
            assert await trio.to_thread.run_sync(conn.recv) == "freeze"
            conn.send("frozen")
            conn.recv()  # blocks the Trio thread: no event is handled again

    trio.run(main)


def say_and_leave(conn: Connection, word: str) -> None:
    """Report *word* and exit at once, without waiting to be told: as peers
    whose work ends by itself do (pubsubpeers.collecting_sub)."""
    conn.send(word)
