"""shmsock's own roles: throughput, the fan-in, round trips, and the one-off figures.

The throughput and round-trip roles follow ``protocol``; ``connect``,
``memory`` and ``idle`` run once per figure in processes of their own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import trio

import shmsock

from ..protocol import (
    QUIET,
    QUIET_GAP,
    STAMP,
    Checker,
    Chunk,
    Pool,
    Spec,
    Wait,
    commands_async,
    echoing_async,
    end_message,
    now,
    one_by_one_async,
    receiving_async,
    sending_async,
    step,
    summary,
    timing_async,
)

#: Messages per `send_many` batch: 64, fewer where 64 would not fit a
#: quarter of the default ring (a user is told to "send smaller batches").
BATCH_BYTES = 256 << 10


def endpoint(spec: Spec) -> str:
    """The trial's endpoint: shm:// by default, or the one the way gives (tcp.shared)."""
    given: str | None = spec.get("endpoint")
    return given or f"shm://{spec['name']}"


def batch_length(size: int) -> int:
    return max(1, min(64, BATCH_BYTES // size))


def _options(spec: Spec) -> dict[str, Any]:
    options: dict[str, Any] = {"checksum": spec.get("checksum", True)}
    if "ring_size" in spec:
        options["ring_size"] = spec["ring_size"]
    if "hwm" in spec:  # over tcp://: libzmq's queues, as the pyzmq peer sets them
        options["sndhwm"] = options["rcvhwm"] = spec["hwm"]
    return options


def _waiter(conn: Connection) -> Wait:
    """The next command, received in a thread while Trio runs."""
    return partial(trio.to_thread.run_sync, conn.recv)


# -- throughput ---------------------------------------------------------------------


def _stamp_of_lease(s: shmsock.Socket, size: int) -> Callable[[], Awaitable[bytes]]:
    """await recv(copy=False), reading only the stamp of a data message in place."""
    recv = s.recv
    head = STAMP.size

    async def recv_stamp() -> bytes:
        with await recv(copy=False) as lease:
            view = lease.buffer
            return view[:head].tobytes() if len(view) == size else view.tobytes()

    return recv_stamp


def _receive_chunk(s: shmsock.Socket, mode: str, checker: Checker, size: int) -> Chunk:
    """The receiving loop of one call style (see protocol.receive_window)."""
    if mode == "await":
        return one_by_one_async(s.recv, checker, step(size, 100))
    if mode == "lease":
        return one_by_one_async(_stamp_of_lease(s, size), checker, step(size, 100))
    if mode == "iter":
        return one_by_one_async(s.__aiter__().__anext__, checker, step(size))  # async for
    if mode == "nowait":
        return _nowait_chunk(s, checker, step(size))
    take = checker.take
    if checker.quiet:
        # Every batch is looked at as it comes, as an application would.
        async def each_batch() -> int:
            return take(await s.recv_many(256))

        return each_batch
    recv_many_nowait = s.recv_many_nowait

    async def batch() -> int:
        # Up to twenty batches without a checkpoint, then one that may wait:
        # the idiom docs/pushpull.md recommends for bulk data.
        n = 0
        try:
            for _ in range(20):
                n += take(recv_many_nowait(256))
                if checker.done:
                    return n
        except trio.WouldBlock:
            n += take(await s.recv_many(256))
        return n

    return batch


def _nowait_chunk(s: shmsock.Socket, checker: Checker, per: int) -> Chunk:
    """recv_nowait until it would block, then one await recv (see protocol.one_by_one)."""
    recv_nowait = s.recv_nowait
    if checker.stamps:
        per = min(per, 16)

        async def listed() -> int:
            got: list[bytes] = []
            try:
                got.extend(recv_nowait() for _ in range(per))  # keeps those before WouldBlock
            except trio.WouldBlock:
                if not got:
                    got.append(await s.recv())
            return checker.take(got)

        return listed

    async def nowait() -> int:
        nxt = checker.next[0]
        n = 0
        try:
            for _ in range(per):
                m = recv_nowait()
                e = nxt()
                if m != e:
                    return checker.odd(m, e, n)
                n += 1
        except trio.WouldBlock:
            if n == 0:  # nothing there: wait for one (never after the END)
                m = await s.recv()
                e = nxt()
                if m != e:
                    return checker.odd(m, e, 0)
                n = 1
        return checker.count(n)

    return nowait


def receiver(conn: Connection, spec: Spec) -> None:
    """A PULL that binds and checks what its senders send, window after window."""
    size = spec["size"]

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL, linger=0, **_options(spec)) as s:
            s.bind(endpoint(spec))
            conn.send("ready")
            checker = Checker(
                size, spec.get("senders", 1), quiet=spec.get("quiet", False),
                stamps=spec["mode"] == "lease",
            )  # fmt: skip
            chunk = _receive_chunk(s, spec["mode"], checker, size)
            await receiving_async(conn, _waiter(conn), chunk, checker)

    trio.run(main)


def _send_chunk(s: shmsock.Socket, mode: str, pool: Pool) -> Chunk:
    take = pool.take
    if mode == "await":
        per = step(pool.size, 100)

        async def one_by_one() -> int:
            for m in take(per):
                await s.send(m)
            return per

        return one_by_one
    if mode == "lease":  # the sender's side of the zero-copy way: a loan per message
        per = step(pool.size, 100)
        loan = s.loan
        size = pool.size
        head = STAMP.size

        async def loaned() -> int:
            for m in take(per):
                async with loan(size) as buf:
                    buf[:head] = m
            return per

        return loaned
    if mode in ("nowait", "iter"):
        per = step(pool.size)
        send_nowait = s.send_nowait

        async def nowait() -> int:
            for m in take(per):
                try:
                    send_nowait(m)
                except trio.WouldBlock:
                    await s.send(m)
            return per

        return nowait
    each = batch_length(pool.size)
    send_many_nowait = s.send_many_nowait

    async def batch() -> int:
        for _ in range(20):
            b = take(each)
            try:
                send_many_nowait(b)
            except trio.WouldBlock:
                await s.send_many(b)
        return 20 * each

    return batch


def sender(conn: Connection, spec: Spec) -> None:
    """A PUSH that sends its pool in the call style asked, window after window."""
    sid = spec.get("sid", 0)
    pool = Pool(spec["size"], sid, stamps_only=spec["mode"] == "lease")

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=0, **_options(spec)) as s:
            s.connect(endpoint(spec))
            await s.wait_peers(1)
            conn.send("ready")
            chunk = _send_chunk(s, spec["mode"], pool)
            too_large = (shmsock.MessageTooLarge,)
            await sending_async(conn, _waiter(conn), chunk, s.send, sid, too_large)

    trio.run(main)


