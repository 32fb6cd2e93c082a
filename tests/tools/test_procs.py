"""The helpers that run peers in other processes (tests/helpers/procs.py)."""

from __future__ import annotations

from helpers import peers
from helpers.procs import spawn


async def test_finishing_a_child_that_already_left_checks_its_status():
    # finish() must not fail on the race CI lost once: a child that ends its
    # work by itself may be gone, its pipe closed, before it is told "exit".
    with spawn(peers.say_and_leave, "done") as child:
        assert await child.recv() == "done"
        assert await child.join() == 0
        await child.finish()
