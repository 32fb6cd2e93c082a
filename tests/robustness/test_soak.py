"""Soak: peers SIGKILLed and restarted while messages flow.

Two scenarios, each checked message by message (see soak.py for the
message format and what "handed over" means):

- a PULL with 4 PUSH processes, one of which is SIGKILLed and restarted
  every 100-400 ms: every message a sender handed over is delivered once,
  in order per sender incarnation, none lost (a dead sender's ring is
  read to its end before the connection is retired);
- 4 PUSH processes sending while their PULL binder is SIGKILLed and
  restarted: the PUSHes attach to each new binder by themselves; no
  message is delivered twice, each binder gets each sender's messages in
  order, and the only ones missing are those a dead binder had taken from
  the rings and not yet handed on (counted; at most a batch per kill).

Each moves at least ``SHMSOCK_SOAK_MESSAGES`` messages (20,000 when it is
not set: the normal suite's few seconds) with at least one kill per 5,000
(sender kills) or 10,000 (binder kills) messages.  The ``stress`` tox
environment runs this file with 200,000; anyone can run it bigger:
``SHMSOCK_SOAK_MESSAGES=1000000 tox -e stress``.  Each test prints its
figures (messages, kills, losses); ``-rP`` shows them.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest
import trio
from helpers import seam, soak
from helpers.procs import Child, forked, spawn

import shmsock
from shmsock import PULL

SENDERS = 4
SOAK_MESSAGES = int(os.environ.get("SHMSOCK_SOAK_MESSAGES") or 20_000)
# A generous bound: the soak moves well over 10,000 messages a second, and
# kills at most 5 times a second.
SOAK_TIMEOUT = 120 + SOAK_MESSAGES // 1_000


@dataclass
class SenderKillFigures:
    delivered: int = 0
    kills: int = 0
    incarnations: int = 0
    lost: int = 0  # handed over by a killed sender, never delivered
    unconfirmed: int = 0  # delivered, sent by a sender killed before it reported them

    def __str__(self) -> str:
        return (
            f"sender kills: {self.delivered} messages delivered from {self.incarnations}"
            f" sender incarnations, {self.kills} SIGKILLs, {self.lost} lost,"
            f" {self.unconfirmed} delivered but not yet reported by their killed sender"
        )


async def soak_sender_kills(tmp_path, messages: int, min_kills: int, seed: int):
    rng = random.Random(seed)
    ctx = forked()
    endpoint = "shm://soak"
    ledger = soak.Ledger()
    reports: dict[tuple[int, int], str] = {}
    live: dict[int, tuple[int, Child]] = {}
    children: list[Child] = []
    figures = SenderKillFigures()

    def start(sender: int, incarnation: int) -> None:
        path = str(tmp_path / f"sender-{sender}-{incarnation}")
        reports[sender, incarnation] = path
        child = spawn(
            soak.sender, endpoint, sender, incarnation, path, rng.randrange(1 << 30), ctx=ctx
        )
        children.append(child)
        live[sender] = (incarnation, child)

    try:
        async with shmsock.socket(PULL) as pull:
            pull.bind(endpoint)
            for s in range(SENDERS):
                start(s, 0)

            async def receive() -> None:
                while True:
                    ledger.take(await pull.recv_many(256))

            final: dict[tuple[int, int], int] = {}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                while ledger.delivered < messages or figures.kills < min_kills:
                    await trio.sleep(rng.uniform(0.1, 0.4))
                    victim = rng.randrange(SENDERS)
                    incarnation, child = live[victim]
                    child.kill()
                    figures.kills += 1
                    start(victim, incarnation + 1)
                for _, child in live.values():
                    await child.expect("ready")
                    child.send("stop")
                for s, (incarnation, child) in live.items():
                    tag, count = await child.recv()
                    assert tag == "stopped"
                    final[s, incarnation] = count
                # Drain: until the survivors' messages are all in and every
                # killed sender's connection was read to its end and retired.
                survivors = {child.pid for _, child in live.values()}
                with trio.fail_after(60):
                    while not (  # noqa: ASYNC110 (the state is the receiver task's)
                        all(ledger.next.get(k, 0) >= n for k, n in final.items())
                        and {p.pid for p in seam.connections(pull)} <= survivors
                    ):
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
            for _, child in live.values():
                child.send("exit")
            for _, child in live.values():
                assert await child.join() == 0
    finally:
        for child in children:
            child.close()

    assert ledger.errors == []  # no duplicate, gap, reordering or torn message
    figures.delivered = ledger.delivered
    figures.incarnations = len(reports)
    for key, path in reports.items():
        got = ledger.next.get(key, 0)
        if key in final:  # a survivor, stopped: exactly what it handed over
            assert soak.read_count(path) == final[key] == got
            continue
        reported = soak.read_count(path)
        figures.lost += max(0, reported - got)
        figures.unconfirmed += max(0, got - reported)
        assert got - reported <= soak.MAX_BATCH, key  # one batch between send and report
    # shmsock reads a dead sender's ring to its end: nothing handed over is lost.
    assert figures.lost == 0
    print(figures)
    return figures


@dataclass
class BinderRestartFigures:
    sent: int = 0
    delivered: int = 0
    restarts: int = 0
    lost: int = 0  # taken from the rings by a binder killed before it recorded them

    def __str__(self) -> str:
        return (
            f"binder restarts: {self.sent} messages sent, {self.delivered} recorded by"
            f" {self.restarts + 1} binder incarnations ({self.restarts} SIGKILLs),"
            f" {self.lost} lost with a killed binder, 0 duplicated"
        )


async def soak_binder_restarts(tmp_path, messages: int, min_restarts: int, seed: int):
    rng = random.Random(seed)
    ctx = forked()
    endpoint = "shm://restart-soak"
    reports: list[str] = []
    children: list[Child] = []
    figures = BinderRestartFigures()

    def start_binder() -> Child:
        path = str(tmp_path / f"binder-{len(reports)}")
        reports.append(path)
        child = spawn(soak.binder, endpoint, path, ctx=ctx)
        children.append(child)
        return child

    def recorded() -> int:
        return sum(os.path.getsize(p) for p in reports if os.path.exists(p)) // soak.HEADER.size

    try:
        binder = start_binder()
        await binder.expect("ready")
        senders = [
            spawn(soak.sender, endpoint, s, 0, str(tmp_path / f"sender-{s}"), seed + s, ctx=ctx)
            for s in range(SENDERS)
        ]
        children.extend(senders)
        for child in senders:
            await child.expect("ready")
        while recorded() < messages or figures.restarts < min_restarts:
            await trio.sleep(rng.uniform(0.2, 0.5))
            binder.kill()
            figures.restarts += 1
            if rng.random() < 0.5:  # sometimes nobody is bound for a while
                await trio.sleep(rng.uniform(0, 0.1))
            binder = start_binder()
            await binder.expect("ready")
        for child in senders:
            child.send("stop")
        final = {}
        for s, child in enumerate(senders):
            tag, count = await child.recv()
            assert tag == "stopped"
            final[s] = count
        binder.send(("drain", final))
        await binder.expect("drained", timeout=60)
        for child in [*senders, binder]:
            child.send("exit")
        for child in [*senders, binder]:
            assert await child.join() == 0
    finally:
        for child in children:
            child.close()

    seen: dict[int, set[int]] = {s: set() for s in range(SENDERS)}
    for path in reports:
        previous: dict[int, int] = {}
        for s, seq in soak.read_binder_report(path):
            assert seq not in seen[s], f"sender {s} message {seq} delivered twice"
            if s in previous:  # one binder gets a sender's messages in order
                assert seq == previous[s] + 1, f"sender {s}: {seq} after {previous[s]}"
            previous[s] = seq
            seen[s].add(seq)
    figures.sent = sum(final.values())
    figures.delivered = sum(len(v) for v in seen.values())
    figures.lost = figures.sent - figures.delivered
    for s in range(SENDERS):
        assert seen[s] <= set(range(final[s]))
        assert final[s] - 1 in seen[s]  # the last binder got everything up to the end
    # A killed binder loses at most what one recv_many had given it.
    assert figures.lost <= 256 * figures.restarts
    print(figures)
    return figures


@pytest.mark.timeout(SOAK_TIMEOUT)
async def test_soak_sender_kills(tmp_path):
    await soak_sender_kills(
        tmp_path, messages=SOAK_MESSAGES, min_kills=max(4, SOAK_MESSAGES // 5_000), seed=11
    )


@pytest.mark.timeout(SOAK_TIMEOUT)
async def test_soak_binder_restarts(tmp_path):
    await soak_binder_restarts(
        tmp_path, messages=SOAK_MESSAGES, min_restarts=max(3, SOAK_MESSAGES // 10_000), seed=12
    )
