"""Prometheus metrics of the shmsock sockets in this process.

Importing :mod:`shmsock` registers :data:`COLLECTOR` in prometheus_client's
default ``REGISTRY``, so any ``/metrics`` endpoint the program already
serves shows shmsock's figures.  Set the environment variable
``SHMSOCK_METRICS=0`` before the import to skip that, or call
:func:`unregister`; :func:`register` adds the collector to a registry of
your own.

Every metric has the labels ``endpoint`` (``shm://NAME``) and
``socket_type`` (``PUSH``, ``PULL``, ...); the sockets of this process
with the same endpoint and type are added up.  Series that cannot move are
left out: a PULL socket has no sending series, a PUSH socket no receiving
ones.

======================================  =======  ================================
``shmsock_messages_sent_total``         counter  messages written to rings
``shmsock_messages_received_total``     counter  messages read from rings
``shmsock_bytes_sent_total``            counter  payload bytes written
``shmsock_bytes_received_total``        counter  payload bytes read
``shmsock_corrupt_messages_total``      counter  records failing validation
``shmsock_dropped_messages_total``      counter  messages lost: incomplete ones,
                                                 ones over ``max_msg_size`` from
                                                 a peer that did not learn it,
                                                 ones a reader left unread or
                                                 closed on, ones no binder came
                                                 to read (docs/reliability.md)
``shmsock_send_blocked_seconds_total``  counter  time senders waited for room in
                                                 full rings
``shmsock_peers``                       gauge    live attached connections
``shmsock_ring_used_bytes``             gauge    bytes waiting in rings; extra
                                                 label ``direction``: ``in``
                                                 (rings this socket reads) or
                                                 ``out`` (rings it writes)
======================================  =======  ================================

Cost: nothing per message.  The C ring counts messages and bytes as part of
each batch it writes or reads, in memory private to each side; the waiting
time is measured only when a send actually waits.  A scrape reads those
counters, so it is exact: after 1,000 messages it says 1,000.  A message
counts once its last record is written (sent) or read off the ring
(received, including one dropped afterwards as oversized).  Counts of
disconnected peers and closed sockets stay in the totals, so counters never
go backwards while the process lives.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from . import _stats
from ._patterns import PATTERNS
from ._stats import EndpointStats
from ._types import SocketType

__all__ = ["COLLECTOR", "ENV", "ShmsockCollector", "register", "unregister"]

#: Environment variable that, set to ``0`` (or ``false``, ``no``, ``off``),
#: keeps ``import shmsock`` from registering the collector.
ENV: Final = "SHMSOCK_METRICS"

LABELS: Final = ("endpoint", "socket_type")

# (metric name without _total, help, EndpointStats field)
_COUNTERS: Final = (
    ("shmsock_messages_sent", "Messages written to shared-memory rings.", "messages_sent"),
    ("shmsock_messages_received", "Messages read from shared-memory rings.", "messages_received"),
    ("shmsock_bytes_sent", "Payload bytes written to shared-memory rings.", "bytes_sent"),
    ("shmsock_bytes_received", "Payload bytes read from shared-memory rings.", "bytes_received"),
    (
        "shmsock_corrupt_messages",
        "Messages refused because their records failed validation.",
        "corrupt",
    ),
    (
        "shmsock_dropped_messages",
        "Messages lost: incomplete (the writer gave up or died midway), over max_msg_size"
        " from a peer that did not learn it, left unread by a reader that went or closed,"
        " or in a connecting socket's ring that no binder read before it closed.",
        "dropped",
    ),
    (
        "shmsock_send_blocked_seconds",
        "Time senders spent waiting for room in full rings.",
        "send_blocked_seconds",
    ),
)
# Which side of the traffic each field describes: a socket type that never
# sends (PULL) or never receives (PUSH) has those series left out.
_SEND_SIDE: Final = frozenset({"messages_sent", "bytes_sent", "send_blocked_seconds"})


def _applies(field: str, kind: str) -> bool:
    try:
        pattern = PATTERNS[SocketType[kind]]
    except KeyError:
        return True  # a type this version does not know (the node exporter)
    return pattern.can_send if field in _SEND_SIDE else pattern.can_recv


_PEERS_HELP: Final = "Live connections attached."
_USED_HELP: Final = "Bytes written to rings and not read yet (in: rings read, out: rings written)."


def _build_families(
    data: Mapping[tuple[str, str], EndpointStats], counters: Iterable[str] | None = None
) -> list[Metric]:
    """Metric families for *data*, keyed by ``(endpoint, socket type)``.

    *counters* limits the counters to those EndpointStats fields (default:
    all).  The gauges are always included.
    """
    wanted = None if counters is None else set(counters)
    out: list[Metric] = []
    for name, doc, field in _COUNTERS:
        if wanted is not None and field not in wanted:
            continue
        family = CounterMetricFamily(name, doc, labels=LABELS)
        for (endpoint, kind), st in sorted(data.items()):
            if _applies(field, kind):
                family.add_metric([endpoint, kind], float(getattr(st, field)))
        out.append(family)
    peers = GaugeMetricFamily("shmsock_peers", _PEERS_HELP, labels=LABELS)
    used = GaugeMetricFamily("shmsock_ring_used_bytes", _USED_HELP, labels=[*LABELS, "direction"])
    for (endpoint, kind), st in sorted(data.items()):
        peers.add_metric([endpoint, kind], float(st.peers))
        if _applies("messages_received", kind):
            used.add_metric([endpoint, kind, "in"], float(st.used_in))
        if _applies("messages_sent", kind):
            used.add_metric([endpoint, kind, "out"], float(st.used_out))
    out.extend((peers, used))
    return out


class ShmsockCollector(Collector):
    """Reads the sockets' own counters at scrape time (see the module doc)."""

    def collect(self) -> Iterable[Metric]:
        return _build_families(_stats.snapshot())

    def describe(self) -> Iterable[Metric]:
        # The names, without reading anything (so registering is free).
        return _build_families({})


#: The collector that ``import shmsock`` registers.
COLLECTOR: Final = ShmsockCollector()

_registries: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()


def register(registry: CollectorRegistry = REGISTRY) -> None:
    """Add :data:`COLLECTOR` to *registry* (default: prometheus_client's).

    Idempotent.  Raises ValueError when *registry* already has other
    metrics with shmsock's names.
    """
    if registry in _registries:
        return
    registry.register(COLLECTOR)
    _registries.add(registry)


def unregister(registry: CollectorRegistry = REGISTRY) -> None:
    """Remove :data:`COLLECTOR` from *registry*; nothing if it is not there."""
    if registry not in _registries:
        return
    registry.unregister(COLLECTOR)
    _registries.discard(registry)


def _enabled_by_env() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("0", "false", "no", "off")


if _enabled_by_env():
    register()