def quiet_sender(conn: Connection, spec: Spec) -> None:
    """One message every QUIET_GAP seconds, stamped with the time (see QUIET)."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=0) as s:
            s.connect(endpoint(spec))
            await s.wait_peers(1)
            conn.send("ready")
            async for cmd, p in commands_async(_waiter(conn)):
                if cmd == "run":
                    count = 0
                    until = now() + p["max_seconds"]
                    while not conn.poll() and now() < until:
                        await trio.sleep(QUIET_GAP)
                        await s.send(QUIET.pack(now(), b"q"))
                        count += 1
                    await s.send(end_message(p["size"], spec["sid"], count))
                    conn.send(("stopped", {"count": count, "na": None}))

    trio.run(main)


# -- round trips ----------------------------------------------------------------------


def rep(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.REP, spin_us=spec["spin_us"]) as rep:
            rep.bind(endpoint(spec))
            conn.send("ready")
            await echoing_async(conn, _waiter(conn), rep.recv, rep.send)

    trio.run(main)


def req(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.REQ, spin_us=spec["spin_us"]) as req:
            req.connect(endpoint(spec))
            await req.wait_peers(1)
            conn.send("ready")
            await timing_async(conn, _waiter(conn), req.send, req.recv)

    trio.run(main)


def router(conn: Connection, spec: Spec) -> None:
    """A ROUTER echo server: each message goes back to the peer its id names."""

    async def main() -> None:
        async with shmsock.socket(shmsock.ROUTER, spin_us=spec["spin_us"]) as router:
            router.bind(endpoint(spec))
            conn.send("ready")
            rid = [b""]

            async def recv() -> bytes:
                frames: list[bytes] = await router.recv_multipart()
                rid[0] = frames[0]
                return frames[1]

            async def send(m: bytes) -> None:
                await router.send_multipart([rid[0], m])

            await echoing_async(conn, _waiter(conn), recv, send)

    trio.run(main)


def dealer(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.DEALER, spin_us=spec["spin_us"]) as dealer:
            dealer.connect(endpoint(spec))
            await dealer.wait_peers(1)
            conn.send("ready")
            await timing_async(conn, _waiter(conn), dealer.send, dealer.recv)

    trio.run(main)


# The floor: what is left of a spinning round trip under Trio's rules when
# the library's layers are taken away.  Each side writes straight into its
# ring with one C call, reads straight from the other with one, polls
# without pause, and takes the one checkpoint per call that the rules ask
# of every async method.  Nobody ever announces a wait, so no doorbell
# rings.  It reaches into a PAIR socket for its rings: this is a yardstick,
# not an API.


async def _floor_rings(sock: shmsock.Socket) -> tuple[Any, Any, Any]:
    await sock.wait_peers(1)
    conns = sock._hub.transports["shm"].conns  # type: ignore[attr-defined]
    conn = conns.conns[0]
    return conn.tx, conn.rx, conns.rbuf


def _floor_calls(tx: Any, rx: Any, buf: Any) -> tuple[Any, Any]:
    async def send(msg: bytes) -> None:
        tx.write(msg)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def recv() -> bytes:
        await trio.lowlevel.cancel_shielded_checkpoint()
        while True:
            payloads = rx.read(buf, 1)[0]
            if payloads:
                return payloads[0]  # type: ignore[no-any-return]

    return send, recv


def floor_echo(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR) as pair:
            pair.bind(endpoint(spec))
            conn.send("ready")
            send, recv = _floor_calls(*await _floor_rings(pair))
            await echoing_async(conn, _waiter(conn), recv, send)

    trio.run(main)


def floor_client(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR) as pair:
            pair.connect(endpoint(spec))
            send, recv = _floor_calls(*await _floor_rings(pair))
            conn.send("ready")
            await timing_async(conn, _waiter(conn), send, recv)

    trio.run(main)


# -- connection time ----------------------------------------------------------------------


def connect_binder(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind(endpoint(spec))
            conn.send("ready")
            samples = []
            for _ in range(spec["rounds"]):
                stamp = await pull.recv()
                samples.append(time.perf_counter_ns() - int(stamp))
            conn.send(summary(samples))

    trio.run(main)


def connect_connector(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        for _ in range(spec["rounds"]):
            async with shmsock.socket(shmsock.PUSH, linger=None) as push:
                t0 = time.perf_counter_ns()
                push.connect(endpoint(spec))
                await push.send(b"%d" % t0)

    trio.run(main)


# -- memory and idle CPU ----------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _shm_bytes(root: str) -> int:
    total = 0
    userdir = os.path.join(root, f"shmsock-{os.geteuid()}")
    if os.path.isdir(userdir):
        for name in os.listdir(userdir):
            st = os.lstat(os.path.join(userdir, name))
            total += st.st_blocks * 512
    return total


def memory_binder(conn: Connection, spec: Spec) -> None:
    """Private memory and shared memory of a bound REP, then per connection.

    REQ and REP both write, so each connection holds two full rings: the
    most any pattern costs (a PULL's rings are the smallest size).
    """
    root = os.environ["SHMSOCK_ROOT"]

    async def main() -> None:
        # Warm up imports and lazily created objects with a throwaway socket.
        async with shmsock.socket(shmsock.REP) as warm:
            warm.bind(endpoint(spec) + "-warm")
        await trio.sleep(0.05)
        rss0, shm0 = _status_kib("RssAnon") * 1024, _shm_bytes(root)
        async with shmsock.socket(shmsock.REP) as rep:
            rep.bind(endpoint(spec))
            await trio.sleep(0.05)
            bound = {
                "private_bytes": _status_kib("RssAnon") * 1024 - rss0,
                "shm_bytes": _shm_bytes(root) - shm0,
            }
            conn.send({"bound": bound})
            await rep.wait_peers(spec["peers"])
            for _ in range(spec["peers"]):
                await rep.recv()  # a message each way per connection: rings in use
                await rep.send(b"y")
            conn.send(
                {
                    "private_bytes": _status_kib("RssAnon") * 1024 - rss0,
                    "shm_bytes": _shm_bytes(root) - shm0,
                }
            )
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


def many_connectors(conn: Connection, spec: Spec) -> None:
    """*peers* sockets of *type* in one process, connected to one endpoint."""
    kind = shmsock.SocketType[spec["type"]]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ready = trio.Semaphore(0)

            async def one() -> None:
                async with shmsock.socket(kind, linger=0) as sock:
                    sock.connect(endpoint(spec))
                    if spec.get("send_one"):
                        await sock.send(b"x")
                    await sock.wait_peers(1)
                    ready.release()
                    await trio.sleep_forever()

            for _ in range(spec["peers"]):
                nursery.start_soon(one)
            for _ in range(spec["peers"]):
                await ready.acquire()
            conn.send("ready")
            await trio.to_thread.run_sync(conn.recv)
            nursery.cancel_scope.cancel()

    trio.run(main)


def idle_binder(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind(endpoint(spec))
            conn.send("ready")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pull.recv)  # parked in recv, as a real server would be
                await trio.to_thread.run_sync(conn.recv)
                nursery.cancel_scope.cancel()

    trio.run(main)
