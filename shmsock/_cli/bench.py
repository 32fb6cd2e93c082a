"""``shmsock bench``: its arguments, and running the bench or reading saved runs.

The measuring is ``shmsock._bench``'s; this is its command line only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._bench import KINDS, SWEEP_SIZES

__all__ = ["add_bench_command"]


BENCH_EPILOG = """\
how it measures:
  Every figure is the median of --trials trials (the large figures: of
  three windows per trial); the trials of the ways that share a table
  alternate (each way's first, then each way's second), so a drift of the
  machine touches them alike, and [min-max] is their range.  Each way runs
  in processes of its own, started once per table and message size;
  throughput trials are timed windows (--seconds), counted at the receiver
  after a warm-up.  Every way does the same work: a sender
  cycles through distinct messages, each starting with a sequence number
  and the sender's id, and the receiver checks every message (whole up to
  2 KiB, the stamp above) and, at the end of each trial, that as many
  arrived as were sent.  A way that cannot send a size says why ("n/a").

figures:
  throughput   PUSH -> PULL between two processes, messages of each --sizes.
               "await" is one `await send()` / `await recv()` per message (a
               Trio checkpoint each, about 5 us here); "nowait" is
               send_nowait/recv_nowait, waiting only when they would block;
               "batch" is batches of 64 messages sent and up to 256
               received, one C call each: up to 20 send_many_nowait /
               recv_many_nowait calls, then one await send_many /
               recv_many (which waits if it must), so a checkpoint per 20
               batches at most.  Each with CRC32C on and off.  "iter" is
               `async for msg in sock` at the receiver (a full checkpoint
               every 64 messages that are already there) against a
               send_nowait sender, CRC on only.  Beside them, every peer;
               the peers marked "everywhere: no" below only at 1 KiB.
  large        64 KiB, 1 MiB and 16 MiB messages PUSH -> PULL: await
               send/recv with CRC on and off (above 64 KiB each message
               goes whole through the connection's bulk region), the
               zero-copy way (the sender fills `async with sock.loan(n)`,
               the receiver reads `recv(copy=False)` in place; both touch
               only the 8-byte stamp), and pyzmq send/recv.
  fanin        8 PUSH processes into one PULL (batch API), aggregate rate,
               and pyzmq's, and 8 processes putting into one
               multiprocessing.Queue.  Below it, where the CPU went while it was
               measured: each side's CPU time per message, the receiver's
               share of a core, and how often the senders slept (voluntary
               context switches, all threads: libzmq's I/O threads count
               too).  With more busy processes than cores the rate is
               about cores / (senders' + receiver's CPU per message).  CPU
               time is read from /proc to the kernel's tick (10 ms).
  fanin-nice   the same with the 8 producers at nice 10 (pyzmq's too), so
               the receiver is not held to a ninth share of the CPU; not in
               the default suite.
  fanin-quiet  the fan-in with a ninth, quiet producer that sends one
               timestamped message every 5 ms: how long its messages wait
               behind the busy ones (p50, p99, max), for shmsock and pyzmq.
               The receivers look at every batch (shmsock, one await
               recv_many each) or message (pyzmq) to find them, so the rate
               beside it is not the fan-in's.  Not in the default suite.
  latency      a round trip of a 1 KiB message between two processes, --rounds
               per trial (at most 0.5 s of them): p50 and p99 (median of
               the trials), p99.9 and max
               (over all of them).  shmsock REQ/REP parked (spin_us=0, the
               default) and with --spin-us on both sides; the floor under
               Trio's rules (each side writing and reading its rings with
               one C call, polling without pause, and taking the one
               checkpoint per send and per receive that every async method
               must: no spinning socket can beat it); and every peer.
  loaded       the round trips of shmsock parked and spinning, pyzmq and
               the Unix socket again, with busy processes at normal
               priority on half the cores, then on all of them (each
               bounded in time and killed when the bench ends, however it
               ends).
  router       a round trip of a 1 KiB message from a DEALER to a ROUTER
               echo server that answers by the routing id, as a broker
               does: shmsock parked and spinning, beside pyzmq's ROUTER and
               DEALER over ipc:// (percentiles as latency's).
  connect      from connect() in a new socket to the first message read by
               the binder in the other process; median and max of 30.
  memory       a bound REP with no peers (private RSS growth plus its
               shared-memory files), and the cost of each REQ -> REP
               connection (both rings plus the binder's private state,
               averaged over 20).  REQ and REP both write, so this is the
               most a connection costs; a PULL's ring is only 4 KiB.
  idle         CPU used by a binder and 100 connected, idle peers over 2 s.
  ring         the C ring alone: 1 KiB records, batches of 64, written and
               read in one thread (no second process, no waiting).
  sweep        (--sweep) throughput from 64 B to 16 MiB, powers of four
               (--sweep-sizes), for shmsock's await, nowait and batch and
               every peer, in messages/s and GB/s, with memcpy's rate on
               this machine (one copy, one core) as the ceiling.  A few
               minutes.

peers (with --peers, the default; a peer that is not installed is named,
with how to add it, and left out):
  pyzmq        ipc://, plain send/recv of bytes; REQ/REP for round trips.
               High-water marks 1000 messages, fewer above 64 KiB (64 MiB
               queued at most).  shmsock[bench].
  zmq.asyncio  the same with one `await send()` / `await recv()` per
               message under asyncio: the async peer of "await".
               Everywhere: no.
  unix         Trio over a Unix stream socket, 4-byte length-prefixed
               frames, 64 frames per write (fewer above 4 KiB).
  multiprocessing  Queue (put/get of bytes, bounded like pyzmq) and Pipe
               (send_bytes/recv_bytes).  Everywhere: no.
  iceoryx2     publish-subscribe of byte slices, lossless (no overflow,
               the publisher retries until delivered): copying in and out
               as a Python user does, and zero-copy (8 bytes touched,
               marked *: compare only with shmsock's zero-copy figures).
               Round trips busy-polling and parked in its Listener.
               Everywhere: no.  shmsock[bench].

saving, comparing and charts:
  --json FILE saves the run with every trial; --compare OLD.json prints
  every figure of this run beside the saved one with the ratio, and marks
  a change "better" or "WORSE" only when the new median lies outside the
  old trials' range and the old median outside the new ones' (else it is
  within the noise of the trials).  --compare OLD.json NEW.json compares
  two saved runs without running.  --plot DIR writes throughput.png,
  roundtrip.png and fanin.png (matplotlib, in shmsock[bench]); --from
  RUN.json uses a saved run instead of running; --update FILE rewrites the
  generated figures of FILE (README.md's speed table) from the run.  Timings on a shared
  machine drift between runs, so quote ratios from one run.
"""


MAX_SIZE = 16 << 20


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text!r}") from None
    if not sizes or any(n < 8 or n > MAX_SIZE for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be from 8 to {MAX_SIZE} bytes")
    return sizes


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(","))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown figure {bad[0]!r}; choose from {', '.join(KINDS)}"
        )
    return kinds


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value

    return parse


def _load_run(path: str) -> Any:
    from .._bench import suite

    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a saved run: {exc}") from None
    try:
        return suite.Run.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def _bench(args: argparse.Namespace) -> int:
    from .._bench import report, suite

    if args.compare is not None and len(args.compare) > 2:
        raise ValueError("--compare takes one saved run (to run against) or two (to compare)")
    if args.compare is not None and len(args.compare) == 2:
        old, new = (_load_run(p) for p in args.compare)
        report.compare(old, new, sys.stdout)
        return 0
    if args.source is not None:
        run = _load_run(args.source)
    else:
        kinds = args.only
        if args.sweep and "sweep" not in kinds:
            kinds = (*kinds, "sweep")
        opts = suite.Options(
            sizes=args.sizes,
            seconds=args.seconds,
            trials=args.trials,
            rounds=args.rounds,
            peers=args.peers,
            kinds=kinds,
            spin_us=args.spin_us,
            sweep_sizes=args.sweep_sizes,
        )
        if args.compare:
            _load_run(args.compare[0])  # a bad file fails now, not after the run
        bench = suite.Suite(opts, progress=None if args.quiet else sys.stderr)
        for line in bench.missing.values():
            print(f"note: {line}", file=sys.stderr)
        run = bench.run()
    table_out = sys.stdout
    if args.json == "-":
        json.dump(run.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        table_out = sys.stderr
    else:
        report.render(run, sys.stdout)
        if args.json is not None:
            with open(args.json, "w") as f:
                json.dump(run.to_json(), f, indent=1)
                f.write("\n")
            print(f"saved the run in {args.json}", file=sys.stderr)
    if args.plot:
        from .._bench import plot

        for path in plot.write(run, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    if args.update:
        from .._bench import markdown

        for path in args.update:
            n = markdown.update(path, run)
            print(f"updated {n} bench block{'s' if n > 1 else ''} in {path}", file=sys.stderr)
    if args.compare:
        print(file=table_out)
        report.compare(_load_run(args.compare[0]), run, table_out)
    return 0


# -- ls, stat, clean, exporter ------------------------------------------------------


def add_bench_command(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure shmsock on this machine, beside pyzmq and a Unix socket",
        description="Measure shmsock between real processes on this machine. With no"
        " arguments it runs the default suite in under a minute.",
        epilog=BENCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--sizes",
        type=_sizes,
        default=(64, 1024),
        metavar="N,N",
        help="message sizes for the throughput figures (default 64,1024)",
    )
    bench.add_argument(
        "--seconds",
        type=_positive(float),
        default=0.2,
        metavar="S",
        help="measured time of each throughput trial (default 0.2)",
    )
    bench.add_argument(
        "--trials",
        type=_positive(int),
        default=3,
        metavar="N",
        help="trials of each figure, alternating with its peers' (default 3)",
    )
    bench.add_argument(
        "--rounds",
        type=_positive(int),
        default=1000,
        metavar="N",
        help="round trips in each latency trial (default 1000)",
    )
    bench.add_argument(
        "--spin-us",
        type=int,
        default=50,
        metavar="US",
        help="spin_us for the spinning latency run (default 50)",
    )
    bench.add_argument(
        "--only",
        type=_kinds,
        default=None,
        metavar="FIGURES",
        help=f"comma-separated subset of: {', '.join(KINDS)}",
    )
    bench.add_argument(
        "--sweep",
        action="store_true",
        help="add the throughput sweep over message sizes (about two minutes)",
    )
    bench.add_argument(
        "--sweep-sizes",
        type=_sizes,
        default=SWEEP_SIZES,
        metavar="N,N",
        help="message sizes of the sweep (default 64 B to 16 MiB, powers of four)",
    )
    bench.add_argument(
        "--no-peers", dest="peers", action="store_false", help="measure shmsock alone"
    )
    bench.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="save the run, with every trial, in FILE (and print the table);"
        " without FILE, print the JSON instead of the table",
    )
    bench.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN.json",
        help="print every figure beside those of a saved run, with the ratio, marking"
        " changes beyond the spread of the trials; with two saved runs, compare them"
        " without running",
    )
    bench.add_argument(
        "--plot",
        metavar="DIR",
        help="write charts (PNG) into DIR: throughput by size, round trips, fan-in"
        " (needs matplotlib, in shmsock[bench])",
    )
    bench.add_argument(
        "--from",
        dest="source",
        metavar="RUN.json",
        help="use a saved run instead of running (with --plot, --compare or alone)",
    )
    bench.add_argument(
        "--update",
        nargs="+",
        metavar="FILE",
        help="rewrite the figures between <!-- bench:NAME --> and <!-- /bench:NAME -->"
        " in each FILE from this run (the README's speed table, docs/performance.md)",
    )
    bench.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    bench.set_defaults(func=_bench)
