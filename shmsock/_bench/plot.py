"""Charts of a run (``shmsock bench --plot DIR``), with matplotlib.

Imported only when plotting: matplotlib is in the ``bench`` extra, and
nothing else needs it.  ``charts`` builds the figures (the tests look into
them), ``write`` saves them as PNG files.

- ``throughput.png``: messages per second and GB/s against the message
  size, on log axes, one line per way (shmsock's call styles bold), the
  range of the trials shaded, memcpy's rate as the ceiling.  From the
  sweep when the run has one, else from the throughput figures.
- ``roundtrip.png``: p50, p99 and p99.9 of every round trip, one panel per
  load (quiet, half the cores busy, all of them).
- ``fanin.png``: the fan-in's aggregate rate per way, with the range.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

try:
    from matplotlib.figure import Figure as Chart
    from matplotlib.ticker import FixedLocator, NullLocator
except ImportError:  # pragma: no cover (the message is the point)
    raise ImportError(
        "charts need matplotlib: pip install 'shmsock[bench]' (or pip install matplotlib)"
    ) from None

from .report import SHORT, load_title
from .suite import FANIN_SENDERS, Figure, Run, _size

# shmsock's call styles in strong colours, the peers in the rest of tab10.
STYLE_COLOURS = {"await": "#d62728", "nowait": "#ff7f0e", "batch": "#8c2d04", "iter": "#e377c2"}
PEER_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#7f7f7f", "#bcbd22", "#8c564b"]
PERCENTILES = (("p50", "#1f77b4"), ("p99", "#ff7f0e"), ("p99.9", "#d62728"))


def charts(run: Run) -> dict[str, Chart]:
    """The charts this run has data for, by file name (without .png)."""
    out = {}
    tp = _throughput(run)
    if tp is not None:
        out["throughput"] = tp
    rt = _roundtrip(run)
    if rt is not None:
        out["roundtrip"] = rt
    fi = _fanin(run)
    if fi is not None:
        out["fanin"] = fi
    return out


def write(run: Run, directory: str) -> list[str]:
    """Save every chart of *run* into *directory* (made if need be); their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, chart in charts(run).items():
        path = os.path.join(directory, f"{name}.png")
        chart.savefig(path, dpi=110)
        paths.append(path)
    return paths


def _subtitle(run: Run) -> str:
    m = run.machine
    when = run.started[:10] if run.started else ""
    trials = run.options.get("trials")
    of = f", median of {trials} trials" if trials else ""
    load = f" (load average {m['load']})" if "load" in m else ""
    return (
        f"shmsock {m.get('shmsock', '?')}, Python {m.get('python', '?')},"
        f" {m.get('cpus', '?')} CPUs{load}, {when}{of}"
    )


def _colour(f: Figure, peers: list[str]) -> str:
    if f.way == "memcpy":
        return "black"
    if f.peer == "shmsock":
        return STYLE_COLOURS.get(f.style, "#d62728")
    key = f.way.removesuffix("-zero-copy")  # a zero-copy line is dashed, same colour
    if key not in peers:
        peers.append(key)
    return PEER_COLOURS[peers.index(key) % len(PEER_COLOURS)]


def _lines(figs: Iterable[Figure]) -> dict[str, list[Figure]]:
    ways: dict[str, list[Figure]] = {}
    for f in figs:
        ways.setdefault(f.way, []).append(f)
    for points in ways.values():
        points.sort(key=lambda f: f.size)
    return ways


def _throughput(run: Run) -> Chart | None:
    figs = [f for f in run.figures if f.section == "sweep"]
    source = "the size sweep"
    if not figs:
        figs = [f for f in run.figures if f.section == "throughput" and f.style != "iter"]
        source = "the throughput figures"
    figs = [f for f in figs if f.trials and not f.na]
    if not figs:
        return None
    chart = Chart(figsize=(14, 6.2), layout="constrained")
    msg_ax, gb_ax = chart.subplots(1, 2)
    sizes = sorted({f.size for f in figs})
    peers: list[str] = []
    for points in _lines(figs).values():
        first = points[0]
        xs = [f.size for f in points]
        colour = _colour(first, peers)
        mine = first.peer == "shmsock"
        style = {
            "color": colour,
            "linewidth": 2.6 if mine else 1.4,
            "linestyle": ":" if first.way == "memcpy" else "--" if first.zero_copy else "-",
            "marker": "o" if mine else ".",
            "markersize": 5,
        }
        label = first.label + (
            " (zero-copy)" if first.zero_copy and "zero" not in first.label else ""
        )
        for ax, scale in ((msg_ax, 1e6), (gb_ax, None)):
            ys = [_per_s(f, scale) for f in points]
            ax.plot(xs, ys, label=label, **style)
            if all(len(f.trials) > 1 for f in points):
                lo = [_per_s(f, scale, min(f.trials)) for f in points]
                hi = [_per_s(f, scale, max(f.trials)) for f in points]
                ax.fill_between(xs, lo, hi, color=colour, alpha=0.12, linewidth=0)
    for ax, unit in ((msg_ax, "messages per second"), (gb_ax, "GB/s")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes, [_size(s).replace(" ", "\N{NO-BREAK SPACE}") for s in sizes])
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_xlabel("message size")
        ax.set_ylabel(unit)
        ax.grid(True, which="major", alpha=0.3)
    msg_ax.set_title("Throughput, PUSH -> PULL between two processes")
    ceiling = any(f.way == "memcpy" for f in figs)
    gb_ax.set_title("The same in GB/s" + ("; memcpy: one copy, one core" if ceiling else ""))
    handles, labels = msg_ax.get_legend_handles_labels()
    chart.legend(handles, labels, loc="outside right center", fontsize=9, frameon=False)
    chart.suptitle(f"{_subtitle(run)}; from {source}; shaded: range of the trials", fontsize=9)
    return chart


