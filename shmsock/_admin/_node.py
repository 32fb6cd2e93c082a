"""The exporter's view: statistics of every live endpoint, from the ring headers."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from .._patterns import PATTERNS
from .._stats import EndpointStats
from .._transport.shm._fs import UserDir
from .._types import SocketType
from ._scan import Endpoint, connections, open_user_dir, scan

__all__ = ["NodeCollector", "endpoint_stats"]


def _peer_type(kind: str | None) -> str:
    """The type that reads what a *kind* socket writes, when only one can."""
    if kind is None:
        return "unknown"
    compatible = PATTERNS[SocketType[kind]].compatible
    return next(iter(compatible)).name if len(compatible) == 1 else "unknown"


@dataclass
class _RingCounts:
    writer: tuple[str, str]  # (endpoint, socket type)
    reader: tuple[str, str]
    counts: tuple[int, int, int, int]  # messages and bytes written, read


def _ring_counts(
    d: UserDir, endpoints: Iterable[Endpoint]
) -> Iterator[tuple[tuple[int, int], _RingCounts, int, bool]]:
    """(ring identity, counts, used bytes, counts as a peer) of every live ring.

    A ring is live while the connector of its slot is: once that process
    is gone, its rings never come back (a new connector in the slot makes
    new files), so a ring leaves this list only once.
    """
    for ep in endpoints:
        if not ep.live:
            continue
        endpoint = ep.endpoint
        for conn in connections(d, ep, live_only=True):
            connector_type = conn.slot.socket_type
            binder_type = ep.binder_type
            rings = []
            if conn.to_binder is not None:
                rings.append((conn.to_binder, connector_type, binder_type))
            rings.extend((r, binder_type, connector_type) for r in conn.to_connector)
            for ring, writer, reader in rings:
                if ring.error is not None or ring.inode is None:
                    continue
                writer = ring.writer_type or writer
                writer_name = writer or "unknown"
                reader_name = reader or _peer_type(writer)
                counts = (
                    ring.messages_written,
                    ring.bytes_written,
                    ring.messages_read,
                    ring.bytes_read,
                )
                peer = ring is conn.to_binder and conn.slot.attached and ep.binder == "alive"
                yield (
                    ring.inode,
                    _RingCounts((endpoint, writer_name), (endpoint, reader_name), counts),
                    ring.used,
                    peer,
                )


def endpoint_stats(
    d: UserDir,
) -> tuple[dict[tuple[str, str], EndpointStats], dict[tuple[int, int], _RingCounts]]:
    """Statistics by (endpoint, socket type) of every live endpoint in *d*.

    A live binder has its entry even with no peers (all zero); a peer's
    comes from the rings of its connection.

    Also returns each ring's counts by ring identity (device, inode), so
    that a caller can tell which rings have gone since (see NodeCollector).
    """
    out: dict[tuple[str, str], EndpointStats] = {}

    def get(key: tuple[str, str]) -> EndpointStats:
        st = out.get(key)
        if st is None:
            st = out[key] = EndpointStats()
        return st

    endpoints = scan(d)
    for ep in endpoints:
        # A live binder is there before any peer, and after the last one:
        # its series exist, at zero, as the binding process's own do.  (Its
        # type is unknown only for the instant between taking the lock and
        # writing it; the next scrape has it.)
        if ep.binder == "alive" and ep.binder_type is not None:
            get((ep.endpoint, ep.binder_type))
    seen: dict[tuple[int, int], _RingCounts] = {}
    for inode, rc, used, peer in _ring_counts(d, endpoints):
        seen[inode] = rc
        w, r = get(rc.writer), get(rc.reader)
        w.messages_sent += rc.counts[0]
        w.bytes_sent += rc.counts[1]
        r.messages_received += rc.counts[2]
        r.bytes_received += rc.counts[3]
        w.used_out += used
        r.used_in += used
        if peer:
            w.peers += 1
            r.peers += 1
    return out, seen


class NodeCollector:
    """A Prometheus collector for every live endpoint of this user.

    Reads the ring headers at each scrape (see the module doc).  Counters
    stay monotonic across connections that come and go: when a ring
    disappears, the counts it had at the previous scrape are kept in a
    total for its endpoint and socket type (what it did after that scrape
    is lost).  The counters a process keeps privately (corrupt and dropped
    messages, time blocked) are not in shared memory, so not here.
    """

    COUNTERS: Final = ("messages_sent", "bytes_sent", "messages_received", "bytes_received")

    def __init__(self, root: str | None = None) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._last: dict[tuple[int, int], _RingCounts] = {}
        self._gone: dict[tuple[str, str], EndpointStats] = {}

    def snapshot(self) -> dict[tuple[str, str], EndpointStats]:
        """Statistics now, with the totals of rings gone since earlier scrapes."""
        with self._lock:
            d = open_user_dir(self._root)
            if d is None:
                current: dict[tuple[str, str], EndpointStats] = {}
                seen: dict[tuple[int, int], _RingCounts] = {}
            else:
                try:
                    current, seen = endpoint_stats(d)
                finally:
                    d.close()
            for inode, rc in self._last.items():
                if inode in seen:
                    continue
                w = self._gone.setdefault(rc.writer, EndpointStats())
                w.messages_sent += rc.counts[0]
                w.bytes_sent += rc.counts[1]
                r = self._gone.setdefault(rc.reader, EndpointStats())
                r.messages_received += rc.counts[2]
                r.bytes_received += rc.counts[3]
            self._last = seen
            for key, total in self._gone.items():
                current.setdefault(key, EndpointStats()).add_counters(total)
            return current

    def collect(self) -> Iterable[Any]:
        from ..metrics import _build_families

        return _build_families(self.snapshot(), counters=self.COUNTERS)

    def describe(self) -> Iterable[Any]:
        from ..metrics import _build_families

        return _build_families({}, counters=self.COUNTERS)
