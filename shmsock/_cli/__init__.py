"""The ``shmsock`` command line: ``bench`` (``bench.py``) and the admin commands (``admin.py``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from .._bench import DEFAULT_KINDS
from .admin import add_admin_commands
from .bench import add_bench_command

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (the usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shmsock", description="ZeroMQ-style sockets for Trio over shared memory."
    )
    parser.add_argument("--version", action="version", version=f"shmsock {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_bench_command(sub)
    add_admin_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "only", "") is None:
        args.only = DEFAULT_KINDS
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`shmsock stat ... | head`):
        # not an error worth a line, and no flush of stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # one clear line, not a traceback
        print(f"shmsock {args.command}: error: {exc}", file=sys.stderr)
        return 1
