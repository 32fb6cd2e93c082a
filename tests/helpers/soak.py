"""Soak peers and bookkeeping (used by test_soak.py).

Every message carries who sent it and where it stands: an 8-byte header
``<sender:u16><incarnation:u16><seq:u32>`` (a sender restarted after a
kill is a new incarnation, numbering from 0 again), then a filler that is a
function of seq, so a torn or mixed-up message cannot pass for a good one.

"Handed over" is defined by the sender's own report: after each ``send``
or ``send_many`` returns, the sender writes how many messages it has
handed over so far to its report file with ``pwrite`` (8 bytes, little
endian).  The kernel has the value once ``pwrite`` returns, so a SIGKILL
cannot lose it; it can only come between a send returning and its
``pwrite``, which is why a killed sender may have a few more messages
delivered than it reported ("unconfirmed", at most one batch).

The peers run in processes forked from a server that has shmsock
imported already, so that restarting one every few hundred milliseconds
costs little CPU (spawning a fresh interpreter costs a few hundred ms).
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Iterable
from multiprocessing.connection import Connection

import trio

import shmsock

HEADER = struct.Struct("<HHI")
MAX_BATCH = 32
_BATCHES = (1, 1, 1, 4, MAX_BATCH)  # mostly send(), some send_many()


def message(sender: int, incarnation: int, seq: int) -> bytes:
    return HEADER.pack(sender, incarnation, seq) + bytes([seq & 0xFF]) * (seq % 23)


def read_count(path: str) -> int:
    """What a sender reported as handed over (0 if it never reported)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
    except FileNotFoundError:
        return 0
    return int.from_bytes(raw, "little") if len(raw) == 8 else 0


def sender(
    conn: Connection, endpoint: str, sender_id: int, incarnation: int, report: str, seed: int
) -> None:
    """A PUSH that sends numbered messages until told to stop (or killed).

    Reports "ready" once connected, and ("stopped", count) when told to
    stop; then waits for "exit" and closes, waiting for its messages to be
    read.
    """

    async def main() -> None:
        rng = random.Random(seed)
        fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        async with shmsock.socket(shmsock.PUSH, linger=None) as push:
            push.connect(endpoint)
            conn.send("ready")
            stop = trio.Event()

            async def wait_for_stop() -> None:
                await trio.to_thread.run_sync(conn.recv)
                stop.set()

            seq = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_for_stop)
                while not stop.is_set():
                    k = rng.choice(_BATCHES)
                    if k == 1:
                        await push.send(message(sender_id, incarnation, seq))
                    else:
                        await push.send_many(
                            [message(sender_id, incarnation, seq + i) for i in range(k)]
                        )
                    seq += k
                    os.pwrite(fd, seq.to_bytes(8, "little"), 0)
            conn.send(("stopped", seq))
            await trio.to_thread.run_sync(conn.recv)
        os.close(fd)

    trio.run(main)


def binder(conn: Connection, endpoint: str, report: str) -> None:
    """A PULL that binds and appends the header of every message it receives.

    Reports "ready" once bound.  Told ("drain", {sender: count}), it reports
    "drained" once it has received message count-1 of every sender, then
    waits for "exit".  A SIGKILL loses only what it had received and not
    yet appended: at most one batch.
    """

    async def main() -> None:
        fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        last: dict[int, int] = {}
        targets: dict[int, int] | None = None
        drained = trio.Event()

        def reached() -> bool:
            assert targets is not None
            return all(last.get(s, -1) >= n - 1 for s, n in targets.items())

        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind(endpoint)
            conn.send("ready")

            async def wait_for_drain() -> None:
                nonlocal targets
                cmd, targets = await trio.to_thread.run_sync(conn.recv)
                assert cmd == "drain"
                if reached():
                    drained.set()

            async def receive() -> None:
                while True:
                    msgs = await pull.recv_many(256)
                    os.write(fd, b"".join(m[: HEADER.size] for m in msgs))
                    for m in msgs:
                        s, _inc, seq = HEADER.unpack_from(m)
                        last[s] = seq
                    if targets is not None and reached():
                        drained.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_for_drain)
                nursery.start_soon(receive)
                await drained.wait()
                conn.send("drained")
                await trio.to_thread.run_sync(conn.recv)
                nursery.cancel_scope.cancel()
        os.close(fd)

    trio.run(main)


class Ledger:
    """What a receiver got, checked message by message.

    Per (sender, incarnation), messages must arrive numbered 0, 1, 2...
    with the right filler: anything else (a duplicate, a gap, a reordering,
    a torn payload) is recorded as an error.
    """

    def __init__(self) -> None:
        self.next: dict[tuple[int, int], int] = {}
        self.delivered = 0
        self.errors: list[str] = []

    def take(self, msgs: Iterable[bytes]) -> None:
        unpack = HEADER.unpack_from
        nxt = self.next
        for m in msgs:
            s, inc, seq = unpack(m)
            key = (s, inc)
            expected = nxt.get(key, 0)
            bad = seq != expected or m[8:] != bytes([seq & 0xFF]) * (seq % 23)
            if bad and len(self.errors) < 20:
                self.errors.append(f"sender {s}.{inc}: got seq {seq}, expected {expected}")
            nxt[key] = seq + 1
            self.delivered += 1


def read_binder_report(path: str) -> list[tuple[int, int]]:
    """(sender, seq) of every message a binder incarnation recorded, in order."""
    with open(path, "rb") as f:
        raw = f.read()
    usable = len(raw) - len(raw) % HEADER.size  # a kill may cut the last write
    return [(s, seq) for s, _inc, seq in HEADER.iter_unpack(raw[:usable])]
