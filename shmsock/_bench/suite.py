"""The ``shmsock bench`` suite: sections of trials, and the figures they make.

Each *section* (one ``--only`` kind) is a plan function in ``SECTIONS``
that lists its trials; the way it is printed is in ``report.py``.  A trial
is one measured window of one way (see ``rigs.py``), so a figure is the
median of several trials, and the trials of a section's ways alternate:
every way's first trial, then every way's second, and so on, so that a
drift of the machine touches them all alike.

Every trial runs its sides in separate processes, in a private shmsock
root that is removed afterwards.  Timings on a shared machine drift, so
peers run in the same session and each figure is shown beside theirs.

To add a section: write ``plan_NAME(suite) -> list[Trial]`` (most are a
loop over ways, sizes and trials calling ``suite.stream_trial`` or
``suite.echo_trial``), add it to ``SECTIONS`` and its kind to ``KINDS`` in
``__init__.py``, and give it a title and a table in ``report.py``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shutil
import statistics
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any, TextIO

import trio

import shmsock

from . import DEFAULT_KINDS, KINDS, SWEEP_SIZES, rigs, ring
from .peers import (
    ECHOES,
    FANIN,
    PEERS,
    QUIET_SENDERS,
    ROUTER_ECHOES,
    STREAMS,
    TCP_STREAMS,
    Echo,
    Stream,
    shm,
)
from .protocol import QUIET, samples_of, summary

FORMAT = "shmsock-bench/2"
#: The message sizes of the "large" figures: each goes whole through a bulk
#: region on shm:// (frames above 64 KiB; 64 KiB itself still fits the ring).
LARGE_SIZES = (64 << 10, 1 << 20, 16 << 20)
#: The size of the figures measured at one size only (fan-in, the peers
#: that are not measured at every --sizes).
MAIN_SIZE = 1024
# "fanin-nice" runs the fan-in with the producers at this niceness: with more
# busy processes than cores, the fair scheduler gives the one receiver only
# its share (see docs/performance.md).
FANIN_NICE = 10
FANIN_SENDERS = 8
#: The most warm-up of a rig's first window (fresh processes, cold caches).
FIRST_WARMUP = 0.1
#: The most a round-trip trial takes, warm-up and rounds: two busy-polling
#: processes on a loaded machine may need a scheduler tick per round.
ECHO_WARMUP = 0.1
ECHO_SECONDS = 0.5
#: The longest a busy process of the load may live, whatever happens.
LOAD_SECONDS = 600.0


@dataclass
class Options:
    sizes: tuple[int, ...] = (64, 1024)
    seconds: float = 0.2  # measured in each throughput trial
    warmup: float = 0.05  # before it (a rig's first: FIRST_WARMUP)
    trials: int = 3
    rounds: int = 1000  # round trips in each latency trial
    peers: bool = True
    kinds: tuple[str, ...] = DEFAULT_KINDS
    spin_us: int = 50
    idle_peers: int = 100
    sweep_sizes: tuple[int, ...] = SWEEP_SIZES


@dataclass
class Figure:
    """One measured figure: one way, one setup, several trials."""

    id: str  # stable across runs: runs are compared by it
    section: str
    label: str
    unit: str
    higher_is_better: bool
    value: float = 0.0  # the median of the trials
    trials: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)  # more, per trial
    details: dict[str, float] = field(default_factory=dict)
    peer: str = "shmsock"
    way: str = ""
    size: int = 0
    load: str = ""  # round trips: quiet, half, all
    style: str = ""  # shmsock's call style
    zero_copy: bool = False
    na: str | None = None  # why there is no value

    def add(self, value: float, **metrics: float) -> None:
        self.trials.append(value)
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append(v)
        self.value = statistics.median(self.trials)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Figure:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Run:
    """A whole run: what ``--json`` saves and ``--compare`` reads."""

    figures: list[Figure]
    machine: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    seconds: float = 0.0
    missing: list[str] = field(default_factory=list)  # one line per peer left out

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "machine": self.machine,
            "options": self.options,
            "missing": self.missing,
            "figures": [asdict(f) for f in self.figures],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Run:
        if d.get("format") != FORMAT:
            raise ValueError(
                f"not a saved run of this bench (format {d.get('format')!r}, {FORMAT!r} expected)"
            )
        return cls(
            figures=[Figure.from_json(f) for f in d["figures"]],
            machine=d.get("machine", {}),
            options=d.get("options", {}),
            started=d.get("started", ""),
            seconds=d.get("seconds", 0.0),
            missing=d.get("missing", []),
        )


@dataclass
class Trial:
    label: str  # for the progress line
    run: Callable[[], None]
    group: str = ""  # rigs live while consecutive trials share a group
    load: int = 0  # busy processes while it runs


class Suite:
    """Runs the trials of a bench session and keeps their figures."""

    def __init__(self, opts: Options, progress: TextIO | None = None) -> None:
        self.opts = opts
        self.progress = progress
        self.figures: dict[str, Figure] = {}
        self.samples: dict[str, array[int]] = {}  # every round trip's, per figure
        self.rigs: dict[str, rigs.Rig] = {}
        self.started = time.monotonic()
        self.step = 0
        self.total = 0
        self.tmp = ""
        self.serial = 0
        self.iox2_prefix = f"shmsock-bench-{os.getpid()}-"
        self.missing = {
            name: line
            for name, peer in PEERS.items()
            if opts.peers and (line := peer.missing()) is not None
        }

    # -- plumbing -----------------------------------------------------------------

    def has(self, peer: str) -> bool:
        """Whether *peer*'s figures are measured in this run."""
        if peer == "shmsock":
            return True
        return self.opts.peers and peer not in self.missing

    def say(self, what: str) -> None:
        self.step += 1
        if self.progress is None:
            return
        line = f"[{self.step:2d}/{self.total}] {time.monotonic() - self.started:5.1f}s  {what}"
        if self.progress.isatty():
            self.progress.write("\r\033[K" + line)
        else:
            self.progress.write(line + "\n")
        self.progress.flush()

    def warn(self, what: str) -> None:
        if self.progress is not None:
            if self.progress.isatty():
                self.progress.write("\r\033[K")
            self.progress.write(f"shmsock bench: {what}\n")
            self.progress.flush()

    def name(self) -> str:
        """A name no other rig of this run uses (endpoints, paths, services)."""
        self.serial += 1
        return f"b{os.getpid()}-{self.serial}"

    def spec(self, **more: Any) -> dict[str, Any]:
        return {
            "name": self.name(),
            "tmp": self.tmp,
            "env": {"SHMSOCK_ROOT": self.tmp},
            "iox2_prefix": self.iox2_prefix,
            **more,
        }

    def figure(self, fid: str, **attrs: Any) -> Figure:
        f = self.figures.get(fid)
        if f is None:
            f = self.figures[fid] = Figure(fid, **attrs)
        return f

    def close_rigs(self) -> None:
        for rig in self.rigs.values():
            rig.close()
        self.rigs.clear()

    def _drop_rig(self, key: str) -> None:
        rig = self.rigs.pop(key, None)
        if rig is not None:
            rig.kill()

    def _failed(self, fig: Figure, key: str, exc: Exception) -> None:
        fig.na = f"failed: {exc}"
        self.warn(f"{fig.label}: {exc}")
        self._drop_rig(key)

    # -- running ------------------------------------------------------------------

    def plan(self) -> list[Trial]:
        trials: list[Trial] = []
        for kind in KINDS:
            if kind in self.opts.kinds:
                trials.extend(SECTIONS[kind](self))
        return trials

    def run(self) -> Run:
        trials = self.plan()
        self.total = len(trials)
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.tmp = tempfile.mkdtemp(prefix="shmsock-bench-", dir=base)
        saved = os.environ.get("SHMSOCK_ROOT")
        os.environ["SHMSOCK_ROOT"] = self.tmp  # for the one-process figures (ring)
        started = datetime.datetime.now(datetime.UTC)
        group: str | None = None
        busy = 0
        hogs = contextlib.ExitStack()
        try:
            for t in trials:
                if t.group != group:
                    self.close_rigs()
                    group = t.group
                if t.load != busy:
                    hogs.close()
                    if t.load:
                        hogs.enter_context(rigs.load(t.load, LOAD_SECONDS))
                    busy = t.load
                self.say(t.label)
                t.run()
            hogs.close()
            self.close_rigs()
        except BaseException:
            for rig in self.rigs.values():
                rig.kill()
            self.rigs.clear()
            raise
        finally:
            hogs.close()
            if saved is None:
                del os.environ["SHMSOCK_ROOT"]
            else:
                os.environ["SHMSOCK_ROOT"] = saved
            shutil.rmtree(self.tmp, ignore_errors=True)
            rigs.remove_iceoryx2_segments(self.iox2_prefix)
            if self.progress is not None and self.progress.isatty():
                self.progress.write("\r\033[K")
                self.progress.flush()
        for f in self.figures.values():
            for k, values in f.metrics.items():
                if values:
                    f.details.setdefault(k, statistics.median(values))
        return Run(
            figures=list(self.figures.values()),
            machine=machine(),
            options=asdict(self.opts),
            started=started.isoformat(timespec="seconds"),
            seconds=time.monotonic() - self.started,
            missing=list(self.missing.values()),
        )

    # -- trials of the ways -------------------------------------------------------------

    def stream_trial(
        self,
        fid: str,
        section: str,
        way: Stream,
        size: int,
        *,
        label: str | None = None,
        senders: int = 1,
        quiet: bool = False,
        sender_nice: int = 0,
    ) -> None:
        """One throughput window of *way* at *size*, as a trial of figure *fid*."""
        o = self.opts
        fig = self.figure(
            fid, section=section, label=label or way.label, unit="M msg/s",
            higher_is_better=True, peer=way.peer, way=way.key, size=size,
            style=way.style, zero_copy=way.zero_copy,
        )  # fmt: skip
        if fig.na:
            return  # it cannot run, or failed: its other trials are not run
        rig = self.rigs.get(fid)
        first = rig is None
        try:
            if rig is None:
                rig = self._stream_rig(fid, way, size, senders, quiet, sender_nice)
            # Short trials (the tests') get short warm-ups too.
            warmup = min(FIRST_WARMUP, 2 * o.seconds) if first else min(o.warmup, o.seconds)
            params = {
                "size": size, "seconds": o.seconds, "warmup": warmup,
                "max_seconds": o.seconds + warmup + 30,
            }  # fmt: skip
            r = rigs.stream_window(rig, params)
        except rigs.WorkerError as exc:
            self._failed(fig, fid, exc)
            return
        if r["na"]:
            fig.na = r["na"]
            self._drop_rig(fid)
            return
        rate = r["messages"] / r["seconds"]
        metrics = dict(r["cpu"])
        if "quiet" in r:
            q = r["quiet"]
            metrics.update(
                quiet_p50_ms=q["p50_us"] / 1000,
                quiet_p99_ms=q["p99_us"] / 1000,
                quiet_max_ms=q["max_us"] / 1000,
                quiet_count=q["count"],
            )
        fig.add(
            rate / 1e6, gb_per_s=rate * size / 1e9, messages=r["messages"],
            checked=r["checked"], **metrics,
        )  # fmt: skip

    def _stream_rig(
        self, key: str, way: Stream, size: int, senders: int, quiet: bool, nice: int
    ) -> rigs.Rig:
        spec = self.spec(size=size, senders=senders, quiet=quiet, **way.params)
        if way.shared is not None:
            spec.update(way.shared(rigs.context(), dict(way.params), size))
        rig = self.rigs[key] = rigs.Rig(f"{way.label}, {_size(size)}")
        rig.start(way.receiver, spec, "receiver")
        for sid in range(senders):
            name = f"sender {sid}" if senders > 1 else "sender"
            rig.start(way.sender, {**spec, "sid": sid, "nice": nice}, name)
        if quiet:
            rig.start(QUIET_SENDERS[way.peer], {**spec, "sid": senders}, "quiet sender")
        return rig

    def echo_trial(self, way: Echo, load: str, busy: int, section: str = "latency") -> None:
        """One round-trip window of *way*, on a machine with *busy* busy processes."""
        o = self.opts
        spin = o.spin_us if way.params.get("spin") else 0
        fid = f"{section}/{load}/{way.key}"
        fig = self.figure(
            fid, section=section, label=way.label.format(spin_us=o.spin_us), unit="us",
            higher_is_better=False, peer=way.peer, way=way.key, size=MAIN_SIZE, load=load,
        )  # fmt: skip
        if fig.na:
            return
        key = f"echo/{section}/{way.key}"
        try:
            rig = self.rigs.get(key)
            if rig is None:
                spec = self.spec(size=MAIN_SIZE, spin_us=spin, **way.params)
                if way.shared is not None:
                    spec.update(way.shared(rigs.context(), dict(way.params), MAIN_SIZE))
                rig = self.rigs[key] = rigs.Rig(way.label.format(spin_us=o.spin_us))
                rig.start(way.server, spec, "server")
                rig.start(way.client, spec, "client")
            params = {
                "size": MAIN_SIZE,
                "rounds": o.rounds,
                "warmup_rounds": max(50, o.rounds // 10),
                "warmup_seconds": ECHO_WARMUP,
                "max_seconds": ECHO_SECONDS,
            }
            r = rigs.echo_window(rig, params)
        except rigs.WorkerError as exc:
            self._failed(fig, key, exc)
            return
        samples = samples_of(r)
        s = summary(samples)
        fig.add(s["p50_us"], p99_us=s["p99_us"], p999_us=s["p999_us"], max_us=s["max_us"],
                count=s["count"])  # fmt: skip
        pooled = self.samples.setdefault(fid, array("q"))
        pooled.extend(samples)
        fig.details.update({f"all_{k}": v for k, v in summary(pooled).items()}, busy=busy)

    # -- the one-off figures ------------------------------------------------------------

    def connect_time(self) -> None:
        spec = self.spec(rounds=30)
        rig = rigs.Rig("connect")
        try:
            binder = rig.start(shm.connect_binder, spec, "binder")
            rig.workers.append(rigs.Worker(shm.connect_connector, spec, "connector"))
            r = rig.next(binder, 120)
        finally:
            rig.kill()
        f = self.figure("connect", section="connect", label="connect -> first message",
                       unit="ms", higher_is_better=False)  # fmt: skip
        f.add(r["p50_us"] / 1000, max_ms=r["max_us"] / 1000, rounds=r["count"])

    def memory(self) -> None:
        peers = 20
        spec = self.spec(peers=peers, type="REQ", send_one=True)
        rig = rigs.Rig("memory")
        try:
            binder = rigs.Worker(shm.memory_binder, spec, "binder")
            rig.workers.append(binder)
            bound = rig.next(binder, 60)["bound"]
            rig.start(shm.many_connectors, spec, "connectors", timeout=60)
            after = rig.next(binder, 60)
        finally:
            rig.kill()
        # Both rings of every connection are files in the root, so shm_bytes
        # counts them whichever side created them.
        total_bound = bound["private_bytes"] + bound["shm_bytes"]
        per_conn = (
            after["private_bytes"] - bound["private_bytes"]
            + after["shm_bytes"] - bound["shm_bytes"]
        ) / peers  # fmt: skip
        f = self.figure("memory/bound", section="memory", label="bound REP, no peers",
                       unit="MB", higher_is_better=False)  # fmt: skip
        f.add(total_bound / 1e6, **{k: v / 1e6 for k, v in bound.items()})
        f = self.figure("memory/connection", section="memory",
                       label="each REQ -> REP connection", unit="MB",
                       higher_is_better=False)  # fmt: skip
        f.add(per_conn / 1e6, peers=peers)

    def idle(self) -> None:
        n = self.opts.idle_peers
        spec = self.spec(peers=n, type="PUSH")
        rig = rigs.Rig("idle")
        try:
            binder = rig.start(shm.idle_binder, spec, "binder")
            pushers = rig.start(shm.many_connectors, spec, "connectors", timeout=120)
            time.sleep(0.2)
            c0 = binder.cpu_seconds() + pushers.cpu_seconds()
            t0 = time.monotonic()
            time.sleep(2.0)
            c1 = binder.cpu_seconds() + pushers.cpu_seconds()
            dt = time.monotonic() - t0
        finally:
            rig.kill()
        f = self.figure("idle", section="idle", label=f"idle, {n} connected peers",
                       unit="% CPU", higher_is_better=False)  # fmt: skip
        f.add(100 * (c1 - c0) / dt)

    def ring(self) -> None:
        for checksum in (True, False):
            crc = "on" if checksum else "off"
            r = ring.run(1024, 64, checksum, min(self.opts.seconds * 2, 1.0))
            f = self.figure(f"ring/crc-{crc}", section="ring", label=f"1 KiB, batch 64, CRC {crc}",
                           unit="M rec/s", higher_is_better=True)  # fmt: skip
            f.add(r.records_per_s / 1e6)

    def memcpy(self, size: int) -> None:
        """memcpy's rate at *size* on this machine: the ceiling of the sweep."""
        f = self.figure(f"sweep/{size}/memcpy", section="sweep", label="memcpy, one core",
                        unit="M msg/s", higher_is_better=True, peer="memcpy", way="memcpy",
                        size=size)  # fmt: skip
        rate = memcpy_rate(size, min(0.1, self.opts.seconds))
        f.add(rate / 1e6, gb_per_s=rate * size / 1e9)


def memcpy_rate(size: int, seconds: float) -> float:
    """Copies of *size* bytes per second, one buffer into another, from Python."""
    src = memoryview(bytearray(os.urandom(size)))
    dst = memoryview(bytearray(size))
    per = max(1, (1 << 20) // size)
    n = 0
    t0 = time.perf_counter()
    until = t0 + seconds
    while True:
        for _ in range(per):
            dst[:] = src
        n += per
        t = time.perf_counter()
        if t >= until:
            return n / (t - t0)


# -- the sections ------------------------------------------------------------------------


def _streams(suite: Suite, keep: Callable[[Stream], bool]) -> list[Stream]:
    return [w for w in STREAMS if keep(w) and suite.has(w.peer)]


def _alternate(suite: Suite, ways: list[Any], make: Callable[[Any, int], Trial]) -> Iterator[Trial]:
    """Every way's first trial, then every way's second, and so on."""
    for t in range(suite.opts.trials):
        for w in ways:
            yield make(w, t)


def _of(t: int, suite: Suite) -> str:
    return f"({t + 1}/{suite.opts.trials})" if suite.opts.trials > 1 else ""


def plan_throughput(suite: Suite) -> list[Trial]:
    main = _main_size(suite.opts.sizes)
    trials: list[Trial] = []
    for size in suite.opts.sizes:
        ways = [w for w in _streams(suite, lambda w: True) if w.everywhere or size == main]

        def make(w: Stream, t: int, size: int = size) -> Trial:
            fid = f"throughput/{size}/{w.key}"
            return Trial(
                f"throughput {_size(size)}, {w.label} {_of(t, suite)}",
                partial(suite.stream_trial, fid, "throughput", w, size),
                group=f"throughput/{size}",
            )

        trials.extend(_alternate(suite, ways, make))
    return trials


def _large_ways(suite: Suite) -> list[Stream]:
    """shmsock's await, CRC on and off, its zero-copy lease and loan, and pyzmq."""
    ways = _streams(suite, lambda w: w.key in ("shmsock-await", "shmsock-await-nocrc"))
    if suite.has("shmsock"):
        ways.append(
            Stream(
                "shmsock-zero-copy", "shmsock loan -> lease, CRC off", "shmsock",
                shm.receiver, shm.sender, {"mode": "lease", "checksum": False},
                style="lease", zero_copy=True,
            )
        )  # fmt: skip
    return ways + _streams(suite, lambda w: w.key == "pyzmq")


def plan_tcp(suite: Suite) -> list[Trial]:
    """tcp:// on loopback at the main size: shmsock over libzmq beside pyzmq (issue 21)."""
    if not suite.has("pyzmq"):
        return []  # shmsock's tcp:// needs pyzmq too: the run's notes say it is missing
    size = _main_size(suite.opts.sizes)

    def make(w: Stream, t: int) -> Trial:
        fid = f"tcp/{size}/{w.key}"
        return Trial(
            f"tcp:// {_size(size)}, {w.label} {_of(t, suite)}",
            partial(suite.stream_trial, fid, "tcp", w, size),
            group=f"tcp/{size}",
        )

    return list(_alternate(suite, TCP_STREAMS, make))


def plan_large(suite: Suite) -> list[Trial]:
    ways = _large_ways(suite)
    trials: list[Trial] = []
    for size in LARGE_SIZES:

        def make(w: Stream, t: int, size: int = size) -> Trial:
            return Trial(
                f"{_size(size)} messages, {w.label} {_of(t, suite)}",
                partial(suite.stream_trial, f"large/{size}/{w.key}", "large", w, size),
                group=f"large/{size}",
            )

        trials.extend(_alternate(suite, ways, make))
    return trials


def plan_sweep(suite: Suite) -> list[Trial]:
    trials: list[Trial] = []
    ways = _streams(suite, lambda w: w.sweep)
    for size in suite.opts.sweep_sizes:
        trials.append(Trial(f"sweep {_size(size)}, memcpy", partial(suite.memcpy, size)))

        def make(w: Stream, t: int, size: int = size) -> Trial:
            return Trial(
                f"sweep {_size(size)}, {w.label} {_of(t, suite)}",
                partial(suite.stream_trial, f"sweep/{size}/{w.key}", "sweep", w, size),
                group=f"sweep/{size}",
            )

        trials.extend(_alternate(suite, ways, make))
    return trials


def _fanin(kind: str, nice: int = 0, quiet: bool = False) -> Callable[[Suite], list[Trial]]:
    def plan(suite: Suite) -> list[Trial]:
        size = _main_size(suite.opts.sizes)
        if quiet and size == QUIET.size:
            size += 1  # the receiver tells the quiet sender's messages by their size
        ways = [w for w in FANIN if suite.has(w.peer)]
        how = f", nice {nice}" if nice else ""
        who = f"{FANIN_SENDERS} PUSH + 1 quiet" if quiet else f"{FANIN_SENDERS} PUSH"

        def make(w: Stream, t: int) -> Trial:
            label = f"{who} -> 1 PULL, {_size(size)}, {w.label}{how}"
            return Trial(
                f"{label} {_of(t, suite)}",
                partial(
                    suite.stream_trial, f"{kind}/{w.key}", kind, w, size, label=label,
                    senders=FANIN_SENDERS, quiet=quiet, sender_nice=nice,
                ),
                group=kind,
            )  # fmt: skip

        return list(_alternate(suite, ways, make))

    return plan


def _loads() -> list[tuple[str, int]]:
    n = rigs.cores()
    return [("half", max(1, n // 2)), ("all", n)]


def plan_latency(suite: Suite) -> list[Trial]:
    ways = [w for w in ECHOES if suite.has(w.peer)]

    def make(w: Echo, t: int) -> Trial:
        label = w.label.format(spin_us=suite.opts.spin_us)
        return Trial(
            f"round trip, {label} {_of(t, suite)}",
            partial(suite.echo_trial, w, "quiet", 0),
            group="echo",
        )

    return list(_alternate(suite, ways, make))


def plan_loaded(suite: Suite) -> list[Trial]:
    ways = [w for w in ECHOES if w.loaded and suite.has(w.peer)]
    trials: list[Trial] = []
    for load, busy in _loads():

        def make(w: Echo, t: int, load: str = load, busy: int = busy) -> Trial:
            label = w.label.format(spin_us=suite.opts.spin_us)
            return Trial(
                f"round trip, {busy} busy, {label} {_of(t, suite)}",
                partial(suite.echo_trial, w, load, busy),
                group="echo",
                load=busy,
            )

        trials.extend(_alternate(suite, ways, make))
    return trials


def plan_router(suite: Suite) -> list[Trial]:
    ways = [w for w in ROUTER_ECHOES if suite.has(w.peer)]

    def make(w: Echo, t: int) -> Trial:
        label = w.label.format(spin_us=suite.opts.spin_us)
        return Trial(
            f"round trip, {label} {_of(t, suite)}",
            partial(suite.echo_trial, w, "quiet", 0, "router"),
            group="router",
        )

    return list(_alternate(suite, ways, make))


SECTIONS: dict[str, Callable[[Suite], list[Trial]]] = {
    "throughput": plan_throughput,
    "tcp": plan_tcp,
    "large": plan_large,
    "sweep": plan_sweep,
    "fanin": _fanin("fanin"),
    "fanin-nice": _fanin("fanin-nice", nice=FANIN_NICE),
    "fanin-quiet": _fanin("fanin-quiet", quiet=True),
    "latency": plan_latency,
    "loaded": plan_loaded,
    "router": plan_router,
    "connect": lambda s: [Trial("connect -> first message delivered", s.connect_time)],
    "memory": lambda s: [Trial("memory: bound socket, and per connection", s.memory)],
    "idle": lambda s: [Trial(f"idle CPU with {s.opts.idle_peers} connected peers", s.idle)],
    "ring": lambda s: [Trial("ring microbenchmark, one process", s.ring)],
}


def _main_size(sizes: tuple[int, ...]) -> int:
    """1 KiB if it is among *sizes*, else the largest below it, else the smallest."""
    if MAIN_SIZE in sizes:
        return MAIN_SIZE
    below = [s for s in sizes if s < MAIN_SIZE]
    return max(below) if below else min(sizes)


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
    with contextlib.suppress(ImportError):
        import zmq

        info["pyzmq"] = f"{zmq.__version__} (libzmq {zmq.zmq_version()})"
    with contextlib.suppress(ImportError):
        from importlib.metadata import version

        import iceoryx2  # noqa: F401

        info["iceoryx2"] = version("iceoryx2")
    return info
