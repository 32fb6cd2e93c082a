"""``shmsock ls``, ``stat``, ``clean`` and ``exporter``: the files read by their layout.

The reading is ``shmsock._admin``'s; this is its command line only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._admin import Connection, Endpoint, RingInfo

__all__ = ["add_admin_commands"]


def _print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _ls(args: argparse.Namespace) -> int:
    from .. import _admin
    from .._transport.shm._fs import user_dir_path

    d = _admin.open_user_dir()
    try:
        endpoints = [] if d is None else _admin.scan(d)
    finally:
        if d is not None:
            d.close()
    if args.json:
        _print_json([ep.to_json() for ep in endpoints])
        return 0
    if not endpoints:
        print(f"no endpoints in {user_dir_path()}", file=sys.stderr)
        return 0
    rows = [("ENDPOINT", "BINDER", "PID", "TYPE", "PEERS")]
    rows.extend(
        (
            ep.endpoint,
            "unsafe" if ep.unsafe else ep.binder,
            "-" if ep.binder_pid is None else str(ep.binder_pid),
            ep.binder_type or "-",
            str(ep.peers),
        )
        for ep in endpoints
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _ago(ns: int, now_ns: int) -> str:
    from .._admin import iso_time

    stamp = iso_time(ns)
    if stamp is None:
        return "never"
    return f"{stamp} ({max(0.0, (now_ns - ns) / 1e9):.1f} s ago)"


def _ring_line(label: str, ring: RingInfo | None) -> str:
    if ring is None:
        return f"    {label}  no ring"
    if ring.error is not None:
        return f"    {label}  {ring.file}: {ring.error}"
    pct = 100 * ring.used / ring.capacity if ring.capacity else 0.0
    closed = "  (writer closed)" if ring.writer_closed else ""
    # A publisher's slow subscriber: what it missed for want of room.
    dropped = f", {ring.messages_dropped} dropped" if ring.messages_dropped else ""
    return (
        f"    {label}  used {ring.used}/{ring.capacity} B ({pct:.0f}%)"
        f"  messages {ring.messages_written} written, {ring.messages_read} read{dropped}"
        f"  bytes {ring.bytes_written} written, {ring.bytes_read} read{closed}"
    )


def _render_stat(ep: Endpoint, conns: list[Connection]) -> None:
    now = time.time_ns()
    if ep.binder == "none":
        binder = "no binder"
    else:
        kind = f" ({ep.binder_type})" if ep.binder_type else ""
        binder = f"binder pid {ep.binder_pid if ep.binder_pid is not None else '?'}{kind}"
        binder += f" {ep.binder}"
    print(f"{ep.endpoint}: {binder}, {ep.peers} peer{'' if ep.peers == 1 else 's'}")
    for conn in conns:
        slot = conn.slot
        state = {True: "alive", False: "dead", None: "no lock"}[slot.alive]
        if slot.unsafe:
            state = f"unsafe ({slot.unsafe})"
        kind = f" ({slot.socket_type})" if slot.socket_type else ""
        attached = ", attached" if slot.attached else ""
        print(
            f"  slot {slot.index}: peer pid {slot.pid if slot.pid is not None else '?'}{kind}"
            f" {state}{attached}, last activity {_ago(conn.last_activity_ns, now)}"
        )
        rings: list[RingInfo | None] = [*conn.to_connector] or [None]
        for ring in rings:
            print(_ring_line("binder -> peer", ring))
        print(_ring_line("peer -> binder", conn.to_binder))


def _stat(args: argparse.Namespace) -> int:
    from .. import _admin
    from .._transport.shm._fs import parse_endpoint, user_dir_path

    name = parse_endpoint(args.endpoint)
    d = _admin.open_user_dir()
    if d is None:
        raise LookupError(f"no endpoint shm://{name} in {user_dir_path()}")
    try:
        ep, conns = _admin.stat(d, name)
    finally:
        d.close()
    if args.json:
        out: dict[str, Any] = {
            "endpoint": ep.endpoint,
            "binder": {
                "state": ep.binder,
                "pid": ep.binder_pid,
                "socket_type": ep.binder_type,
            },
            "peers": ep.peers,
            "connections": [c.to_json() for c in conns],
        }
        _print_json(out)
    else:
        _render_stat(ep, conns)
    return 0


def _clean(args: argparse.Namespace) -> int:
    from .. import _admin
    from .._transport.shm._fs import user_dir_path

    d = _admin.open_user_dir()
    if d is None:
        print(f"nothing to clean in {user_dir_path()}")
        return 0
    try:
        report = _admin.clean(d, dry_run=args.dry_run)
    finally:
        d.close()
    verb = "would remove" if args.dry_run else "removed"
    for name in report.removed:
        print(f"{verb} {d.path}/{name}")
    for line in report.skipped:
        print(f"shmsock clean: skipped {line}", file=sys.stderr)
    if not report.removed:
        print(f"nothing to clean in {d.path}")
    return 0


def _exporter(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server
    from prometheus_client.registry import CollectorRegistry

    from .. import _admin

    registry = CollectorRegistry()
    registry.register(_admin.NodeCollector())
    # SIGTERM ends the exporter as quietly as Ctrl-C does.  Set before the
    # "serving" line: a supervisor may send it the moment it reads that.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server, _thread = start_http_server(args.port, addr=args.host, registry=registry)
    try:
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"shmsock exporter: serving http://{host}:{server.server_port}/metrics"
            f" (pid {os.getpid()})",
            flush=True,
        )
        threading.Event().wait()
    finally:
        server.shutdown()
    return 0  # pragma: no cover (only a signal ends the wait)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 0 to 65535, not {port}")
    return port


def add_admin_commands(sub: Any) -> None:
    ls = sub.add_parser(
        "ls",
        help="list the endpoints under the shmsock root",
        description="List the endpoints in this user's shmsock directory: name, whether"
        " its binder is alive (it holds the lock on NAME@lock) or stale (it died), the"
        " binder's PID and socket type, and how many live peers are connected there.",
    )
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=_ls)

    st = sub.add_parser(
        "stat",
        help="show the connections of an endpoint, read from shared memory",
        description="Show each connection of an endpoint: the peer's PID and liveness, how"
        " full each ring is, the messages and bytes written and read each way, and the"
        " last activity (the last time a reader had read everything and went to wait)."
        " Read from shared memory: the processes need not cooperate.",
    )
    st.add_argument("endpoint", metavar="shm://NAME", help="the endpoint")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_stat)

    cl = sub.add_parser(
        "clean",
        help="remove what dead processes left behind",
        description="Remove stale endpoints (whose binder died) and the slots of dead"
        " connectors. Files are removed only under their lock, which a live process"
        " never releases, so nothing alive is touched. Prints what it removed.",
    )
    cl.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    cl.set_defaults(func=_clean)

    ex = sub.add_parser(
        "exporter",
        help="serve Prometheus metrics of every live endpoint of this user",
        description="Serve Prometheus metrics over HTTP for every live endpoint of this"
        " user, read from the rings in shared memory: a node-level exporter that needs no"
        " code in the applications. Runs until interrupted.",
    )
    ex.add_argument(
        "--port", type=_port, required=True, metavar="N", help="TCP port (0: any free one)"
    )
    ex.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ex.set_defaults(func=_exporter)
