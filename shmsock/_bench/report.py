"""Tables of a run, and two runs compared.

``render`` prints a run section by section; ``compare`` prints every figure
of two runs side by side with the ratio, and marks the changes that lie
beyond the spread of the trials (``verdict``).  A section's table is one
function in ``TABLES``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TextIO

from .suite import FANIN_SENDERS, FANOUT_SUBSCRIBERS, Figure, Run, _size

SHORT = {
    "pyzmq": "pyzmq",
    "zmq-asyncio": "zmq.asyncio",
    "unix": "unix",
    "mp-queue": "mp.Queue",
    "mp-pipe": "mp.Pipe",
    "iceoryx2": "iceoryx2",
    "iceoryx2-zero-copy": "iox2 0-copy",
}
LOADS = {"quiet": "quiet (no load added)", "half": "{n}, half the cores", "all": "{n}, every core"}
ZERO_COPY_NOTE = (
    "  * zero-copy: compare only with shmsock's zero-copy lease and loan figures"
    " (the large-message table), never with a copying figure\n"
)
LARGE_ZERO_COPY_NOTE = (
    "  * zero-copy: the sender fills a loan and the receiver reads a lease in place,"
    " touching only the 8-byte stamp of each message\n"
)


def render(run: Run, out: TextIO) -> None:
    m = run.machine
    peers = ", ".join(f"{k} {m[k]}" for k in ("pyzmq", "iceoryx2") if k in m)
    out.write(
        f"shmsock bench  (shmsock {m.get('shmsock', '?')}, Python {m.get('python', '?')},"
        f" trio {m.get('trio', '?')}, {m.get('cpus', '?')} CPUs{', ' + peers if peers else ''})\n"
    )
    if "load" in m:
        out.write(f"Load average (runnable processes) over the run: {m['load']}.\n")
    trials = run.options.get("trials")
    if trials:
        out.write(
            f"Each figure is the median of {trials} trials, alternating with its peers';"
            " [min-max] is their range.\n"
        )
    for line in run.missing:
        out.write(f"note: {line}\n")
    for section, table in TABLES.items():
        figs = [f for f in run.figures if _table_of(f.section) == section]
        if figs:
            table(figs, out)
    out.write("\n")


# -- numbers -----------------------------------------------------------------------------


def _num(v: float) -> str:
    """A compact rate: 3 significant digits with k or M."""
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _spread(f: Figure, digits: int = 3) -> str:
    if len(f.trials) < 2:
        return ""
    return f"[{min(f.trials):.{digits}g}-{max(f.trials):.{digits}g}]"


def _ratio(a: Figure | None, b: Figure | None) -> str:
    if a is None or b is None or a.na or b.na or not a.value or not b.value:
        return "-"
    return f"{a.value / b.value:.2f}x"


def _value(f: Figure, width: int = 8) -> str:
    if f.na:
        return f"{'n/a':>{width}}"
    return f"{f.value:{width}.3f}"


def _na_reason(f: Figure) -> str:
    return f"  ({f.na})" if f.na else ""


# -- sections ----------------------------------------------------------------------------


def _throughput(figs: list[Figure], out: TextIO) -> None:
    for size in sorted({f.size for f in figs}):
        rows = [f for f in figs if f.size == size]
        out.write(
            f"\nThroughput, PUSH -> PULL between two processes, {_size(size)} messages"
            " (M msg/s, higher is better)\n"
        )
        for f in rows:
            mark = " *" if f.zero_copy else ""
            gb = f.details.get("gb_per_s")
            gbs = f"  {gb:6.3f} GB/s" if gb is not None and not f.na else ""
            out.write(f"  {f.label + mark:<40} {_value(f)} {_spread(f):<15}{gbs}{_na_reason(f)}\n")
        _ratios(rows, out)
        if any(f.zero_copy for f in rows):
            out.write(ZERO_COPY_NOTE)


def _ratios(rows: list[Figure], out: TextIO) -> None:
    """shmsock's figures divided by each copying peer's, in a grid."""
    mine = [f for f in rows if f.peer == "shmsock"]
    peers = [f for f in rows if f.peer != "shmsock" and not f.zero_copy]
    if not mine or not peers:
        return
    heads = [SHORT.get(p.way, p.way) for p in peers]
    width = max(7, *(len(h) for h in heads))
    out.write(f"  {'shmsock / peer':<28}" + "".join(f"{h:>{width + 1}}" for h in heads) + "\n")
    for f in mine:
        name = f.label.removeprefix("shmsock ")
        out.write(f"    {name:<26}" + "".join(f"{_ratio(f, p):>{width + 1}}" for p in peers) + "\n")


#: The goals of issue 21: (shmsock way, peer way, at least this ratio).
TCP_GOALS = (
    ("tcp-shmsock-batch", "tcp-pyzmq", 1.0),
    ("tcp-shmsock-nowait", "tcp-pyzmq", 1.0),
    ("tcp-shmsock-await", "tcp-zmq-asyncio", 2.0),
    ("tcp-recv-batch", "tcp-pyzmq", 1.0),
    ("tcp-send-batch", "tcp-pyzmq", 1.0),
    ("tcp-recv-await", "tcp-zmq-asyncio", 2.0),
)


def _tcp(figs: list[Figure], out: TextIO) -> None:
    size = figs[0].size
    out.write(
        f"\ntcp:// on loopback, PUSH -> PULL between two processes, {_size(size)} messages"
        " (M msg/s, higher is better; then each side's CPU time per message, all its"
        " threads, libzmq's too: receiver / sender)\n"
    )
    for f in figs:
        out.write(f"  {f.label:<40} {_value(f)} {_spread(f):<15}{_cpu_cell(f)}{_na_reason(f)}\n")
    by_way = {f.way: f for f in figs}
    lines = []
    for mine, theirs, goal in TCP_GOALS:
        a, b = by_way.get(mine), by_way.get(theirs)
        if a is None or b is None:
            continue
        ratio = _ratio(a, b)
        met = "" if ratio == "-" else ("  (goal met)" if a.value / b.value >= goal else "  (below)")
        lines.append(f"    {a.label:<34} / {b.label:<22} {ratio:>7}  goal {goal:.1f}x{met}\n")
    if lines:
        out.write("  shmsock / pyzmq, against issue 21's goals:\n")
        out.writelines(lines)


def _cpu_cell(f: Figure) -> str:
    """A stream's CPU time per message on each side: steadier than the rate on a busy machine."""
    d = f.details
    if f.na or "receiver_us_per_msg" not in d:
        return ""
    return f" {d['receiver_us_per_msg']:5.2f} / {d['senders_us_per_msg']:.2f} us"


