"""A full shared-memory filesystem as shmsock sees it (run as a script).

test_reliability.py runs this in a process whose root has room for small
rings only: a tmpfs of LIMIT bytes mounted in a private mount namespace or,
where mounting is not allowed, a file size limit (RLIMIT_FSIZE) of LIMIT
bytes, which makes the allocation fail the same way.  It prints what
happened as JSON; a SIGBUS would show as the process dying of it.

usage: python fullshm.py LIMIT [--rlimit]   (the root is $SHMSOCK_ROOT)
"""

from __future__ import annotations

import json
import os
import resource
import sys

import trio

import shmsock
from shmsock import PAIR, PULL, PUSH

SMALL = 4096  # a ring that fits
BIG = 1 << 20  # a ring that does not


def _listing() -> list[str]:
    userdir = os.path.join(os.environ["SHMSOCK_ROOT"], f"shmsock-{os.geteuid()}")
    return sorted(os.listdir(userdir)) if os.path.isdir(userdir) else []


async def scenario() -> dict[str, object]:
    out: dict[str, object] = {}
    async with shmsock.socket(PULL, ring_size=SMALL) as pull:
        pull.bind("shm://full")  # binding needs no room
        before = _listing()
        # A connector whose ring cannot be allocated fails in connect().
        async with shmsock.socket(PUSH, ring_size=BIG) as big:
            try:
                big.connect("shm://full")
                out["connect"] = ["connected", ""]
            except shmsock.SharedMemoryFull as exc:
                out["connect"] = [type(exc).__name__, str(exc)]
            out["left_by_connect"] = sorted(set(_listing()) - set(before))
        # A binder that cannot allocate its ring for a connection refuses it,
        # and the connector is told why.
        # (PAIRs: a PULL's rings are the smallest whatever its ring_size.)
        async with (
            shmsock.socket(PAIR, ring_size=BIG) as big_binder,
            shmsock.socket(PAIR, ring_size=SMALL) as small,
        ):
            big_binder.bind("shm://full2")
            small.connect("shm://full2")
            try:
                with trio.fail_after(10):
                    await small.send(b"x")
                out["accept"] = ["sent", ""]
            except shmsock.SharedMemoryFull as exc:
                out["accept"] = [type(exc).__name__, str(exc)]
        # What fits still works.
        async with shmsock.socket(PUSH, ring_size=SMALL) as ok:
            ok.connect("shm://full")
            await ok.send(b"fits")
            out["received"] = (await pull.recv()).decode()
    out["left_at_end"] = _listing()
    return out


def main() -> None:
    limit = int(sys.argv[1])
    if "--rlimit" in sys.argv:
        # Python ignores SIGXFSZ, so going past the limit is EFBIG, not death.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    print(json.dumps(trio.run(scenario)))


if __name__ == "__main__":
    main()
