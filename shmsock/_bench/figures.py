"""What a bench run records: its figures, and the run that holds them.

A ``Figure`` is one measured figure (one way, one setup) with every trial;
a ``Run`` is a whole session: its figures, the machine, the options.  This
is what ``--json`` saves and ``--compare``, ``--plot`` and ``--from`` read,
so a figure's ``id`` is stable from run to run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import trio

import shmsock

FORMAT = "shmsock-bench/2"


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


def size_name(n: int) -> str:
    """64 B, 16 KiB, 16 MiB: a message size as the tables and charts print it."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


def machine(load_before: float | None = None) -> dict[str, str]:
    """What the figures depend on besides the code: versions, CPUs, and how busy it was.

    ``load`` is the one-minute load average (runnable processes) when the run
    began, if *load_before* is given, and when it ended: on a machine where
    other work runs, the figures say more with it.
    """
    after = f"{os.getloadavg()[0]:.1f}"
    info = {
        "python": platform.python_version(),
        "shmsock": shmsock.__version__,
        "trio": trio.__version__,
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
        "load": after if load_before is None else f"{load_before:.1f} -> {after}",
    }
    with contextlib.suppress(ImportError):
        import zmq

        info["pyzmq"] = f"{zmq.__version__} (libzmq {zmq.zmq_version()})"
    with contextlib.suppress(ImportError):
        from importlib.metadata import version

        import iceoryx2  # noqa: F401

        info["iceoryx2"] = version("iceoryx2")
    return info