def _large(figs: list[Figure], out: TextIO) -> None:
    for size in sorted({f.size for f in figs}):
        rows = [f for f in figs if f.size == size]
        out.write(
            f"\nLarge messages, {_size(size)} each, PUSH -> PULL"
            f" (msg/s, higher is better; 1 msg/s = {size / 1e6:.3g} MB/s;"
            f" median of {max(len(f.trials) for f in rows)} windows)\n"
        )
        pyzmq = next((f for f in rows if f.peer == "pyzmq"), None)
        for f in rows:
            value = "n/a" if f.na else f"{f.value * 1e6:9.1f}"
            spread = (
                f"[{min(f.trials) * 1e6:.4g}-{max(f.trials) * 1e6:.4g}]"
                if len(f.trials) > 1
                else ""
            )
            ratio = f"  pyzmq {_ratio(f, pyzmq)}" if f.peer == "shmsock" and pyzmq else ""
            mark = " *" if f.zero_copy else ""
            out.write(f"  {f.label + mark:<40} {value:>9} {spread:<15}{ratio}{_na_reason(f)}\n")
        if any(f.zero_copy for f in rows):
            out.write(LARGE_ZERO_COPY_NOTE)


def _sweep(figs: list[Figure], out: TextIO) -> None:
    sizes = sorted({f.size for f in figs})
    ways: dict[str, Figure] = {}
    for f in figs:
        ways.setdefault(f.way, f)
    cell: dict[tuple[str, int], Figure] = {(f.way, f.size): f for f in figs}
    notes: list[str] = []  # one per way: its first reason, with every size it applies to
    na_sizes: dict[str, list[int]] = {}
    for f in sorted(figs, key=lambda f: f.size):
        if f.na:
            na_sizes.setdefault(f.way, []).append(f.size)
    heads = "".join(f"{_short_size(s):>8}" for s in sizes)
    for unit, title in (("msg", "messages per second"), ("gb", "GB/s")):
        out.write(
            f"\nThroughput by message size, PUSH -> PULL ({title}, higher is better;"
            " memcpy is the ceiling: one copy, one core)\n"
        )
        out.write(f"  {'':<40}{heads}\n")
        for way, first in ways.items():
            line = f"  {first.label + (' *' if first.zero_copy else ''):<40}"
            for size in sizes:
                c = cell.get((way, size))
                if c is None:
                    line += f"{'':>8}"
                elif c.na:
                    at = " and ".join(_size(s) for s in na_sizes[way])
                    reason = cell[(way, na_sizes[way][0])].na
                    note = f"{first.label} at {at}: {reason}"
                    if note not in notes:
                        notes.append(note)
                    line += f"{'n/a' + str(notes.index(note) + 1):>8}"
                elif unit == "msg":
                    line += f"{_num(c.value * 1e6):>8}"
                else:
                    line += f"{c.details.get('gb_per_s', c.value * c.size / 1e3):>8.3g}"
            out.write(line + "\n")
    for i, note in enumerate(notes, 1):
        out.write(f"  n/a{i}: {note}\n")
    if any(f.zero_copy for f in figs):
        out.write(ZERO_COPY_NOTE)


