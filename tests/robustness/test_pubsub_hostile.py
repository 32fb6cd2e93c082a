"""A subscriber that forges what it writes upstream: refused, and the others lose nothing.

A SUB's ring toward its publisher carries only control messages (records
flagged CTRL, docs/protocol.md).  Here one of two subscribers writes
something else into that ring by hand, as a broken or hostile program
would: data where only control may come, a control record marked as a
fragment, a control message far over the 1 KiB limit.  The publisher must
log a warning that names the connection and the reason, count it as
corrupt, end that connection, and go on serving the honest subscriber
without losing one message.
"""

from __future__ import annotations

import logging
import os
import random
from array import array

import pytest
import trio
import trio.testing
from helpers.conformance import wait_peers

import shmsock
from shmsock import PUB, SUB
from shmsock import _ring as R
from shmsock._transport.shm import _wire


def forge(sub: shmsock.Socket, data: bytes, lens: list[int], flags: bytes) -> None:
    """Write records into *sub*'s ring toward its publisher, bypassing the socket."""
    slot = sub._hub.transports["shm"].dialer.slots[0]
    n, _wake = slot.tx.write_records(data, array("I", lens), flags, 0, atomic=True, announce=False)
    assert n == len(lens)
    slot.peer.ring(_wire.DATA)


FORGERIES = {
    "data where only control messages may come": (b"hello", [5], bytes([R.START])),
    "a control record is marked as a fragment": (
        b"\x01ab",
        [1, 2],
        bytes([R.START | R.CTRL | R.CONT, R.CTRL]),
    ),
    "a control message over 1024 bytes": (
        b"\x01" + bytes(1500),
        [1501],
        bytes([R.START | R.CTRL]),
    ),
    "a control message over 1024 bytes or 16 frames (20 frames)": (
        bytes(20),
        [1] * 20,
        bytes([R.START | R.CTRL | R.MORE] + [R.CTRL | R.MORE] * 18 + [R.CTRL]),
    ),
}


@pytest.mark.parametrize("reason", list(FORGERIES))
async def test_a_forged_subscription_record_is_refused_and_honest_peers_lose_nothing(
    reason, caplog
):
    endpoint = f"shm://forged-{os.getpid()}-{random.randrange(1 << 30)}"
    async with (
        shmsock.socket(PUB) as pub,
        shmsock.socket(SUB) as honest,
        shmsock.socket(SUB) as forger,
    ):
        pub.bind(endpoint)
        honest.subscribe(b"")
        forger.subscribe(b"")
        honest.connect(endpoint)
        forger.connect(endpoint)
        await wait_peers(pub, 2)
        await wait_peers(forger, 1)
        await pub.send(b"before")
        assert await honest.recv() == b"before"
        assert await forger.recv() == b"before"

        with caplog.at_level(logging.WARNING, logger="shmsock"):
            forge(forger, *FORGERIES[reason])
            got: list[bytes] = []

            async def read_all() -> None:
                while len(got) < 200:
                    got.append(await honest.recv())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_all)
                for i in range(200):
                    await pub.send(b"%d" % i)
        assert got == [b"%d" % i for i in range(200)]
        words = reason.split(" (")[0]
        warnings = [r.getMessage() for r in caplog.records if words in r.getMessage()]
        assert warnings, [r.getMessage() for r in caplog.records]
        assert endpoint in warnings[0]
        assert f"pid {os.getpid()}" in warnings[0]
        assert pub.stats()[endpoint].corrupt >= 1
