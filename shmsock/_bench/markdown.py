"""A run's figures as Markdown, for the README and the docs: one generated place.

The README's speed table and the docs' description of the charted run are
not written by hand: they are blocks of a file, between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``, that ``update``
rewrites from a saved run (``shmsock bench --from docs/bench/run.json
--update README.md docs/performance.md``).  ``BLOCKS`` maps each NAME to
the function that writes it.  So the figures quoted are always those of the
run the charts were drawn from.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .figures import Figure, Run, size_name
from .runner import MAIN_SIZE

#: shmsock's rows of the speed table: (way, the calls, as a user writes them).
CALLS = (
    ("shmsock-nowait", "`send_nowait` / `recv_nowait`"),
    ("shmsock-batch", "`send_many` / `recv_many`, batches of 64"),
    ("shmsock-await", "`await send()` / `await recv()` per message"),
)
#: The peers' columns: (way, heading).  Zero-copy figures are left out: they
#: compare only with shmsock's zero-copy calls.
PEERS = (
    ("pyzmq", "pyzmq `send`/`recv`"),
    ("zmq-asyncio", "zmq.asyncio `await`"),
    ("unix", "Trio, Unix socket"),
    ("mp-queue", "`multiprocessing.Queue`"),
    ("mp-pipe", "`multiprocessing.Pipe`"),
    ("iceoryx2", "iceoryx2, copying"),
)


TIMES = "\N{MULTIPLICATION SIGN}"


def _ratio(r: float) -> str:
    return f"{r:.2f}{TIMES}" if r < 10 else f"{r:.0f}{TIMES}"


def _main(run: Run) -> tuple[int, dict[str, Figure]]:
    """The size of the speed table, and the throughput figures at it by way."""
    sizes = sorted({f.size for f in run.figures if f.section == "throughput"})
    if not sizes:
        raise ValueError("the run has no throughput figures (run it without --only)")
    size = MAIN_SIZE if MAIN_SIZE in sizes else sizes[-1]
    return size, {f.way: f for f in run.figures if f.section == "throughput" and f.size == size}


def speed_table(run: Run) -> str:
    """shmsock's calls at the main size, in M msg/s and as ratios to every peer."""
    _, by_way = _main(run)
    peers = [(w, h) for w, h in PEERS if w in by_way]
    head = "| shmsock call | M msg/s | " + " | ".join(h for _, h in peers) + " |\n"
    head += "|---" * (2 + len(peers)) + "|\n"
    rows = []
    for way, calls in CALLS:
        f = by_way.get(way)
        if f is None or f.na:
            continue
        cells = []
        for w, _ in peers:
            p = by_way[w]
            cells.append("n/a" if p.na or not p.value else _ratio(f.value / p.value))
        rows.append(f"| {calls} | {f.value:.3g} | " + " | ".join(cells) + " |\n")
    theirs = ["n/a" if by_way[w].na else f"{by_way[w].value:.3g}" for w, _ in peers]
    rows.append("| *the peer itself, M msg/s* | | " + " | ".join(theirs) + " |\n")
    missing = "".join(f"\n{line}\n" for line in run.missing)
    return head + "".join(rows) + missing


def about(run: Run) -> str:
    """One paragraph: when and where the run was made, and how to make another."""
    m = run.machine
    size, _ = _main(run)
    when = run.started.replace("T", " ").replace("+00:00", " UTC") or "an unknown date"
    peers = ", ".join(f"{k} {m[k]}" for k in ("pyzmq", "iceoryx2") if k in m)
    trials = run.options.get("trials", "?")
    load = f" (load average {m['load']} over the run)" if "load" in m else ""
    return (
        f"Run of {when} ({run.seconds:.0f} s): {m.get('cpus', '?')} CPUs{load},"
        f" {m.get('platform', '?')}, Python {m.get('python', '?')},"
        f" shmsock {m.get('shmsock', '?')}, Trio {m.get('trio', '?')}"
        f"{', ' + peers if peers else ''}.  Each figure is the median of {trials}"
        f" trials alternating with its peers'; the speed table is {size_name(size)} messages,"
        " PUSH → PULL between two processes.\n"
    )


BLOCKS: dict[str, Callable[[Run], str]] = {"speed": speed_table, "about": about}
_BLOCK = re.compile(r"(<!-- bench:(\w+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.DOTALL)


def fill(text: str, run: Run) -> str:
    """*text* with every bench block written anew from *run*."""

    def block(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise ValueError(f"unknown bench block {name!r}; known: {', '.join(BLOCKS)}")
        return m.group(1) + BLOCKS[name](run) + m.group(4)

    return _BLOCK.sub(block, text)


def update(path: str, run: Run) -> int:
    """Rewrite the bench blocks of the file at *path*; how many it holds (at least one)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    count = len(_BLOCK.findall(text))
    if not count:
        raise ValueError(f"{path} has no <!-- bench:NAME --> ... <!-- /bench:NAME --> block")
    with open(path, "w", encoding="utf-8") as f:
        f.write(fill(text, run))
    return count
