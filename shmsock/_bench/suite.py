"""The ``shmsock bench`` suite: run the trials, collect figures, print them.

Every trial runs its sides in fresh processes, in a private shmsock root
that is removed afterwards.  Timings on a shared machine drift, so peers
(pyzmq over ``ipc://``, Trio over a Unix socket) run in the same session
and each figure is shown beside theirs as a ratio.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TextIO

import trio

import shmsock

from . import DEFAULT_KINDS, ring, workers

_ctx = multiprocessing.get_context("spawn")
# "fanin-nice" runs the fan-in with the producers at this niceness: with more
# busy processes than cores, the fair scheduler gives the one receiver only
# its share (see docs/performance.md).
FANIN_NICE = 10

#: The message size of the "large" figure: far more than a ring holds.
LARGE = 16 << 20


@dataclass
class Figure:
    """One measured figure, with the peers' figures for the same setup."""

    section: str
    label: str
    unit: str
    value: float
    higher_is_better: bool
    key: str = ""  # figures with the same key measure the same setup
    peers: dict[str, float] = field(default_factory=dict)
    details: dict[str, float] = field(default_factory=dict)

    def ratio(self, peer: str) -> float | None:
        other = self.peers.get(peer)
        if not other or not self.value:
            return None
        return self.value / other


@dataclass
class Options:
    sizes: tuple[int, ...] = (64, 1024)
    seconds: float = 0.75
    warmup: float = 0.3
    peers: bool = True
    kinds: tuple[str, ...] = DEFAULT_KINDS
    rounds: int = 3000
    spin_us: int = 50
    idle_peers: int = 100


