"""The ``shmsock bench`` suite: its sections, and the trials each one plans.

Each *section* (one ``--only`` kind) is a plan function in ``SECTIONS``
that lists its trials; the ``Runner`` (``runner.py``) runs them, and the
way a section is printed is in ``report.py``.  A trial is one measured
window of one way (see ``rigs.py``), so a figure is the median of several
trials, and the trials of a section's ways alternate: every way's first
trial, then every way's second, and so on (``_alternate``), so that a drift
of the machine touches them all alike.

To add a section (docs/performance.md, "Adding a section"):

1. write ``plan_NAME(suite: Suite) -> list[Trial]`` here: most are a loop
   over ways, sizes and trials making ``Trial``s that call
   ``suite.stream_trial`` or ``suite.echo_trial`` (a new kind of peer or
   of way goes in ``peers/``);
2. register it in ``SECTIONS`` below, and its kind in ``KINDS`` in
   ``__init__.py`` (the order they run in; add it to the kinds left out of
   ``DEFAULT_KINDS`` if it is opt-in);
3. give it a table in ``report.TABLES`` (and a chart in ``plot.py`` if it
   has one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TextIO

from . import rigs
from .figures import FORMAT, Figure, Run, machine, size_name
from .oneoff import connect_time, idle, memcpy, memory, ring_figures
from .peers import (
    ECHOES,
    FANIN,
    QUIET_SENDERS,
    ROUTER_ECHOES,
    STREAMS,
    TCP_STREAMS,
    Echo,
    Stream,
    fanout,
    shm,
)
from .protocol import QUIET
from .runner import FIRST_WARMUP, MAIN_SIZE, Options, Runner, Trial

__all__ = [
    "FANIN_NICE",
    "FANIN_SENDERS",
    "FANOUT_SUBSCRIBERS",
    "FORMAT",
    "LARGE_SIZES",
    "LARGE_WINDOWS",
    "MAIN_SIZE",
    "SECTIONS",
    "Figure",
    "Options",
    "Run",
    "Suite",
    "Trial",
    "machine",
]

#: The message sizes of the "large" figures: each goes whole through a bulk
#: region on shm:// (frames above 64 KiB; 64 KiB itself still fits the ring).
LARGE_SIZES = (64 << 10, 1 << 20, 16 << 20)
#: Windows of each large figure per --trials: its figure is the median of
#: three times as many windows as the others', each way's alternating with
#: its peers' as everywhere.  pyzmq's rate at 64 KiB moved by more than 2x
#: between one trial and the next on a shared machine (four threads on two
#: cores), so a median of three left the ratios to chance; a median of
#: nine, at the same window length, kept them within a fifth of each other
#: over four runs (docs/performance.md, "How stable the large figures are").
LARGE_WINDOWS = 3
# "fanin-nice" runs the fan-in with the producers at this niceness: with more
# busy processes than cores, the fair scheduler gives the one receiver only
# its share (see docs/performance.md).
FANIN_NICE = 10
FANIN_SENDERS = 8
#: The subscribers of the PUB/SUB fan-out figure.
FANOUT_SUBSCRIBERS = 8

_size = size_name  # the name the plans (and report.py, plot.py) use


class Suite(Runner):
    """A bench session of the sections registered in ``SECTIONS``."""

    def __init__(self, opts: Options, progress: TextIO | None = None) -> None:
        super().__init__(opts, SECTIONS, progress)

    def fanout_trial(self, way: fanout.FanWay, size: int) -> None:
        """One window of a PUB -> FANOUT_SUBSCRIBERS SUB rig (see peers/fanout.py)."""
        o = self.opts
        n = FANOUT_SUBSCRIBERS
        fid = f"pubsub/{way.key}"
        fig = self.figure(
            fid, section="pubsub", label=way.label, unit="M msg/s", higher_is_better=True,
            peer=way.peer, way=way.key, size=size, style=way.style,
        )  # fmt: skip
        if fig.na:
            return
        try:
            rig = self.rigs.get(fid)
            first = rig is None
            if rig is None:
                spec = self.spec(size=size, subscribers=n, style=way.style)
                rig = self.rigs[fid] = rigs.Rig(f"PUB -> {n} SUB, {way.label}, {_size(size)}")
                rig.start(way.publisher, spec, "publisher")
                for i in range(n):
                    rig.start(way.subscriber, spec, f"subscriber {i}")
            warmup = min(FIRST_WARMUP, 2 * o.seconds) if first else min(o.warmup, o.seconds)
            params = {"seconds": o.seconds, "warmup": warmup}
            r = rigs.fanout_window(rig, params, o.seconds + warmup + 30)
        except rigs.WorkerError as exc:
            self._failed(fig, fid, exc)
            return
        fig.add(r["rate"] / 1e6, slowest=r["slowest"] / 1e6, fastest=r["fastest"] / 1e6,
                checked=r["checked"])  # fmt: skip


def _streams(suite: Suite, keep: Callable[[Stream], bool]) -> list[Stream]:
    return [w for w in STREAMS if keep(w) and suite.has(w.peer)]


def _alternate(
    suite: Suite, ways: list[Any], make: Callable[[Any, int], Trial], per_trial: int = 1
) -> Iterator[Trial]:
    """Every way's first trial, then every way's second, and so on.

    *per_trial* windows for each of --trials (see LARGE_WINDOWS).
    """
    for t in range(suite.opts.trials * per_trial):
        for w in ways:
            yield make(w, t)


def _of(t: int, suite: Suite, per_trial: int = 1) -> str:
    n = suite.opts.trials * per_trial
    return f"({t + 1}/{n})" if n > 1 else ""


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
                f"{_size(size)} messages, {w.label} {_of(t, suite, LARGE_WINDOWS)}",
                partial(suite.stream_trial, f"large/{size}/{w.key}", "large", w, size),
                group=f"large/{size}",
            )

        trials.extend(_alternate(suite, ways, make, LARGE_WINDOWS))
    return trials


def plan_sweep(suite: Suite) -> list[Trial]:
    trials: list[Trial] = []
    ways = _streams(suite, lambda w: w.sweep)
    for size in suite.opts.sweep_sizes:
        trials.append(Trial(f"sweep {_size(size)}, memcpy", partial(memcpy, suite, size)))

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
        # The quiet sender speaks each peer's API: only the peers that have one.
        ways = [w for w in FANIN if suite.has(w.peer) and (not quiet or w.peer in QUIET_SENDERS)]
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


def plan_pubsub(suite: Suite) -> list[Trial]:
    """PUB -> 8 SUB at 1 KiB (the --sizes value nearest it), every message to every one."""
    size = _main_size(suite.opts.sizes)
    ways = [w for w in fanout.WAYS if suite.has(w.peer)]

    def make(w: fanout.FanWay, t: int) -> Trial:
        label = f"PUB -> {FANOUT_SUBSCRIBERS} SUB, {_size(size)}, {w.label}"
        return Trial(
            f"{label} {_of(t, suite)}",
            partial(suite.fanout_trial, w, size),
            group="pubsub",
        )

    return list(_alternate(suite, ways, make))


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
    "pubsub": plan_pubsub,
    "latency": plan_latency,
    "loaded": plan_loaded,
    "router": plan_router,
    "connect": lambda s: [Trial("connect -> first message delivered", partial(connect_time, s))],
    "memory": lambda s: [Trial("memory: bound socket, and per connection", partial(memory, s))],
    "idle": lambda s: [
        Trial(f"idle CPU with {s.opts.idle_peers} connected peers", partial(idle, s))
    ],
    "ring": lambda s: [Trial("ring microbenchmark, one process", partial(ring_figures, s))],
}


def _main_size(sizes: tuple[int, ...]) -> int:
    """1 KiB if it is among *sizes*, else the largest below it, else the smallest."""
    if MAIN_SIZE in sizes:
        return MAIN_SIZE
    below = [s for s in sizes if s < MAIN_SIZE]
    return max(below) if below else min(sizes)
