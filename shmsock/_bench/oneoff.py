"""The figures measured once, not against peers: connect, memory, idle, the ring, memcpy.

Each is a function of the runner, called as one trial of its section.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from . import rigs, ring
from .peers import shm

if TYPE_CHECKING:
    from .figures import Figure
    from .runner import Runner


def _figure(
    suite: Runner, fid: str, label: str, unit: str, higher_is_better: bool = False
) -> Figure:
    """The figure *fid* of the section its id begins with."""
    section = fid.split("/")[0]
    return suite.figure(
        fid, section=section, label=label, unit=unit, higher_is_better=higher_is_better
    )


def connect_time(suite: Runner) -> None:
    spec = suite.spec(rounds=30)
    rig = rigs.Rig("connect")
    try:
        binder = rig.start(shm.connect_binder, spec, "binder")
        rig.workers.append(rigs.Worker(shm.connect_connector, spec, "connector"))
        r = rig.next(binder, 120)
    finally:
        rig.kill()
    f = _figure(suite, "connect", "connect -> first message", "ms")
    f.add(r["p50_us"] / 1000, max_ms=r["max_us"] / 1000, rounds=r["count"])


def memory(suite: Runner) -> None:
    peers = 20
    spec = suite.spec(peers=peers, type="REQ", send_one=True)
    rig = rigs.Rig("memory")
    try:
        binder = rigs.Worker(shm.memory_binder, spec, "binder")
        rig.workers.append(binder)
        bound = rig.next(binder, 60)["bound"]
        rig.start(shm.many_connectors, spec, "connectors", timeout=60)
        after = rig.next(binder, 60)
    finally:
        rig.kill()
    # Both rings of every connection are files in the root, so shm_bytes
    # counts them whichever side created them.
    total_bound = bound["private_bytes"] + bound["shm_bytes"]
    per_conn = (
        after["private_bytes"] - bound["private_bytes"]
        + after["shm_bytes"] - bound["shm_bytes"]
    ) / peers  # fmt: skip
    f = _figure(suite, "memory/bound", "bound REP, no peers", "MB")
    f.add(total_bound / 1e6, **{k: v / 1e6 for k, v in bound.items()})
    f = _figure(suite, "memory/connection", "each REQ -> REP connection", "MB")
    f.add(per_conn / 1e6, peers=peers)


def idle(suite: Runner) -> None:
    n = suite.opts.idle_peers
    spec = suite.spec(peers=n, type="PUSH")
    rig = rigs.Rig("idle")
    try:
        binder = rig.start(shm.idle_binder, spec, "binder")
        pushers = rig.start(shm.many_connectors, spec, "connectors", timeout=120)
        time.sleep(0.2)
        c0 = binder.cpu_seconds() + pushers.cpu_seconds()
        t0 = time.monotonic()
        time.sleep(2.0)
        c1 = binder.cpu_seconds() + pushers.cpu_seconds()
        dt = time.monotonic() - t0
    finally:
        rig.kill()
    f = _figure(suite, "idle", f"idle, {n} connected peers", "% CPU")
    f.add(100 * (c1 - c0) / dt)


def ring_figures(suite: Runner) -> None:
    for checksum in (True, False):
        crc = "on" if checksum else "off"
        r = ring.run(1024, 64, checksum, min(suite.opts.seconds * 2, 1.0))
        f = _figure(
            suite,
            f"ring/crc-{crc}",
            f"1 KiB, batch 64, CRC {crc}",
            "M rec/s",
            higher_is_better=True,
        )
        f.add(r.records_per_s / 1e6)


def memcpy(suite: Runner, size: int) -> None:
    """memcpy's rate at *size* on this machine: the ceiling of the sweep."""
    f = suite.figure(
        f"sweep/{size}/memcpy",
        section="sweep",
        label="memcpy, one core",
        unit="M msg/s",
        higher_is_better=True,
        peer="memcpy",
        way="memcpy",
        size=size,
    )
    rate = memcpy_rate(size, min(0.1, suite.opts.seconds))
    f.add(rate / 1e6, gb_per_s=rate * size / 1e9)


def memcpy_rate(size: int, seconds: float) -> float:
    """Copies of *size* bytes per second, one buffer into another, from Python."""
    src = memoryview(bytearray(os.urandom(size)))
    dst = memoryview(bytearray(size))
    per = max(1, (1 << 20) // size)
    n = 0
    t0 = time.perf_counter()
    until = t0 + seconds
    while True:
        for _ in range(per):
            dst[:] = src
        n += per
        t = time.perf_counter()
        if t >= until:
            return n / (t - t0)
