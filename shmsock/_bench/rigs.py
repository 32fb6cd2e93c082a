"""The coordinator's side of a trial: worker processes, rigs of them, and the load.

A *rig* is the processes of one way at one size (a receiver and its
senders, or an echo server and its client).  It is started once and then
runs window after window when told, so that the trials of several ways can
alternate without starting processes between them.  Workers are forked by
a forkserver that has imported trio and shmsock already: a rig starts in
milliseconds, where spawning a fresh interpreter costs a tenth of a second
of CPU per process.

The load of the loaded round trips is busy processes at normal priority,
each bounded in time and killed when the bench goes (even by SIGKILL:
they ask the kernel for it with ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from functools import partial
from multiprocessing.connection import wait
from typing import Any

from .peers import Role
from .protocol import entry

_ctx: Any = None


def context() -> Any:
    """The multiprocessing context of every worker (a forkserver, started on first use)."""
    global _ctx
    if _ctx is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["trio", "shmsock", "shmsock._bench.peers"])
        _ctx = ctx
    return _ctx


class WorkerError(Exception):
    """A worker failed, died, broke the protocol or did not answer in time."""


class Worker:
    """One benchmark process, and the pipe to it."""

    def __init__(self, role: Role, spec: dict[str, Any], name: str) -> None:
        ctx = context()
        self.name = name
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=partial(entry, role), args=(child, spec), daemon=True)
        self.proc.start()
        child.close()
        self.inbox: deque[Any] = deque()

    def send(self, message: Any) -> None:
        try:
            self.conn.send(message)
        except OSError:
            pass  # it died; the next expect() says so

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def cpu_seconds(self) -> float:
        """CPU time of all its threads so far, to the kernel's tick (10 ms)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sleeps(self) -> int:
        """How often its threads have gone to sleep so far (voluntary switches)."""
        tasks = f"/proc/{self.proc.pid}/task"
        total = 0
        try:
            tids = os.listdir(tasks)
        except FileNotFoundError:
            return 0
        for tid in tids:
            try:
                with open(f"{tasks}/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
            except FileNotFoundError:
                pass  # a thread that ended meanwhile
        return total

    def usage(self) -> tuple[float, int]:
        return self.cpu_seconds(), self.sleeps()


class Rig:
    """The processes of one way at one size; the first is the receiver or server."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.workers: list[Worker] = []

    def start(self, role: Role, spec: dict[str, Any], name: str, timeout: float = 60) -> Worker:
        """Start a worker and wait until it says it is ready."""
        w = Worker(role, spec, name)
        self.workers.append(w)
        self.expect(w, "ready", timeout)
        return w

    def expect(self, worker: Worker, want: str, timeout: float = 60) -> Any:
        """The next message from *worker*, which must be *want*; returns its payload.

        Raises WorkerError as soon as any worker of the rig reports an
        error or dies, or if *worker* says nothing for *timeout* seconds.
        """
        msg = self.next(worker, timeout)
        kind = msg if isinstance(msg, str) else msg[0]
        if kind != want:
            raise WorkerError(f"{self.label}: the {worker.name} said {kind!r}, not {want!r}")
        return None if isinstance(msg, str) else msg[1]

    def next(self, worker: Worker, timeout: float = 60) -> Any:
        """The next message from *worker*, whatever it is (see expect)."""
        deadline = time.monotonic() + timeout
        by_conn: dict[Any, Worker] = {w.conn: w for w in self.workers}
        while not worker.inbox:
            left = deadline - time.monotonic()
            ready = wait(list(by_conn), timeout=max(0.0, left)) if left > 0 else []
            if not ready:
                raise WorkerError(f"{self.label}: the {worker.name} said nothing in {timeout:g} s")
            for c in ready:
                w = by_conn[c]
                try:
                    msg = w.conn.recv()
                except (EOFError, OSError):
                    w.proc.join(1)
                    if w is not worker and w.proc.exitcode == 0:
                        # It finished its part and exited (the connect
                        # figure's connector): not a death.  Its end of
                        # file may come before *worker*'s answer.
                        del by_conn[c]
                        continue
                    raise WorkerError(
                        f"{self.label}: the {w.name} died (exit code {w.proc.exitcode})"
                    ) from None
                if isinstance(msg, tuple) and msg[0] == "error":
                    raise WorkerError(f"{self.label}: the {w.name} failed: {msg[1]}")
                w.inbox.append(msg)
        return worker.inbox.popleft()

    def close(self) -> None:
        """Ask every worker to quit (so that they clean up), then kill what is left."""
        for w in self.workers:
            w.send(("quit", None))
        deadline = time.monotonic() + 2
        for w in self.workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        for w in self.workers:
            w.kill()
        self.workers.clear()


def cpu_shares(
    messages: int, wall: float, before: list[tuple[float, int]], after: list[tuple[float, int]]
) -> dict[str, float]:
    """Where a throughput trial's CPU went: the receiver (first) and the senders.

    Per message and in cores (CPU seconds per second), with how often each
    side went to sleep.  On a machine with fewer cores than busy processes
    the rate is about cores / (receiver + senders' CPU per message): this
    is what explains a fan-in figure (docs/performance.md).
    """
    deltas = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]
    (rx_cpu, rx_sleeps), senders = deltas[0], deltas[1:]
    tx_cpu = sum(cpu for cpu, _ in senders)
    tx_sleeps = sum(sleeps for _, sleeps in senders)
    n = max(messages, 1)
    wall = max(wall, 1e-9)
    return {
        "receiver_us_per_msg": rx_cpu / n * 1e6,
        "senders_us_per_msg": tx_cpu / n * 1e6,
        "receiver_cores": rx_cpu / wall,
        "senders_cores": tx_cpu / wall,
        "receiver_sleeps_per_s": rx_sleeps / wall,
        "senders_sleeps_per_s": tx_sleeps / wall,
    }


def stream_window(rig: Rig, params: dict[str, Any]) -> dict[str, Any]:
    """One throughput window of *rig*: the receiver's result, CPU shares, and why n/a."""
    rx, senders = rig.workers[0], rig.workers[1:]
    timeout = params["max_seconds"] + 30
    rx.send(("run", params))
    rig.expect(rx, "armed")
    for s in senders:
        s.send(("run", params))
    rig.expect(rx, "measuring", timeout)
    t0 = time.monotonic()
    before = [w.usage() for w in rig.workers]
    result: dict[str, Any] = rig.expect(rx, "result", timeout)
    after = [w.usage() for w in rig.workers]
    wall = time.monotonic() - t0
    for s in senders:
        s.send(("stop", None))
    stopped = [rig.expect(s, "stopped", timeout) for s in senders]
    done = rig.expect(rx, "done", timeout)
    result["cpu"] = cpu_shares(result["messages"], wall, before, after)
    result["na"] = next((s["na"] for s in stopped if s["na"]), None)
    result["checked"] = done["checked"]
    return result


def fanout_window(rig: Rig, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One window of a publisher (first worker) and its subscribers (the rest).

    The rate is the sum of every subscriber's own rate over its measured
    window (see peers/fanout.py); the slowest and fastest are kept too.
    """
    pub, subs = rig.workers[0], rig.workers[1:]
    for s in subs:
        s.send(("run", params))
    for s in subs:
        rig.expect(s, "armed")
    pub.send(("run", params))
    rig.expect(pub, "sending", timeout)
    results = [rig.expect(s, "result", timeout) for s in subs]
    pub.send(("stop", None))
    rig.expect(pub, "stopped", timeout)
    checked = sum(rig.expect(s, "done", timeout)["checked"] for s in subs)
    rates = [r["messages"] / r["seconds"] for r in results]
    return {"rate": sum(rates), "slowest": min(rates), "fastest": max(rates), "checked": checked}


def echo_window(rig: Rig, params: dict[str, Any]) -> dict[str, Any]:
    """One round-trip window of *rig*: the client's samples."""
    server, client = rig.workers
    timeout = params["max_seconds"] + 30
    server.send(("serve", params))
    rig.expect(server, "serving")
    client.send(("run", params))
    result: dict[str, Any] = rig.expect(client, "result", timeout)
    rig.expect(server, "idle", timeout)
    return result


# -- load ---------------------------------------------------------------------------

_HOG = """
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: a busy process of the bench's load
if os.getppid() != int(sys.argv[2]):
    sys.exit()
end = time.monotonic() + float(sys.argv[1])
sys.stdout.write("x")
sys.stdout.flush()
while time.monotonic() < end:
    for _ in range(20000):
        pass
"""


def cores() -> int:
    return len(os.sched_getaffinity(0))


@contextlib.contextmanager
def load(busy: int, seconds: float) -> Iterator[None]:
    """*busy* processes spinning at normal priority for at most *seconds*.

    They are killed when the block exits, however it exits.
    """
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        hogs.extend(  # one by one: those started before a failure are in the list
            subprocess.Popen(
                [sys.executable, "-S", "-c", _HOG, str(seconds), str(os.getpid())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
            )
            for _ in range(busy)
        )
        for hog in hogs:
            assert hog.stdout is not None
            readable, _, _ = select.select([hog.stdout], [], [], 30)
            if not readable or not hog.stdout.read(1):
                raise WorkerError("a busy process of the load did not start")
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
            if hog.stdout is not None:
                hog.stdout.close()


def remove_iceoryx2_segments(prefix: str) -> None:
    """Remove shared memory left under the run's iceoryx2 prefix (a killed worker's)."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir("/dev/shm"):
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join("/dev/shm", name))
