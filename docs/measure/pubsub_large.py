"""Large messages PUB -> N SUB processes: shmsock shm:// against pyzmq ipc:// (issue 20/22).

    python docs/measure/pubsub_large.py [--subs 2,4] [--sizes 1,16] [--trials 3]

Each trial: one publisher (this process) and N subscriber processes, all
subscribed to everything; the publisher never drops (shmsock ``nodrop``,
pyzmq ``XPUB_NODROP`` with blocking sends), so every message reaches every
subscriber.  Subscribers first wait for a probe (pyzmq's subscriptions travel
asynchronously), then count COUNT data messages and say "done".  The figure
is messages delivered per second in all (N x COUNT / the publisher's time
from its first data send to the last subscriber's "done"), with the CPU
seconds every process used per delivered message.  Trials alternate
shmsock, pyzmq, shmsock, ...  Prints one line per trial and the medians.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import time

MiB = 1 << 20


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sub_shm(conn, endpoint: str, count: int) -> None:
    import trio

    import shmsock

    async def main() -> None:
        async with shmsock.socket(shmsock.SUB) as sub:
            sub.subscribe(b"")
            sub.connect(endpoint)
            await sub.recv()  # a probe: the subscription is in effect
            conn.send("ready")
            got = 0
            c0 = _cpu()
            while got < count:
                m = await sub.recv()
                if m[:1] == b"d":
                    got += 1
            conn.send(("done", _cpu() - c0))
            conn.recv()

    trio.run(main)


def sub_zmq(conn, endpoint: str, count: int) -> None:
    import zmq

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.subscribe(b"")
    sub.connect(endpoint)
    sub.recv()
    conn.send("ready")
    got = 0
    c0 = _cpu()
    while got < count:
        m = sub.recv(copy=True)
        if m[:1] == b"d":
            got += 1
    conn.send(("done", _cpu() - c0))
    conn.recv()
    sub.close(0)
    ctx.term()


def _subs(target, endpoint: str, n: int, count: int):
    ctx = mp.get_context("spawn")
    kids = []
    for _ in range(n):
        a, b = ctx.Pipe()
        p = ctx.Process(target=target, args=(b, endpoint, count))
        p.start()
        kids.append((p, a))
    return kids


def _wait_ready(kids, probe) -> None:
    pending = list(kids)
    while pending:
        probe()
        pending = [(p, a) for p, a in pending if not (a.poll(0.002) and a.recv() == "ready")]


def _collect(kids) -> float:
    cpu = 0.0
    for _p, a in kids:
        tag, used = a.recv()
        assert tag == "done"
        cpu += used
    return cpu


def _end(kids) -> None:
    for p, a in kids:
        a.send("exit")
        p.join(30)


def trial_shm(n: int, size: int, count: int) -> tuple[float, float]:
    import trio

    import shmsock

    endpoint = f"shm://pbl-{os.getpid()}-{time.monotonic_ns()}"
    result: list[float] = []

    async def main() -> None:
        async with shmsock.socket(shmsock.PUB, nodrop=True) as pub:
            pub.bind(endpoint)
            kids = _subs(sub_shm, endpoint, n, count)
            await pub.wait_peers(n)
            pending = list(kids)
            while pending:
                await pub.send(b"p")
                await trio.sleep(0.002)
                pending = [(p, a) for p, a in pending if not (a.poll() and a.recv() == "ready")]
            body = b"d" + os.urandom(size - 1)
            c0 = _cpu()
            t0 = time.perf_counter()
            for _ in range(count):
                await pub.send(body)
            cpu = await trio.to_thread.run_sync(_collect, kids)
            dt = time.perf_counter() - t0
            cpu += _cpu() - c0
            _end(kids)
            result.extend([n * count / dt, cpu / (n * count)])

    trio.run(main)
    return result[0], result[1]


def trial_zmq(n: int, size: int, count: int) -> tuple[float, float]:
    import zmq

    endpoint = f"ipc:///tmp/pbl-{os.getpid()}-{time.monotonic_ns()}"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.bind(endpoint)
    kids = _subs(sub_zmq, endpoint, n, count)
    _wait_ready(kids, lambda: pub.send(b"p"))
    body = b"d" + os.urandom(size - 1)
    c0 = _cpu()
    t0 = time.perf_counter()
    for _ in range(count):
        pub.send(body, copy=True)
    cpu = _collect(kids)
    dt = time.perf_counter() - t0
    cpu += _cpu() - c0
    _end(kids)
    pub.close(0)
    ctx.term()
    return n * count / dt, cpu / (n * count)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subs", default="2,4")
    ap.add_argument("--sizes", default="1,16", help="MiB")
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    print("load", open("/proc/loadavg").read().split()[:3])
    for size_mib in map(int, args.sizes.split(",")):
        count = max(20, 400 // size_mib)
        for n in map(int, args.subs.split(",")):
            figs: dict[str, list[tuple[float, float]]] = {"shmsock": [], "pyzmq": []}
            for _ in range(args.trials):
                figs["shmsock"].append(trial_shm(n, size_mib * MiB, count))
                figs["pyzmq"].append(trial_zmq(n, size_mib * MiB, count))
            for way, f in figs.items():
                rates = ", ".join(f"{r:.0f}" for r, _ in f)
                print(f"{size_mib} MiB PUB -> {n} SUB {way}: msg/s delivered {rates}; "
                      f"CPU us/msg {statistics.median(c for _, c in f) * 1e6:.0f}")
            ratio = [a[0] / b[0] for a, b in zip(figs["shmsock"], figs["pyzmq"])]
            print(f"{size_mib} MiB PUB -> {n} SUB shmsock/pyzmq per pair: "
                  + ", ".join(f"{r:.2f}" for r in ratio)
                  + f"  median {statistics.median(ratio):.2f}")
    print("load", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
