"""Running a bench session: its trials in order, each figure's trials gathered.

The ``Runner`` asks each registered section (``suite.SECTIONS``) for its
trials, runs them one by one, keeping a rig of worker processes alive while
consecutive trials share a group and adding busy processes where a trial
asks for load, and returns the ``Run``.  ``stream_trial`` and
``echo_trial`` are the two kinds of trial most sections are made of: one
throughput window, one window of round trips.

Every trial runs its sides in separate processes, in a private shmsock
root that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import statistics
import tempfile
import time
from array import array
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from . import DEFAULT_KINDS, KINDS, SWEEP_SIZES, rigs
from .figures import Figure, Run, machine, size_name
from .peers import PEERS, QUIET_SENDERS, Echo, Stream
from .protocol import samples_of, summary

#: The size of the figures measured at one size only (round trips, fan-in,
#: the peers that are not measured at every --sizes).
MAIN_SIZE = 1024
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
class Trial:
    label: str  # for the progress line
    run: Callable[[], None]
    group: str = ""  # rigs live while consecutive trials share a group
    load: int = 0  # busy processes while it runs


Plan = Callable[[Any], list[Trial]]  # a section: the runner -> its trials


class Runner:
    """Runs the trials of a bench session and keeps their figures."""

    def __init__(
        self, opts: Options, sections: Mapping[str, Plan], progress: TextIO | None = None
    ) -> None:
        self.sections = sections
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
                trials.extend(self.sections[kind](self))
        return trials

    def run(self) -> Run:
        trials = self.plan()
        self.total = len(trials)
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.tmp = tempfile.mkdtemp(prefix="shmsock-bench-", dir=base)
        saved = os.environ.get("SHMSOCK_ROOT")
        os.environ["SHMSOCK_ROOT"] = self.tmp  # for the one-process figures (ring)
        started = datetime.datetime.now(datetime.UTC)
        load_before = os.getloadavg()[0]
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
            machine=machine(load_before),
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
        rig = self.rigs[key] = rigs.Rig(f"{way.label}, {size_name(size)}")
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
