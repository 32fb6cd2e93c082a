"""The direct wait on a doorbell, across processes: no wake-up is ever lost.

A receive that finds its only pipe empty waits on that pipe's doorbell
itself.  The doorbell it woke on stays muted and unread (*held*) until the
next receive reads it, and that receive leaves it muted (*kept*) for its
own wait, with no unmute and mute in between (``shm/_doorbell.py``, rule
3).  Every other way a call can end (a message after all, a cancel, a
WouldBlock, a wait in a lot) must hand the doorbell back to the socket's
poller, or a later ``recv_nowait``, a parked task or a sender waiting for
room would never hear it ring.  The tests mix all of those, check after
every call that the poller watches the doorbell again (the kernel's own
record of the epoll set), and count each message exactly once, in order;
a lost wake-up shows as a hang (``fail_after``).
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from helpers import wakepeers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, REP
from shmsock._transport.shm import _doorbell

SIZE = 200  # twenty to a 4 KiB ring: the sender runs out of room too


def watched(sock: shmsock.Socket) -> list[int]:
    """The event masks of the socket's doorbells in its poller's epoll set (kernel's record).

    Zero means muted: only a task waiting on it directly may leave it so.
    """
    reactor = sock._hub.reactor
    doorbells = {c.fd for c in sock._hub.pipes if c.alive}
    masks = []
    with open(f"/proc/self/fdinfo/{reactor.fileno()}") as f:
        for line in f:
            if line.startswith("tfd:"):
                parts = line.split()
                if int(parts[1]) in doorbells:
                    masks.append(int(parts[3], 16))
    return masks


def check_watched(sock: shmsock.Socket) -> None:
    assert sock._hub.bells is not None and sock._hub.bells.kept is None
    masks = watched(sock)
    assert masks and all(masks), masks


async def test_receives_of_every_kind_with_cancels_around_waits_lose_no_wakeup():
    count = 1500
    rng = random.Random(23)
    async with shmsock.socket(PAIR, ring_size=4096) as pair:
        pair.bind("shm://wake-mix")
        with spawn(wakepeers.pair_bursts, "shm://wake-mix", count, SIZE, 7) as peer:
            await peer.expect("ready")
            await pair.wait_peers()
            got: list[int] = []
            kinds: dict[str, int] = {}

            def note(data: bytes) -> None:
                got.append(int(data.split(b" ", 1)[0]))

            with trio.fail_after(120):
                while len(got) < count:
                    kind = rng.choice(("recv", "cancel", "cancel", "nowait", "multipart", "many"))
                    kinds[kind] = kinds.get(kind, 0) + 1
                    if kind == "recv":
                        note(await pair.recv())
                    elif kind == "cancel":
                        # Cancelled before it waits, during the wait, or not at all.
                        with trio.move_on_after(rng.choice((0, 0, 0.0001, 0.0005, 0.002))):
                            note(await pair.recv())
                    elif kind == "nowait":
                        # A recv_nowait loop: it sees a message only through the
                        # poller, so a doorbell left muted would hang it here.
                        while True:
                            try:
                                note(pair.recv_nowait())
                                break
                            except trio.WouldBlock:
                                check_watched(pair)
                                await trio.sleep(0.0002)
                    elif kind == "multipart":
                        note((await pair.recv_multipart())[0])
                    else:
                        for data in await pair.recv_many(3):
                            note(data)
                    check_watched(pair)
            assert got == list(range(count))
            assert all(kinds.values())
            await pair.send(b"end")
            await peer.expect(b"end")
            await peer.finish()


@pytest.mark.parametrize("spin_us", [0, 200], ids=["parked", "spinning"])
async def test_a_rep_replies_to_every_request_once_whatever_its_waits_became(spin_us):
    # The REP side of the round trip, where the kept doorbell is the common
    # case: each reply is the request, each arrives once; between requests
    # the REP is cancelled in its wait now and then, and polls with
    # recv_nowait now and then.  Spinning, the first look keeps the
    # doorbell and the spin hands it back before it parks.
    count = 1500
    rng = random.Random(5)
    async with shmsock.socket(REP, spin_us=spin_us) as rep:
        rep.bind("shm://wake-rep")
        with spawn(wakepeers.req_numbers, "shm://wake-rep", count, 11) as peer:
            await peer.expect("ready")
            await rep.wait_peers()
            seen = 0
            with trio.fail_after(120):
                while seen < count:
                    way = rng.random()
                    request = None
                    if way < 0.15:
                        with trio.move_on_after(rng.choice((0, 0.0001, 0.0005))):
                            request = await rep.recv()
                    elif way < 0.3:
                        try:
                            request = rep.recv_nowait()
                        except trio.WouldBlock:
                            check_watched(rep)
                            await trio.sleep(0.0002)
                    else:
                        request = await rep.recv()
                    check_watched(rep)
                    if request is not None:
                        assert request == b"%d" % seen
                        seen += 1
                        await rep.send(request)
            await peer.expect("ok")
            await peer.finish()


@pytest.mark.parametrize("multipart", [False, True], ids=["returns", "raises"])
async def test_a_message_between_the_doorbell_read_and_the_announcement_unmutes_it(
    monkeypatch, multipart
):
    # The race the stress tests above rarely hit, made to happen: the
    # receive reads its held doorbell (kept muted for the wait it expects),
    # and the peer writes before it announces.  The receive returns that
    # message, or raises MultipartMessage about it; either way the doorbell
    # must be the poller's again, or the recv_nowait loop after it never
    # hears the next ring.
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://wake-race")
        b.connect("shm://wake-race")
        await a.wait_peers()
        await b.wait_peers()
        async with trio.open_nursery() as nursery:
            first: list[bytes] = []

            async def receive() -> None:
                first.append(await a.recv())  # waits on the doorbell, wakes holding it

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            await b.send(b"first")
        assert first == [b"first"] and a._hub.bells.held is not None

        real = _doorbell.recv_with_fds
        late: list[bool] = []

        def read_then_peer_writes(sock, size):
            got = real(sock, size)
            if not late:
                late.append(True)
                # before the receiver announces
                b.send_multipart_nowait([b"late", b"2"]) if multipart else b.send_nowait(b"late")
            return got

        monkeypatch.setattr(_doorbell, "recv_with_fds", read_then_peer_writes)
        if multipart:
            with pytest.raises(shmsock.MultipartMessage):
                await a.recv()
            check_watched(a)
            assert a.recv_multipart_nowait() == [b"late", b"2"]
        else:
            assert await a.recv() == b"late"
        monkeypatch.setattr(_doorbell, "recv_with_fds", real)
        check_watched(a)
        with pytest.raises(trio.WouldBlock):
            a.recv_nowait()  # announces: the next send rings
        await b.send(b"after")
        with trio.fail_after(10):
            while True:
                try:
                    assert a.recv_nowait() == b"after"
                    break
                except trio.WouldBlock:
                    await trio.sleep(0.001)
