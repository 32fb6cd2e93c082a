"""Ctrl-C: a KeyboardInterrupt never leaves a connection half-done.

Trio raises KeyboardInterrupt wherever the main thread happens to be,
unless that code is marked protected; then it raises it in the main task
at its next checkpoint.  shmsock's public methods are protected, as Trio's
own channels are: an interrupt between a write and the doorbell that the
write claimed would leave the reader asleep over unread data.
"""

from __future__ import annotations

import trio
import trio.testing
from helpers import peers, seam
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, PULL, PUSH
from shmsock._transport.shm import _wire


async def test_ctrl_c_between_a_write_and_its_doorbell_still_wakes_the_reader():
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://ctrlc")
        with spawn(peers.push_ctrl_c_at_doorbell, "shm://ctrlc") as child:
            await child.expect("ready")
            got: list[bytes] = []

            async def receive() -> None:
                got.append(await pull.recv())

            with trio.fail_after(20):  # a lost wake-up hangs both processes
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    await trio.testing.wait_all_tasks_blocked()  # asleep, announced
                    child.send("go")
                assert got == [b"hello"]
                # The interrupt was not lost either: it ended the sender's
                # trio.run once its socket had lingered until we read.
                assert await child.recv() == ("interrupted", [_wire.DATA])


async def test_every_doorbell_rings_under_ki_protection(monkeypatch):
    seen: list[tuple[bytes, bool]] = []
    seam.patch_doorbells(
        monkeypatch, lambda conn, what: seen.append((what, trio.lowlevel.currently_ki_protected()))
    )
    # Two connectors on one PULL: its poller task handles their doorbells;
    # the PAIRs wait on their one peer's doorbell directly.
    async with (
        shmsock.socket(PULL) as pull,
        shmsock.socket(PUSH, ring_size=4096) as a,
        shmsock.socket(PUSH, ring_size=4096) as b,
        shmsock.socket(PAIR, ring_size=4096) as x,
        shmsock.socket(PAIR, ring_size=4096) as y,
    ):
        pull.bind("shm://kiprot")
        a.connect("shm://kiprot")
        b.connect("shm://kiprot")
        x.bind("shm://kipair")
        y.connect("shm://kipair")
        await wait_peers(pull, 2)
        await wait_peers(x, 1)
        big = [bytes(1000)] * 3  # a few of these fill a 4 KiB ring: writers wait for room

        async def into_pull() -> None:
            for _ in range(20):
                await a.send(b"a")
                await b.send_many(big)

        async def pull_side() -> None:
            n = 0
            while n < 20 * 4:
                n += len(await pull.recv_many(2))

        async def y_to_x() -> None:
            for _ in range(20):
                await y.send(bytes(1500))
                await y.send_many(big)

        async def x_side() -> None:
            for _ in range(20 * 4):
                await x.recv()

        async def x_to_y() -> None:
            for _ in range(20):
                try:
                    x.send_nowait(bytes(1500))
                except trio.WouldBlock:
                    await x.send(bytes(1500))

        async def y_side() -> None:
            n = 0
            async for _ in y:
                n += 1
                if n == 20:
                    break

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for task in (into_pull, pull_side, y_to_x, x_side, x_to_y, y_side):
                    nursery.start_soon(task)
    assert {what for what, _ in seen} >= {_wire.DATA, _wire.SPACE}
    assert all(protected for _, protected in seen)


async def test_ctrl_c_in_a_blocked_recv_interrupts_it_like_a_cancel():
    with spawn(peers.ctrl_c_in_blocked_recv, "shm://ctrlc-recv") as child:
        assert await child.recv() == [
            "KeyboardInterrupt",
            "KeyboardInterrupt",
            b"after",
            b"q2",
            b"r2",
        ]