def _short_size(n: int) -> str:
    for shift, unit in ((20, "M"), (10, "K")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n}B"


def _fanin(figs: list[Figure], out: TextIO) -> None:
    kinds = sorted({f.section for f in figs}, key=("fanin", "fanin-nice", "fanin-quiet").index)
    for kind in kinds:
        rows = [f for f in figs if f.section == kind]
        if kind == kinds[0]:
            out.write(
                f"\nFan-in, {FANIN_SENDERS} producer processes -> 1 PULL"
                " (M msg/s aggregate, higher is better)\n"
            )
        pyzmq = next((f for f in rows if f.peer == "pyzmq"), None)
        for f in rows:
            if f.peer != "shmsock":
                continue
            ratio = (
                f"  pyzmq {pyzmq.value:.3g} ({_ratio(f, pyzmq)})" if pyzmq and not pyzmq.na else ""
            )
            out.write(f"  {f.label:<44} {_value(f)} {_spread(f):<15}{ratio}{_na_reason(f)}\n")
            out.write(_quiet_line(f, pyzmq))
            out.write(_cpu_line(f.details, "CPU per message:"))
            if pyzmq is not None:
                out.write(_cpu_line(pyzmq.details, "pyzmq:"))
        if not any(f.peer == "shmsock" for f in rows) and pyzmq is not None:
            out.write(f"  {pyzmq.label:<44} {_value(pyzmq)} {_spread(pyzmq)}\n")
        mine = next((f for f in rows if f.peer == "shmsock"), None)
        for f in rows:
            if f.peer in ("shmsock", "pyzmq"):
                continue
            ratio = f"  shmsock {_ratio(mine, f)}" if mine is not None and not f.na else ""
            out.write(f"  {f.label:<44} {_value(f)} {_spread(f):<15}{ratio}{_na_reason(f)}\n")
            out.write(_cpu_line(f.details, "CPU per message:"))


def _pubsub(figs: list[Figure], out: TextIO) -> None:
    size = figs[0].size
    out.write(
        f"\nFan-out, PUB -> {FANOUT_SUBSCRIBERS} SUB processes, {_size(size)}, all subscribed,"
        " none dropped (M msg/s delivered in all, higher is better)\n"
    )
    pyzmq = next((f for f in figs if f.peer == "pyzmq"), None)
    for f in figs:
        ratio = ""
        if f.peer == "shmsock" and pyzmq is not None and not pyzmq.na:
            ratio = f"  {_ratio(f, pyzmq)} pyzmq"
        d = f.details
        slow = f"  slowest SUB {d['slowest']:.3g}" if "slowest" in d and not f.na else ""
        out.write(f"  {f.label:<36} {_value(f)} {_spread(f):<15}{ratio}{slow}{_na_reason(f)}\n")


