"""The ``shmsock`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

BENCH_EPILOG = """\
figures:
  throughput   PUSH -> PULL between two processes, messages of each --sizes.
               "await" is one `await send()` / `await recv()` per message (a
               Trio checkpoint each, about 5 us here); "nowait" is
               send_nowait/recv_nowait, waiting only when they would block;
               "batch" is send_many (64 messages) / recv_many (up to 256),
               one C call and at most one checkpoint per batch.  Each with
               CRC32C on and off.  Counted at the receiver after a warm-up.
  fanin        8 PUSH processes into one PULL (batch API), aggregate rate.
  latency      REQ/REP round trip of a 1 KiB message between two
               processes: p50, p99, p99.9, max, once parked (spin_us=0, the
               default) and once with --spin-us on both sides.
  connect      from connect() in a new socket to the first message read by
               the binder in the other process; median and max of 30.
  memory       a bound socket with no peers (private RSS growth plus its
               shared-memory files), and the cost of each connection (both
               rings plus the binder's private state, averaged over 20).
  idle         CPU used by a binder and 100 connected, idle peers over 2 s.
  ring         the C ring alone: 1 KiB records, batches of 64, written and
               read in one thread (no second process, no waiting).

peers (with --peers, the default, when installed): pyzmq over ipc:// with
plain send/recv, and Trio over a Unix socket with 4-byte length-prefixed
frames, 64 frames per write.  Each shmsock figure is shown beside the
peers' as a ratio (shmsock / peer).  Timings on a shared machine drift
between runs, so quote ratios from one run, not absolute figures.
"""


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text!r}") from None
    if not sizes or any(n < 1 or n > 1 << 20 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be from 1 to 1048576 bytes")
    return sizes


def _kinds(text: str) -> tuple[str, ...]:
    from ._bench.suite import KINDS

    kinds = tuple(k.strip() for k in text.split(","))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown figure {bad[0]!r}; choose from {', '.join(KINDS)}"
        )
    return kinds


def _bench(args: argparse.Namespace) -> int:
    from ._bench import suite

    opts = suite.Options(
        sizes=args.sizes,
        seconds=args.seconds,
        peers=args.peers,
        kinds=args.only,
        spin_us=args.spin_us,
    )
    if args.peers and not suite.have_pyzmq():
        print(
            "note: pyzmq is not installed; install shmsock[bench] to compare with it",
            file=sys.stderr,
        )
    figures = suite.Suite(opts, progress=None if args.quiet else sys.stderr).run()
    if args.json:
        json.dump(suite.to_json(figures), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        suite.render(figures)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shmsock", description="ZeroMQ-style sockets for Trio over shared memory."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
        type=float,
        default=1.0,
        metavar="S",
        help="measuring time of each throughput trial (default 1.0)",
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
        help="comma-separated subset of: throughput, fanin, latency, connect, memory, idle, ring",
    )
    bench.add_argument(
        "--no-peers", dest="peers", action="store_false", help="skip pyzmq and the Unix socket"
    )
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "only", "") is None:
        from ._bench.suite import KINDS

        args.only = KINDS
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, not a traceback
        print(f"shmsock {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
