"""The ``shmsock`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _bench(args: argparse.Namespace) -> int:
    from ._bench import ring

    print(f"ring microbenchmark: one process, {args.size} B records, batches of {args.batch}")
    for checksum in (True, False):
        r = ring.run(args.size, args.batch, checksum, args.seconds)
        print(
            f"  checksum {'on ' if checksum else 'off'}  {r.records_per_s / 1e6:6.2f} M records/s"
            f"  {r.bytes_per_s / 1e9:5.2f} GB/s"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shmsock", description="ZeroMQ-style sockets for Trio over shared memory."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="measure shmsock on this machine")
    bench.add_argument("--size", type=int, default=1024, help="record size in bytes")
    bench.add_argument("--batch", type=int, default=64, help="records per C call")
    bench.add_argument("--seconds", type=float, default=2.0, help="duration of each run")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