def _quiet_line(f: Figure, pyzmq: Figure | None) -> str:
    """How long the quiet sender's messages waited, for the table."""
    d = f.details
    if "quiet_p50_ms" not in d:
        return ""
    line = (
        f"    {'quiet sender:':<16} its messages waited p50 {d['quiet_p50_ms']:.2f} ms,"
        f" p99 {d['quiet_p99_ms']:.2f} ms, max {d['quiet_max_ms']:.2f} ms\n"
    )
    if pyzmq is not None and "quiet_p50_ms" in pyzmq.details:
        p = pyzmq.details
        line += (
            f"    {'':<16} pyzmq: p50 {p['quiet_p50_ms']:.2f} ms,"
            f" p99 {p['quiet_p99_ms']:.2f} ms, max {p['quiet_max_ms']:.2f} ms\n"
        )
    return line


def _cpu_line(d: dict[str, float], title: str) -> str:
    """A fan-in's CPU split (see rigs.cpu_shares), for the table."""
    if "senders_us_per_msg" not in d:
        return ""
    return (
        f"    {title:<16} senders {d['senders_us_per_msg']:.2f} us,"
        f" receiver {d['receiver_us_per_msg']:.2f} us"
        f" ({d['receiver_cores']:.0%} of a core);"
        f" senders slept {d['senders_sleeps_per_s']:,.0f}/s\n"
    )


def _latency(figs: list[Figure], out: TextIO, what: str = "Round trip") -> None:
    out.write(
        f"\n{what}, 1 KiB each way between two processes (microseconds, lower is better;"
        "\np50 and p99: median of the trials; p99.9 and max: over all their round trips)\n"
    )
    for load in ("quiet", "half", "all"):
        rows = [f for f in figs if f.load == load]
        if not rows:
            continue
        busy = int(rows[0].details.get("busy", 0))
        out.write(
            f"  {load_title(load, busy):<38}{'p50':>8}{'p99':>8}{'p99.9':>8}"
            f"{'max':>9}   x pyzmq p50, p99\n"
        )
        pyzmq = next((f for f in rows if f.way == "pyzmq"), None)
        for f in rows:
            if f.na:
                out.write(f"    {f.label:<36}{'n/a':>8}{_na_reason(f)}\n")
                continue
            d = f.details
            line = (
                f"    {f.label:<36}{f.value:8.1f}{d.get('p99_us', 0):8.1f}"
                f"{d.get('all_p999_us', 0):8.1f}{d.get('all_max_us', 0):9.1f}"
            )
            if f.peer == "shmsock" and pyzmq is not None and not pyzmq.na:
                p99 = d.get("p99_us", 0) / max(pyzmq.details.get("p99_us", 0), 1e-9)
                line += f"   {f.value / pyzmq.value:.2f}x, {p99:.2f}x"
            out.write(line + "\n")


def load_title(load: str, busy: int) -> str:
    """'quiet (no load added)', '1 busy process, half the cores', ..."""
    n = f"{busy} busy process{'' if busy == 1 else 'es'}"
    return LOADS[load].format(n=n).replace(" busy busy", " busy")


def _simple(title: str, fmt: Callable[[Figure], str]) -> Callable[[list[Figure], TextIO], None]:
    def table(figs: list[Figure], out: TextIO) -> None:
        out.write(f"\n{title}\n")
        for f in figs:
            out.write(f"  {f.label:<34} {fmt(f)}\n")

    return table


def _connect(f: Figure) -> str:
    return (
        f"median {f.value:.3f} ms  max {f.details.get('max_ms', 0):.3f} ms"
        f"  ({f.details.get('rounds', 0):.0f} connects)"
    )


TABLES: dict[str, Callable[[list[Figure], TextIO], None]] = {
    "throughput": _throughput,
    "tcp": _tcp,
    "large": _large,
    "sweep": _sweep,
    "fanin": _fanin,  # with fanin-nice and fanin-quiet
    "pubsub": _pubsub,
    "latency": _latency,
    "router": lambda figs, out: _latency(figs, out, "ROUTER <-> DEALER round trip"),
    "connect": _simple("Connect -> first message delivered (ms)", _connect),
    "memory": _simple(
        "Memory (MB: private RSS growth + shared memory)", lambda f: f"{f.value:8.3f} MB"
    ),
    "idle": _simple("Idle CPU (% of one core, both processes)", lambda f: f"{f.value:8.3f} % CPU"),
    "ring": _simple(
        "Ring microbenchmark, one process, one C call per batch (M records/s)",
        lambda f: f"{f.value:8.3f} M rec/s",
    ),
}


