"""Benchmark processes.  Each runs in its own interpreter (spawned).

Every worker takes the pipe to the coordinator and a spec dict, says
"ready" once it can be measured against, and reports a result dict.
Receivers do the timing; senders just send until they are stopped or the
receiver goes away.  A throughput receiver says "measuring" when its
warm-up ends, so that the coordinator can read every process's CPU time
over the same window.  Inner loops check the clock every few hundred
messages, so a fast sender can never keep a receiver in its loop forever.
"""

from __future__ import annotations

import os
import socket as pysocket
import struct
import time
from multiprocessing.connection import Connection
from typing import Any

import trio

import shmsock

Spec = dict[str, Any]
now = time.perf_counter
MEASURING = "measuring"

# The quiet sender of "fanin-quiet": one message every QUIET_GAP seconds,
# carrying the time it was sent.  perf_counter is CLOCK_MONOTONIC on Linux,
# one clock for every process.  The busy senders' messages are never this
# size (the suite sees to it), which is how the receiver tells them apart.
QUIET_GAP = 0.005
QUIET = struct.Struct("=dc")


def _summary(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    n = len(s)

    def pct(p: float) -> float:
        return s[min(n - 1, int(p * n))] / 1000.0

    return {
        "count": n,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": s[-1] / 1000.0,
    }


# -- shmsock throughput -------------------------------------------------------


def _ring_options(spec: Spec) -> dict[str, Any]:
    """The socket options a throughput spec sets; the ring size defaults to the library's."""
    options: dict[str, Any] = {"checksum": spec["checksum"]}
    if "ring_size" in spec:
        options["ring_size"] = spec["ring_size"]
    return options


def shm_receiver(conn: Connection, spec: Spec) -> None:
    mode, seconds, warmup = spec["mode"], spec["seconds"], spec["warmup"]

    async def main() -> None:
        options = _ring_options(spec)
        async with shmsock.socket(shmsock.PULL, linger=0, **options) as s:
            s.bind(spec["endpoint"])
            conn.send("ready")
            # Count only once every sender is up: starting one takes long on
            # a loaded machine, and a late one would find us gone.
            await trio.to_thread.run_sync(conn.recv)
            await s.recv_many(1)

            async def count_until(deadline: float) -> int:
                n = 0
                while now() < deadline:
                    if mode == "await":
                        for _ in range(100):
                            await s.recv()
                        n += 100
                    elif mode == "large":
                        await s.recv()
                        n += 1
                    elif mode == "iter":
                        async for _ in s:
                            n += 1
                            if n % 1000 == 0:
                                break
                    elif mode == "nowait":
                        try:
                            for _ in range(500):
                                s.recv_nowait()
                                n += 1
                        except trio.WouldBlock:
                            await s.recv()
                            n += 1
                    elif waits is not None:
                        got = await s.recv_many(256)
                        n += len(got)
                        if len(got[0]) == QUIET.size:
                            _note_quiet(got, waits)
                    else:
                        try:
                            for _ in range(20):
                                n += len(s.recv_many_nowait(256))
                        except trio.WouldBlock:
                            n += len(await s.recv_many(256))
                return n

            await count_until(now() + warmup)
            conn.send(MEASURING)
            if waits is not None:
                waits.clear()
            t0 = now()
            n = await count_until(t0 + seconds)
            conn.send(_result(n, now() - t0, waits))

    waits: list[int] | None = [] if spec.get("quiet") else None
    trio.run(main)


def _note_quiet(got: Any, waits: list[int]) -> None:
    """Record how long each of the quiet sender's messages in *got* waited."""
    t = now()
    waits.extend(int((t - QUIET.unpack(m)[0]) * 1e9) for m in got)


def _result(messages: int, seconds: float, waits: list[int] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"messages": messages, "seconds": seconds}
    if waits:
        result["quiet"] = _summary(waits)
    return result


def shm_quiet_sender(conn: Connection, spec: Spec) -> None:
    """Send one message every QUIET_GAP seconds (see QUIET)."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=0) as s:
            s.connect(spec["endpoint"])
            await s.wait_peers(1)
            conn.send("ready")
            with trio.move_on_after(spec["max_seconds"]):
                while True:
                    await trio.sleep(QUIET_GAP)
                    await s.send(QUIET.pack(now(), b"q"))

    trio.run(main)


def _renice(spec: Spec) -> None:
    if spec.get("nice"):
        os.nice(spec["nice"])


def shm_sender(conn: Connection, spec: Spec) -> None:
    _renice(spec)
    mode, size = spec["mode"], spec["size"]
    msg = os.urandom(size)
    batch = [msg] * 64

    async def main() -> None:
        options = _ring_options(spec)
        async with shmsock.socket(shmsock.PUSH, linger=0, **options) as s:
            s.connect(spec["endpoint"])
            await s.wait_peers(1)
            conn.send("ready")
            with trio.move_on_after(spec["max_seconds"]):
                while True:
                    if mode in ("await", "large"):
                        await s.send(msg)
                    elif mode in ("nowait", "iter"):
                        try:
                            for _ in range(500):
                                s.send_nowait(msg)
                        except trio.WouldBlock:
                            await s.send(msg)
                    else:
                        try:
                            for _ in range(20):
                                s.send_many_nowait(batch)
                        except trio.WouldBlock:
                            await s.send_many(batch)

    trio.run(main)


# -- shmsock latency and connection time -----------------------------------------


def shm_rep(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.REP, spin_us=spec["spin_us"]) as rep:
            rep.bind(spec["endpoint"])
            conn.send("ready")
            while True:
                await rep.send(await rep.recv())

    trio.run(main)


def shm_req(conn: Connection, spec: Spec) -> None:
    msg = os.urandom(spec["size"])

    async def main() -> None:
        async with shmsock.socket(shmsock.REQ, spin_us=spec["spin_us"]) as req:
            req.connect(spec["endpoint"])
            await req.wait_peers(1)
            for _ in range(spec["warmup_rounds"]):
                await req.send(msg)
                await req.recv()
            samples = []
            clock = time.perf_counter_ns
            for _ in range(spec["rounds"]):
                t0 = clock()
                await req.send(msg)
                await req.recv()
                samples.append(clock() - t0)
            conn.send(_summary(samples))

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


async def _floor_send(tx: Any, msg: bytes) -> None:
    tx.write(msg)
    await trio.lowlevel.cancel_shielded_checkpoint()


async def _floor_recv(rx: Any, buf: Any) -> bytes:
    await trio.lowlevel.cancel_shielded_checkpoint()
    while True:
        payloads = rx.read(buf, 1)[0]
        if payloads:
            return payloads[0]  # type: ignore[no-any-return]


def floor_echo(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR) as pair:
            pair.bind(spec["endpoint"])
            conn.send("ready")
            tx, rx, buf = await _floor_rings(pair)
            while True:
                await _floor_send(tx, await _floor_recv(rx, buf))

    trio.run(main)


def floor_client(conn: Connection, spec: Spec) -> None:
    msg = os.urandom(spec["size"])

    async def main() -> None:
        async with shmsock.socket(shmsock.PAIR) as pair:
            pair.connect(spec["endpoint"])
            tx, rx, buf = await _floor_rings(pair)
            for _ in range(spec["warmup_rounds"]):
                await _floor_send(tx, msg)
                await _floor_recv(rx, buf)
            samples = []
            clock = time.perf_counter_ns
            for _ in range(spec["rounds"]):
                t0 = clock()
                await _floor_send(tx, msg)
                await _floor_recv(rx, buf)
                samples.append(clock() - t0)
            conn.send(_summary(samples))

    trio.run(main)


def shm_connect_binder(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind(spec["endpoint"])
            conn.send("ready")
            samples = []
            for _ in range(spec["rounds"]):
                stamp = await pull.recv()
                samples.append(time.perf_counter_ns() - int(stamp))
            conn.send(_summary(samples))

    trio.run(main)


def shm_connect_connector(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        for _ in range(spec["rounds"]):
            async with shmsock.socket(shmsock.PUSH, linger=None) as push:
                t0 = time.perf_counter_ns()
                push.connect(spec["endpoint"])
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


def shm_memory_binder(conn: Connection, spec: Spec) -> None:
    """Private memory and shared memory of a bound REP, then per connection.

    REQ and REP both write, so each connection holds two full rings: the
    most any pattern costs (a PULL's rings are the smallest size).
    """
    root = os.environ["SHMSOCK_ROOT"]

    async def main() -> None:
        # Warm up imports and lazily created objects with a throwaway socket.
        async with shmsock.socket(shmsock.REP) as warm:
            warm.bind(spec["endpoint"] + "-warm")
        await trio.sleep(0.05)
        rss0, shm0 = _status_kib("RssAnon") * 1024, _shm_bytes(root)
        async with shmsock.socket(shmsock.REP) as rep:
            rep.bind(spec["endpoint"])
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


def shm_many_connectors(conn: Connection, spec: Spec) -> None:
    """*peers* sockets of *type* in one process, connected to one endpoint."""
    kind = shmsock.SocketType[spec["type"]]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ready = trio.Semaphore(0)

            async def one() -> None:
                async with shmsock.socket(kind, linger=0) as sock:
                    sock.connect(spec["endpoint"])
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


def shm_idle_binder(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind(spec["endpoint"])
            conn.send("ready")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pull.recv)  # parked in recv, as a real server would be
                await trio.to_thread.run_sync(conn.recv)
                nursery.cancel_scope.cancel()

    trio.run(main)


# -- pyzmq peer ---------------------------------------------------------------------


def zmq_receiver(conn: Connection, spec: Spec) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.bind(spec["address"])
    conn.send("ready")
    conn.recv()  # "go": every sender is up
    s.recv()
    recv = s.recv

    step = 1 if spec["size"] > 1 << 20 else 500
    waits: list[int] | None = [] if spec.get("quiet") else None

    def count_until(deadline: float) -> int:
        n = 0
        while now() < deadline:
            if waits is None:
                for _ in range(step):
                    recv()
            else:
                for _ in range(step):
                    m = recv()
                    if len(m) == QUIET.size:
                        _note_quiet([m], waits)
            n += step
        return n

    count_until(now() + spec["warmup"])
    conn.send(MEASURING)
    if waits is not None:
        waits.clear()
    t0 = now()
    n = count_until(t0 + spec["seconds"])
    conn.send(_result(n, now() - t0, waits))
    os._exit(0)  # without waiting for the senders (libzmq linger)


def zmq_sender(conn: Connection, spec: Spec) -> None:
    import zmq

    _renice(spec)
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.SNDTIMEO, 1000)
    s.connect(spec["address"])
    conn.send("ready")
    msg = os.urandom(spec["size"])
    send = s.send
    deadline = now() + spec["max_seconds"]
    step = 1 if spec["size"] > 1 << 20 else 500
    try:
        while now() < deadline:
            for _ in range(step):
                send(msg)
    except zmq.Again:
        pass
    os._exit(0)


def zmq_quiet_sender(conn: Connection, spec: Spec) -> None:
    """pyzmq's shm_quiet_sender."""
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.SNDTIMEO, 1000)
    s.connect(spec["address"])
    conn.send("ready")
    deadline = now() + spec["max_seconds"]
    try:
        while now() < deadline:
            time.sleep(QUIET_GAP)
            s.send(QUIET.pack(now(), b"q"))
    except zmq.Again:
        pass
    os._exit(0)


def zmq_rep(conn: Connection, spec: Spec) -> None:
    import zmq

    s = zmq.Context().socket(zmq.REP)
    s.bind(spec["address"])
    conn.send("ready")
    while True:
        s.send(s.recv())


def zmq_req(conn: Connection, spec: Spec) -> None:
    import zmq

    s = zmq.Context().socket(zmq.REQ)
    s.connect(spec["address"])
    msg = os.urandom(spec["size"])
    for _ in range(spec["warmup_rounds"]):
        s.send(msg)
        s.recv()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(spec["rounds"]):
        t0 = clock()
        s.send(msg)
        s.recv()
        samples.append(clock() - t0)
    conn.send(_summary(samples))
    os._exit(0)


# -- Trio over a Unix socket, length-prefixed frames ---------------------------------

_LEN = struct.Struct("<I")


def _frames(buf: bytearray) -> list[bytes]:
    """Cut complete frames off the front of *buf*."""
    out = []
    pos = 0
    view = memoryview(buf)
    end = len(buf)
    while end - pos >= 4:
        (n,) = _LEN.unpack_from(buf, pos)
        if end - pos - 4 < n:
            break
        out.append(bytes(view[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    view.release()
    del buf[:pos]
    return out


async def _unix_accept(conn: Connection, path: str) -> trio.SocketStream:
    """Listen on *path*, say "ready", and return the first connection."""
    sock = trio.socket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(1)
    conn.send("ready")
    raw, _ = await sock.accept()
    sock.close()
    return trio.SocketStream(raw)


def unix_receiver(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        stream = await _unix_accept(conn, spec["path"])
        buf = bytearray()

        async def count_until(deadline: float) -> int:
            n = 0
            while now() < deadline:
                data = await stream.receive_some(1 << 18)
                if not data:
                    break
                buf.extend(data)
                n += len(_frames(buf))
            return n

        await count_until(now() + spec["warmup"])
        conn.send(MEASURING)
        t0 = now()
        n = await count_until(t0 + spec["seconds"])
        conn.send({"messages": n, "seconds": now() - t0})

    trio.run(main)


def unix_sender(conn: Connection, spec: Spec) -> None:
    msg = os.urandom(spec["size"])
    chunk = (_LEN.pack(len(msg)) + msg) * 64

    async def main() -> None:
        stream = await trio.open_unix_socket(spec["path"])
        conn.send("ready")
        with trio.move_on_after(spec["max_seconds"]):
            try:
                while True:
                    await stream.send_all(chunk)
            except trio.BrokenResourceError:
                pass

    trio.run(main)


def unix_echo(conn: Connection, spec: Spec) -> None:
    async def main() -> None:
        stream = await _unix_accept(conn, spec["path"])
        buf = bytearray()
        while True:
            data = await stream.receive_some(1 << 16)
            if not data:
                return
            buf.extend(data)
            for frame in _frames(buf):
                await stream.send_all(_LEN.pack(len(frame)) + frame)

    trio.run(main)


def unix_client(conn: Connection, spec: Spec) -> None:
    msg = os.urandom(spec["size"])
    frame = _LEN.pack(len(msg)) + msg

    async def main() -> None:
        stream = await trio.open_unix_socket(spec["path"])
        buf = bytearray()

        async def roundtrip() -> None:
            await stream.send_all(frame)
            while not _frames(buf):
                buf.extend(await stream.receive_some(1 << 16))

        for _ in range(spec["warmup_rounds"]):
            await roundtrip()
        samples = []
        clock = time.perf_counter_ns
        for _ in range(spec["rounds"]):
            t0 = clock()
            await roundtrip()
            samples.append(clock() - t0)
        conn.send(_summary(samples))

    trio.run(main)