def _per_s(f: Figure, scale: float | None, value: float | None = None) -> float:
    """A figure's rate (stored in M msg/s) as messages per second, or GB/s without *scale*."""
    v = f.value if value is None else value
    return v * 1e6 if scale else v * 1e6 * f.size / 1e9


def _roundtrip(run: Run) -> Chart | None:
    figs = [f for f in run.figures if f.section == "latency" and f.trials and not f.na]
    if not figs:
        return None
    loads = [load for load in ("quiet", "half", "all") if any(f.load == load for f in figs)]
    ways: list[str] = []
    labels: dict[str, str] = {}
    for f in figs:
        if f.way not in ways:
            ways.append(f.way)
            labels[f.way] = f.label
    chart = Chart(figsize=(5 + 4 * len(loads), 1.6 + 0.42 * len(ways)), layout="constrained")
    axes = chart.subplots(1, len(loads), sharex=True, sharey=True, squeeze=False)[0]
    height = 0.26
    for ax, load in zip(axes, loads, strict=True):
        rows = {f.way: f for f in figs if f.load == load}
        for i, (name, colour) in enumerate(PERCENTILES):
            ys, xs = [], []
            for w, way in enumerate(ways):
                row = rows.get(way)
                if row is None:
                    continue
                ys.append(w + (i - 1) * height)
                xs.append(_percentile(row, name))
            ax.barh(ys, xs, height=height, color=colour, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("microseconds (log scale), lower is better")
        busy = next((int(f.details.get("busy", 0)) for f in rows.values()), 0)
        ax.set_title(load_title(load, busy))
        for w, way in enumerate(ways):
            row = rows.get(way)
            if row is None:
                ax.text(0.02, w, "not measured under load", transform=ax.get_yaxis_transform(),
                        va="center", fontsize=8, color="grey")  # fmt: skip
            else:
                ax.text(row.value, w - height, f" {row.value:.3g}", va="center", fontsize=7)
        ax.grid(True, axis="x", which="major", alpha=0.3)
    axes[0].set_yticks(range(len(ways)), [labels[w] for w in ways])
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower right", fontsize=9)
    chart.suptitle(
        f"Round trip, 1 KiB each way between two processes; {_subtitle(run)}", fontsize=10
    )
    return chart


def _percentile(f: Figure, name: str) -> float:
    d = f.details
    if name == "p50":
        return f.value
    if name == "p99":
        return d.get("p99_us", f.value)
    return d.get("all_p999_us", d.get("p999_us", f.value))


def _fanin(run: Run) -> Chart | None:
    figs = [f for f in run.figures if f.section.startswith("fanin") and f.trials and not f.na]
    if not figs:
        return None
    kinds = [k for k in ("fanin", "fanin-nice", "fanin-quiet") if any(f.section == k for f in figs)]
    ways: list[str] = []
    for f in figs:
        if f.way not in ways:
            ways.append(f.way)
    chart = Chart(figsize=(4 + 2.2 * len(kinds), 4.6), layout="constrained")
    ax = chart.subplots()
    width = 0.8 / len(ways)
    peers: list[str] = []
    for i, way in enumerate(ways):
        xs, ys, lo, hi = [], [], [], []
        colour = "#d62728"
        label = way
        for k, kind in enumerate(kinds):
            bar = next((f for f in figs if f.section == kind and f.way == way), None)
            if bar is None:
                continue
            colour = _colour(bar, peers)
            label = "shmsock (batch)" if bar.peer == "shmsock" else SHORT.get(bar.way, bar.label)
            xs.append(k + (i - (len(ways) - 1) / 2) * width)
            ys.append(bar.value)
            lo.append(bar.value - min(bar.trials))
            hi.append(max(bar.trials) - bar.value)
        ax.bar(xs, ys, width=width, color=colour, label=label, yerr=[lo, hi], capsize=4)
    names = {"fanin": "fan-in", "fanin-nice": "producers at nice 10",
             "fanin-quiet": "+ 1 quiet producer"}  # fmt: skip
    ax.set_xticks(range(len(kinds)), [names[k] for k in kinds])
    ax.set_ylabel("M msg/s, all producers together (higher is better)")
    ax.set_title(f"Fan-in: {FANIN_SENDERS} producer processes -> 1 PULL", fontsize=11)
    ax.legend(fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    chart.suptitle(_subtitle(run) + "; bars: range of the trials", fontsize=8)
    return chart