def _cpu_shares(
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
    return {
        "receiver_us_per_msg": rx_cpu / n * 1e6,
        "senders_us_per_msg": tx_cpu / n * 1e6,
        "receiver_cores": rx_cpu / wall,
        "senders_cores": tx_cpu / wall,
        "receiver_sleeps_per_s": rx_sleeps / wall,
        "senders_sleeps_per_s": tx_sleeps / wall,
    }


def _not_quiet(size: int) -> int:
    """A busy sender's message size the receiver cannot take for a quiet one's."""
    return size + 1 if size == workers.QUIET.size else size


def _niceness(nice: int) -> str:
    """The label suffix of a fan-in run with niced producers."""
    return f", nice {nice}" if nice else ""


class _Proc:
    def __init__(self, target: Callable[..., None], spec: dict[str, Any]) -> None:
        self.conn, child = _ctx.Pipe()
        self.proc = _ctx.Process(target=target, args=(child, spec), daemon=True)
        self.proc.start()
        child.close()

    def recv(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError("a benchmark process did not answer in time")
        return self.conn.recv()

    def expect_ready(self, timeout: float = 30) -> None:
        got = self.recv(timeout)
        if got != "ready":
            raise RuntimeError(f"benchmark process said {got!r}")

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def cpu_seconds(self) -> float:
        """CPU time of all its threads so far, to the kernel's tick (10 ms)."""
        assert self.proc.pid is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sleeps(self) -> int:
        """How often its threads have gone to sleep so far (voluntary switches)."""
        tasks = f"/proc/{self.proc.pid}/task"
        total = 0
        for tid in os.listdir(tasks):
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


@contextlib.contextmanager
def _procs() -> Iterator[list[_Proc]]:
    started: list[_Proc] = []
    try:
        yield started
    finally:
        for p in started:
            p.stop()


def _start(started: list[_Proc], target: Callable[..., None], spec: dict[str, Any]) -> _Proc:
    p = _Proc(target, spec)
    started.append(p)
    return p


def have_pyzmq() -> bool:
    try:
        import zmq  # noqa: F401
    except ImportError:
        return False
    return True


class Suite:
    """Runs the trials of a bench session and keeps their figures."""

    def __init__(self, opts: Options, progress: TextIO | None = None) -> None:
        self.opts = opts
        self.figures: list[Figure] = []
        self.progress = progress
        self.started = time.monotonic()
        self.step = 0
        self.total = 0
        self.tmp = ""
        self.zmq = opts.peers and have_pyzmq()

    # -- plumbing -------------------------------------------------------------

    def _say(self, what: str) -> None:
        self.step += 1
        if self.progress is None:
            return
        line = f"[{self.step:2d}/{self.total}] {time.monotonic() - self.started:5.1f}s  {what}"
        if self.progress.isatty():
            self.progress.write("\r\033[K" + line)
        else:
            self.progress.write(line + "\n")
        self.progress.flush()

    def _endpoint(self) -> str:
        return f"shm://bench-{os.getpid()}-{self.step}"

    def _ipc(self, name: str) -> str:
        return os.path.join(self.tmp, f"{name}-{self.step}")

    def _rate(self, result: dict[str, float]) -> float:
        return result["messages"] / result["seconds"] / 1e6

    def _throughput(
        self,
        receiver: Callable[..., None],
        sender: Callable[..., None],
        spec: dict[str, Any],
        senders: int = 1,
        quiet: Callable[..., None] | None = None,
    ) -> tuple[float, dict[str, float]]:
        """Run one receiver and *senders* senders: the rate (M msg/s) and where the CPU went.

        With *quiet*, one more sender of that kind runs too (its CPU counts
        among the senders'), and the details say how long its messages
        waited (``quiet_p50_ms``, ``quiet_p99_ms``, ``quiet_max_ms``).
        """
        o = self.opts
        spec = {
            **spec,
            "seconds": o.seconds,
            "warmup": o.warmup,
            "max_seconds": o.seconds + o.warmup + 30,
        }
        timeout = o.seconds + o.warmup + 60
        with _procs() as started:
            rx = _start(started, receiver, spec)
            rx.expect_ready()
            for _ in range(senders):
                _start(started, sender, spec)
            if quiet is not None:
                _start(started, quiet, spec)
            for p in started[1:]:
                p.expect_ready()
            rx.conn.send("go")  # shmsock's and pyzmq's receivers wait for it
            said = rx.recv(timeout)
            if said != workers.MEASURING:
                raise RuntimeError(f"benchmark receiver said {said!r}")
            t0 = time.monotonic()
            before = [p.usage() for p in started]
            result = rx.recv(timeout)
            after = [p.usage() for p in started]
            wall = time.monotonic() - t0
        details = _cpu_shares(result["messages"], wall, before, after)
        if "quiet" in result:
            q = result["quiet"]
            details.update(
                quiet_p50_ms=q["p50_us"] / 1000,
                quiet_p99_ms=q["p99_us"] / 1000,
                quiet_max_ms=q["max_us"] / 1000,
                quiet_count=q["count"],
            )
        return self._rate(result), details

    # -- trials -----------------------------------------------------------------

    def plan(self) -> list[Callable[[], None]]:
        o = self.opts
        steps: list[Callable[[], None]] = []
        if "throughput" in o.kinds:
            for size in o.sizes:
                steps.extend(
                    partial(self.throughput, size, mode, checksum)
                    for mode in ("await", "nowait", "batch")
                    for checksum in (True, False)
                )
                steps.append(partial(self.throughput, size, "iter", True))
                if self.zmq:
                    steps.append(partial(self.peer_throughput, "pyzmq", size))
                if o.peers:
                    steps.append(partial(self.peer_throughput, "unix", size))
        if "large" in o.kinds:
            steps.append(self.large)
            if self.zmq:
                steps.append(partial(self.peer_throughput, "pyzmq", LARGE))
        size = 1024 if 1024 in o.sizes else o.sizes[-1]
        for kind, nice in (("fanin", 0), ("fanin-nice", FANIN_NICE), ("fanin-quiet", 0)):
            if kind in o.kinds:
                quiet = kind == "fanin-quiet"
                steps.append(partial(self.fanin, size, nice, quiet))
                if self.zmq:
                    steps.append(partial(self.fanin, size, nice, quiet, zmq=True))
        if "latency" in o.kinds:
            steps.append(lambda: self.latency(0))
            steps.append(lambda: self.latency(o.spin_us))
            steps.append(self.floor)
            if self.zmq:
                steps.append(lambda: self.peer_latency("pyzmq"))
            if o.peers:
                steps.append(lambda: self.peer_latency("unix"))
        if "connect" in o.kinds:
            steps.append(self.connect_time)
        if "memory" in o.kinds:
            steps.append(self.memory)
        if "idle" in o.kinds:
            steps.append(self.idle)
        if "ring" in o.kinds:
            steps.append(self.ring)
        return steps

    def run(self) -> list[Figure]:
        steps = self.plan()
        self.total = len(steps)
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.tmp = tempfile.mkdtemp(prefix="shmsock-bench-", dir=base)
        saved = os.environ.get("SHMSOCK_ROOT")
        os.environ["SHMSOCK_ROOT"] = self.tmp
        try:
            for step in steps:
                step()
        finally:
            if saved is None:
                del os.environ["SHMSOCK_ROOT"]
            else:
                os.environ["SHMSOCK_ROOT"] = saved
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.progress is not None and self.progress.isatty():
                self.progress.write("\r\033[K")
                self.progress.flush()
        self._attach_peers()
        return self.figures

    def _attach_peers(self) -> None:
        """Put each peer figure beside the shmsock figures of the same setup."""
        peers = [f for f in self.figures if f.section == "peer"]
        mine = [f for f in self.figures if f.section != "peer"]
        for f in mine:
            for p in peers:
                if p.key == f.key:
                    f.peers[p.label] = p.value
                    for k, v in p.details.items():
                        f.details[f"{p.label}_{k}"] = v
        self.figures = mine

    def throughput(self, size: int, mode: str, checksum: bool) -> None:
        crc = "on" if checksum else "off"
        self._say(f"throughput {size} B, {mode}, CRC {crc}")
        spec = {"endpoint": self._endpoint(), "mode": mode, "size": size, "checksum": checksum}
        value, cpu = self._throughput(workers.shm_receiver, workers.shm_sender, spec)
        self.figures.append(
            Figure(
                "throughput",
                f"{_size(size)} {mode} CRC {crc}",
                "M msg/s",
                value,
                True,
                key=f"tp{size}",
                details=cpu,
            )
        )

    def large(self) -> None:
        for ring_size in (1 << 20, 4 << 20):
            self._say(f"16 MiB messages, streamed through a {_size(ring_size)} ring")
            spec = {
                "endpoint": self._endpoint(),
                "mode": "large",
                "size": LARGE,
                "checksum": True,
                "ring_size": ring_size,
            }
            value, cpu = self._throughput(workers.shm_receiver, workers.shm_sender, spec)
            label = f"16 MiB await, {_size(ring_size)} ring"
            self.figures.append(
                Figure("large", label, "msg/s", value * 1e6, True, key=f"tp{LARGE}", details=cpu)
            )

    def peer_throughput(self, peer: str, size: int) -> None:
        self._say(f"throughput {size} B, {peer}")
        if peer == "pyzmq":
            spec = {"address": "ipc://" + self._ipc("zmq"), "size": size}
            value, cpu = self._throughput(workers.zmq_receiver, workers.zmq_sender, spec)
            if size == LARGE:
                value *= 1e6  # messages per second, as the "large" figure
        else:
            spec = {"path": self._ipc("unix"), "size": size}
            value, cpu = self._throughput(workers.unix_receiver, workers.unix_sender, spec)
        self.figures.append(
            Figure("peer", peer, "M msg/s", value, True, key=f"tp{size}", details=cpu)
        )

    def fanin(self, size: int, nice: int = 0, quiet: bool = False, zmq: bool = False) -> None:
        """The fan-in (or, with *zmq*, pyzmq's), with a quiet ninth sender if *quiet*."""
        if quiet:
            size = _not_quiet(size)
        who = "8 producers + 1 quiet" if quiet else "8 producers"
        how = _niceness(nice)
        self._say(f"{who} -> 1 PULL, {size} B, {'pyzmq' if zmq else 'batch'}{how}")
        spec: dict[str, Any] = {"size": size, "nice": nice, "quiet": quiet}
        if zmq:
            spec["address"] = "ipc://" + self._ipc("zmqf")
            sides = (workers.zmq_receiver, workers.zmq_sender, workers.zmq_quiet_sender)
        else:
            spec.update(endpoint=self._endpoint(), mode="batch", checksum=True)
            sides = (workers.shm_receiver, workers.shm_sender, workers.shm_quiet_sender)
        receiver, sender, quiet_sender = sides
        value, cpu = self._throughput(
            receiver, sender, spec, senders=8, quiet=quiet_sender if quiet else None
        )
        key = f"fanin{nice or ''}{'-quiet' if quiet else ''}"
        if zmq:
            self.figures.append(Figure("peer", "pyzmq", "M msg/s", value, True, key, details=cpu))
            return
        label = (
            f"8 PUSH + 1 quiet -> 1 PULL, {_size(size)}"
            if quiet
            else f"8 PUSH -> 1 PULL, {_size(size)} batch{how}"
        )
        self.figures.append(Figure("fanin", label, "M msg/s", value, True, key, details=cpu))

    def _latency(
        self, server: Callable[..., None], client: Callable[..., None], spec: dict[str, Any]
    ) -> dict[str, float]:
        spec = {
            **spec,
            "size": 1024,
            "rounds": self.opts.rounds,
            "warmup_rounds": max(100, self.opts.rounds // 10),
        }
        with _procs() as started:
            _start(started, server, spec).expect_ready()
            return _start(started, client, spec).recv(120)  # type: ignore[no-any-return]

    def latency(self, spin_us: int) -> None:
        label = f"spin_us={spin_us}" if spin_us else "parked (default)"
        self._say(f"REQ/REP round trip, 1 KiB, {label}")
        r = self._latency(
            workers.shm_rep, workers.shm_req, {"endpoint": self._endpoint(), "spin_us": spin_us}
        )
        self.figures.append(
            Figure(
                "latency", f"REQ/REP 1 KiB, {label}", "us", r["p50_us"], False, key="rtt", details=r
            )
        )

    def floor(self) -> None:
        self._say("round trip, 1 KiB, the spinning floor under Trio's rules")
        r = self._latency(workers.floor_echo, workers.floor_client, {"endpoint": self._endpoint()})
        self.figures.append(
            Figure(
                "latency", "floor: ring + checkpoints only", "us", r["p50_us"], False,
                key="rtt", details=r,
            )
        )  # fmt: skip

    def peer_latency(self, peer: str) -> None:
        self._say(f"round trip, 1 KiB, {peer}")
        if peer == "pyzmq":
            r = self._latency(
                workers.zmq_rep, workers.zmq_req, {"address": "ipc://" + self._ipc("zmqr")}
            )
        else:
            r = self._latency(workers.unix_echo, workers.unix_client, {"path": self._ipc("echo")})
        self.figures.append(Figure("peer", peer, "us", r["p50_us"], False, key="rtt", details=r))

    def connect_time(self) -> None:
        self._say("connect -> first message delivered")
        spec = {"endpoint": self._endpoint(), "rounds": 30}
        with _procs() as started:
            binder = _start(started, workers.shm_connect_binder, spec)
            binder.expect_ready()
            _start(started, workers.shm_connect_connector, spec)
            r = binder.recv(120)
        self.figures.append(
            Figure(
                "connect",
                "connect -> first message",
                "ms",
                r["p50_us"] / 1000,
                False,
                details={"max_ms": r["max_us"] / 1000, "rounds": r["count"]},
            )
        )

    def memory(self) -> None:
        self._say("memory: bound socket, and per connection")
        peers = 20
        spec = {"endpoint": self._endpoint(), "peers": peers, "type": "REQ", "send_one": True}
        with _procs() as started:
            binder = _start(started, workers.shm_memory_binder, spec)
            bound = binder.recv(60)["bound"]
            pushers = _start(started, workers.shm_many_connectors, spec)
            pushers.expect_ready(60)
            after = binder.recv(60)
        # Both rings of every connection are files in the root, so shm_bytes
        # counts them whichever side created them.
        total_bound = bound["private_bytes"] + bound["shm_bytes"]
        per_conn = (
            after["private_bytes"]
            - bound["private_bytes"]
            + after["shm_bytes"]
            - bound["shm_bytes"]
        ) / peers
        self.figures.append(
            Figure(
                "memory",
                "bound REP, no peers",
                "MB",
                total_bound / 1e6,
                False,
                details={k: v / 1e6 for k, v in bound.items()},
            )
        )
        self.figures.append(
            Figure(
                "memory",
                "each REQ -> REP connection",
                "MB",
                per_conn / 1e6,
                False,
                details={"peers": peers},
            )
        )

    def idle(self) -> None:
        n = self.opts.idle_peers
        self._say(f"idle CPU with {n} connected peers")
        spec = {"endpoint": self._endpoint(), "peers": n, "type": "PUSH"}
        with _procs() as started:
            binder = _start(started, workers.shm_idle_binder, spec)
            binder.expect_ready()
            pushers = _start(started, workers.shm_many_connectors, spec)
            pushers.expect_ready(120)
            time.sleep(0.2)
            c0 = binder.cpu_seconds() + pushers.cpu_seconds()
            t0 = time.monotonic()
            time.sleep(2.0)
            c1 = binder.cpu_seconds() + pushers.cpu_seconds()
            dt = time.monotonic() - t0
        self.figures.append(
            Figure("idle", f"idle, {n} connected peers", "% CPU", 100 * (c1 - c0) / dt, False)
        )

    def ring(self) -> None:
        self._say("ring microbenchmark, one process")
        for checksum in (True, False):
            r = ring.run(1024, 64, checksum, min(self.opts.seconds, 1.0))
            self.figures.append(
                Figure(
                    "ring",
                    f"1 KiB, batch 64, CRC {'on' if checksum else 'off'}",
                    "M rec/s",
                    r.records_per_s / 1e6,
                    True,
                )
            )


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


def machine() -> dict[str, str]:
    info = {
        "python": platform.python_version(),
        "shmsock": shmsock.__version__,
        "trio": trio.__version__,
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
    }
    if have_pyzmq():
        import zmq

        info["pyzmq"] = f"{zmq.__version__} (libzmq {zmq.zmq_version()})"
    return info


def to_json(figures: list[Figure]) -> dict[str, Any]:
    return {"machine": machine(), "figures": [asdict(f) for f in figures]}


def render(figures: list[Figure], out: TextIO = sys.stdout) -> None:
    m = machine()
    out.write(
        f"shmsock bench  (shmsock {m['shmsock']}, Python {m['python']}, trio {m['trio']},"
        f" {m['cpus']} CPUs{', pyzmq ' + m['pyzmq'] if 'pyzmq' in m else ''})\n"
    )
    titles = {
        "throughput": "Throughput, PUSH -> PULL between two processes (M msg/s, higher is better)",
        "large": "Large messages, 16 MiB each, PUSH -> PULL (msg/s; 1 msg/s = 16.8 MB/s)",
        "fanin": "Fan-in, 8 producer processes -> 1 PULL (M msg/s aggregate)",
        "latency": "Round trip, REQ/REP between two processes (microseconds, lower is better)",
        "connect": "Connect -> first message delivered (ms)",
        "memory": "Memory (MB: private RSS growth + shared memory)",
        "idle": "Idle CPU (% of one core, both processes)",
        "ring": "Ring microbenchmark, one process, one C call per batch (M records/s)",
    }
    for section, title in titles.items():
        rows = [f for f in figures if f.section == section]
        if not rows:
            continue
        out.write(f"\n{title}\n")
        for f in rows:
            out.write(_row(f))
    out.write("\n")


def _ratio(f: Figure, peer: str) -> str:
    r = f.ratio(peer)
    if r is None:
        return ""
    return f"  {peer} {f.peers[peer]:.3g} ({r:.2f}x)"


def _row(f: Figure) -> str:
    if f.section == "latency":
        d = f.details
        line = (
            f"  {f.label:<34} p50 {d['p50_us']:7.1f}  p99 {d['p99_us']:7.1f}"
            f"  p99.9 {d['p999_us']:7.1f}  max {d['max_us']:8.1f}"
        )
        for peer in ("pyzmq", "unix"):
            if f"{peer}_p50_us" in d:
                line += (
                    f"\n  {'':<34} {peer}: p50 {d[peer + '_p50_us']:.1f} p99"
                    f" {d[peer + '_p99_us']:.1f} -> p50 x{d['p50_us'] / d[peer + '_p50_us']:.2f},"
                    f" p99 x{d['p99_us'] / d[peer + '_p99_us']:.2f}"
                )
        return line + "\n"
    if f.section == "connect":
        return (
            f"  {f.label:<34} median {f.value:.3f} ms  max {f.details['max_ms']:.3f} ms"
            f"  ({f.details['rounds']:.0f} connects)\n"
        )
    line = f"  {f.label:<34} {f.value:8.3f} {f.unit}"
    for peer in ("pyzmq", "unix"):
        line += _ratio(f, peer)
    if f.section == "fanin":
        line += _quiet_line(f.details)
        line += _cpu_line(f.details, "", "CPU per message:")
        line += _cpu_line(f.details, "pyzmq_", "pyzmq:")
    return line + "\n"


def _quiet_line(d: dict[str, float]) -> str:
    """How long the quiet sender's messages waited, for the table."""
    if "quiet_p50_ms" not in d:
        return ""
    line = (
        f"\n    {'quiet sender:':<16} its messages waited p50 {d['quiet_p50_ms']:.2f} ms,"
        f" p99 {d['quiet_p99_ms']:.2f} ms, max {d['quiet_max_ms']:.2f} ms"
    )
    if "pyzmq_quiet_p50_ms" in d:
        line += (
            f"\n    {'':<16} pyzmq: p50 {d['pyzmq_quiet_p50_ms']:.2f} ms,"
            f" p99 {d['pyzmq_quiet_p99_ms']:.2f} ms, max {d['pyzmq_quiet_max_ms']:.2f} ms"
        )
    return line


def _cpu_line(d: dict[str, float], prefix: str, title: str) -> str:
    """A fan-in's CPU split (see _cpu_shares), for the table."""
    if prefix + "senders_us_per_msg" not in d:
        return ""
    return (
        f"\n    {title:<16} senders {d[prefix + 'senders_us_per_msg']:.2f} us,"
        f" receiver {d[prefix + 'receiver_us_per_msg']:.2f} us"
        f" ({d[prefix + 'receiver_cores']:.0%} of a core);"
        f" senders slept {d[prefix + 'senders_sleeps_per_s']:,.0f}/s"
    )