def _table_of(section: str) -> str:
    """The table a section's figures go in: the fan-in kinds share one."""
    return "fanin" if section.startswith("fanin") else section


# -- two runs ----------------------------------------------------------------------------

RULE = (
    "A change is marked when the new median lies outside the old trials' range and the"
    " old median outside the new trials' range; anything less is within the spread of"
    " the trials (noise).  A figure with a single trial has no spread: '?'."
)


def verdict(old: list[float], new: list[float], higher_is_better: bool) -> str:
    """'better', 'WORSE', '' (within the spread) or '?' (a side has one trial)."""
    if len(old) < 2 or len(new) < 2:
        return "?"
    mo, mn = statistics.median(old), statistics.median(new)
    if min(old) <= mn <= max(old) or min(new) <= mo <= max(new):
        return ""
    return "better" if (mn > mo) == higher_is_better else "WORSE"


def _title(f: Figure) -> str:
    if f.section in ("throughput", "sweep"):
        return f"{_size(f.size)} {f.label}"
    if f.section == "latency":
        return f"{f.load}: {f.label}"
    if f.section == "router":
        return f"ROUTER <-> DEALER: {f.label}"
    return f.label


def _pairs(f: Figure) -> list[tuple[str, list[float], bool]]:
    """The figure's compared series: (name, trials, higher is better)."""
    series = [("", f.trials, f.higher_is_better)]
    if f.section in ("latency", "router") and "p99_us" in f.metrics:
        series.append((" p99", f.metrics["p99_us"], False))
    return series


def compare(old: Run, new: Run, out: TextIO) -> dict[str, int]:
    """Print every figure of *new* beside *old*'s; returns the counts of each verdict."""
    out.write(
        f"shmsock bench --compare: {old.started or 'old run'} -> {new.started or 'new run'}\n"
    )
    for k in ("shmsock", "python", "cpus", "platform"):
        if old.machine.get(k) != new.machine.get(k):
            out.write(f"  note: {k} differs: {old.machine.get(k)} -> {new.machine.get(k)}\n")
    out.write(_wrap(RULE) + "\n")
    before = {f.id: f for f in old.figures}
    after = {f.id: f for f in new.figures}
    counts = {"better": 0, "WORSE": 0, "": 0, "?": 0, "n/a": 0}
    section = None
    for f in new.figures:
        o = before.get(f.id)
        if f.section != section:
            section = f.section
            out.write(f"\n{section} ({f.unit}; old [range] -> new [range], new/old)\n")
        if o is None:
            out.write(f"  {_title(f):<52} only in the new run\n")
            continue
        for suffix, new_trials, hib in _pairs(f):
            old_trials = next((t for s, t, _ in _pairs(o) if s == suffix), [])
            name = _title(f) + suffix
            if f.na or o.na or not new_trials or not old_trials:
                why = f.na or o.na or "no trials"
                out.write(f"  {name:<52} n/a ({why})\n")
                counts["n/a"] += 1
                continue
            mark = verdict(old_trials, new_trials, hib)
            counts[mark] += 1
            mo, mn = statistics.median(old_trials), statistics.median(new_trials)
            ratio = f"{mn / mo:.2f}x" if mo else "-"
            out.write(
                f"  {name:<52} {mo:9.4g} {_range(old_trials):<17} -> {mn:9.4g}"
                f" {_range(new_trials):<17} {ratio:>6}  {mark}\n"
            )
    gone = [o for o in old.figures if o.id not in after]
    for o in gone:
        out.write(f"  {_title(o):<52} only in the old run\n")
    out.write(
        f"\n{counts['better']} better, {counts['WORSE']} worse, {counts['']} within the spread"
        f" of the trials, {counts['?']} without a spread, {counts['n/a']} n/a\n"
    )
    return counts


def _range(trials: list[float]) -> str:
    if len(trials) < 2:
        return ""
    return f"[{min(trials):.4g}-{max(trials):.4g}]"


def _wrap(text: str, width: int = 88) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "\n".join(lines)
