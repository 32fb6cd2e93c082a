"""No message is lost once its ``send`` returned, while its reader lives.

Every test here runs the writer in another OS process (lingerpeers.py) and
ends it in one of the ways a process ends: ``close()``, ``aclose()`` with
its linger run out, leaving ``async with`` and exiting, SIGTERM (unhandled,
or handled by cancelling as a Trio program does) and SIGKILL.  The reader
reads nothing until the writer has ended, so it is slower than any linger;
then it must get every message whose send returned: none lost, none twice,
in order.

The losses that remain are counted in ``dropped``: tests at the end.
"""

from __future__ import annotations

import os
import signal

import pytest
import trio
import trio.testing
from helpers import lingerpeers, peers, seam
from helpers.conformance import wait_peers
from helpers.lingerpeers import ENDS, message, number
from helpers.procs import Child, forked, spawn

import shmsock
from shmsock import PAIR, PULL, PUSH, REQ, _stats

SIZE = 1024  # bytes per message
COUNT = 40  # messages of a test whose ring does not fill
RING = 64 * 1024  # the writer's ring: holds COUNT messages, and about 60
FULL_ENDS = ("close", "exit", "sigkill")


def _name(tag: str) -> str:
    return f"shm://lg-{tag}-{os.getpid()}"


def _attach(sock: shmsock.Socket, endpoint: str, bind: bool) -> None:
    if bind:
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)


async def _sent(child: Child) -> int:
    tag, n = await child.recv()
    assert tag == "sent"
    return int(n)


async def _ended(child: Child, end: str) -> None:
    """Have *child* end as *end* says, and wait until it has."""
    if end in ("close", "aclose", "exit"):
        child.send("go")
    if end in ("close", "aclose"):
        await child.expect("closed")
        return
    if end == "sigkill":
        child.kill()
        assert child.proc.exitcode == -signal.SIGKILL
        return
    if end in ("sigterm", "sigterm-cancel"):
        os.kill(child.pid, signal.SIGTERM)
    code = await child.join()
    assert code == (-signal.SIGTERM if end == "sigterm" else 0)


async def _finish(child: Child, end: str) -> None:
    if end in ("close", "aclose"):
        await child.finish()


async def _unread(sock: shmsock.Socket) -> int:
    """Bytes the writer published that *sock* has not read (the test's premise)."""
    await wait_peers(sock, 1)  # attached on this side too
    return sum(c.rx.available() for c in seam.connections(sock))


async def _clean(endpoint: str) -> None:
    """Take over what a killed binder left at *endpoint*, and remove it."""
    async with shmsock.socket(PULL) as heir:
        heir.bind(endpoint)


def _writer(
    kind: str,
    endpoint: str,
    binds: bool,
    end: str,
    count: int = COUNT,
    size: int = SIZE,
    *,
    fill: bool = False,
) -> Child:
    """A writer in another process (see lingerpeers.write_then_end)."""
    args = (kind, endpoint, binds, end, count, size, RING, fill)
    return spawn(lingerpeers.write_then_end, *args, ctx=forked())


async def _read_all_after_it_ended(
    sock: shmsock.Socket, child: Child, end: str, *, full: bool = False
) -> None:
    """Read nothing until *child* has sent all and ended as *end* says; then
    read every message it sent: none lost, none twice, in order."""
    await child.expect("ready")
    sent = await _sent(child)
    unread = await _unread(sock)
    assert unread >= sent * SIZE  # all of it waits in the ring
    if full:
        assert unread > RING - 2 * SIZE
    await _ended(child, end)
    with trio.fail_after(10):
        got = [number(await sock.recv()) for _ in range(sent)]
    assert got == list(range(sent))


# Every end with a ring that does not fill; three of them with a full one.
PUSH_CASES = [
    pytest.param(end, binds, fill, id=f"{end}-{who}-{ring}")
    for fill, ring, ends in [(False, "ring-not-full", ENDS), (True, "ring-full", FULL_ENDS)]
    for end in ends
    for binds, who in [(False, "push-connects"), (True, "push-binds")]
]


@pytest.mark.parametrize(("end", "push_binds", "fill"), PUSH_CASES)
async def test_pull_gets_every_message_of_a_push_that_ended(end, push_binds, fill):
    endpoint = _name(f"pp-{end}-{push_binds}-{fill}")
    child = _writer("PUSH", endpoint, push_binds, end, fill=fill)
    try:
        async with shmsock.socket(PULL) as pull:
            _attach(pull, endpoint, not push_binds)
            await _read_all_after_it_ended(pull, child, end, full=fill)
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()  # nothing twice; and it finds the ring at its end
            assert seam.connections(pull) == []  # so the connection is retired
            await _finish(child, end)
        if push_binds and end in ("sigterm", "sigkill"):
            await _clean(endpoint)
    finally:
        child.close()


PAIR_CASES = [
    pytest.param(end, binds, id=f"{end}-{who}")
    for end in ("close", "exit", "sigkill")
    for binds, who in [(False, "writer-connects"), (True, "writer-binds")]
]


@pytest.mark.parametrize(("end", "writer_binds"), PAIR_CASES)
async def test_pair_gets_every_message_of_a_peer_that_ended(end, writer_binds):
    endpoint = _name(f"pair-{end}-{writer_binds}")
    child = _writer("PAIR", endpoint, writer_binds, end)
    try:
        async with shmsock.socket(PAIR) as pair:
            _attach(pair, endpoint, not writer_binds)
            await _read_all_after_it_ended(pair, child, end)
            with pytest.raises(trio.BrokenResourceError):  # then, and only then
                await pair.recv()
            await _finish(child, end)
        if writer_binds and end == "sigkill":
            await _clean(endpoint)
    finally:
        child.close()


ROUNDS = 3


@pytest.mark.parametrize("end", ["exit", "sigkill"])
@pytest.mark.parametrize("rep_binds", [True, False], ids=["rep-binds", "rep-connects"])
async def test_req_gets_the_reply_a_rep_sent_just_before_it_ended(end, rep_binds):
    endpoint = _name(f"rr-{end}-{rep_binds}")
    with spawn(lingerpeers.reply_then_end, endpoint, rep_binds, end, ROUNDS, ctx=forked()) as child:
        async with shmsock.socket(REQ) as req:
            _attach(req, endpoint, not rep_binds)
            await child.expect("ready")
            with trio.fail_after(10):
                for i in range(ROUNDS - 1):
                    await req.send(b"%d" % i)
                    assert await req.recv() == b"re:%d" % i
            await req.send(b"last")
            await child.expect("replied")  # its send returned; we have not read it
            await _ended(child, end)
            with trio.fail_after(10):
                assert await req.recv() == b"re:last"
        if rep_binds and end == "sigkill":
            await _clean(endpoint)


@pytest.mark.parametrize("reads", [COUNT, 0], ids=["reads", "closes-unread"])
async def test_a_binder_that_closes_before_its_reader_mapped_its_ring_is_still_read(reads):
    # The connector maps the binder's ring when it reads the binder's answer
    # to its HELLO, but the binder can send as soon as it has answered.  A
    # binder that closes before the connector got that far must leave the
    # ring for it; and a connector that closes without reading that answer
    # removes the ring (the fixture checks that no file is left).
    endpoint = _name(f"unmapped-{reads}")
    async with shmsock.socket(PUSH) as push:
        push.bind(endpoint)
        with spawn(lingerpeers.connect_stalled_then_read, endpoint, reads, ctx=forked()) as child:
            await child.expect("ready")
            await wait_peers(push, 1)
            for i in range(COUNT):
                await push.send(message(i, SIZE))
            push.close()
            child.send("go")
            assert await child.recv() == list(range(reads))
            assert await child.join() == 0


async def test_a_connector_removes_the_binders_ring_even_if_the_binder_never_hears_it_went(
    userdir,
):
    # The connector mapped the binder's ring, so once it closes nobody uses
    # that ring.  A binder alive at that moment would remove it on hearing
    # the connection end; one that never hears (it dies first, or closes at
    # the same moment and so sees the connector still there) would leave it
    # behind for every tool to list until the next bind.
    endpoint = _name("deaf-binder")
    name = endpoint[len("shm://") :]
    with spawn(peers.bind_then_freeze, endpoint) as child:
        await child.expect("ready")
        async with shmsock.socket(PULL) as pull:
            pull.connect(endpoint)
            await wait_peers(pull, 1)  # the binder's ring is mapped
            assert [f for f in os.listdir(userdir) if f.startswith(f"{name}@0.b.")]
            child.send("freeze")
            await child.expect("frozen")
        child.kill()
        assert [f for f in os.listdir(userdir) if f.startswith(f"{name}@0.b.")] == []
    await _clean(endpoint)


# -- the losses that remain, and how they are counted -----------------------------


def _dropped(endpoint: str, kind: str) -> int:
    return _stats.snapshot()[(endpoint, kind)].dropped


async def _binder_killed(endpoint: str, push: shmsock.Socket, count: int) -> None:
    """Connect *push* to a binder in another process, send *count* messages
    it never reads, and SIGKILL it."""
    with spawn(peers.pull_idle, endpoint, True, ctx=forked()) as binder:
        await binder.expect("ready")
        push.connect(endpoint)
        for i in range(count):
            await push.send(message(i, 100))
        binder.kill()
        with trio.fail_after(10):
            while push.peer_count:  # noqa: ASYNC110 (until the poller has seen it go)
                await trio.sleep(0.001)


@pytest.mark.parametrize("how", ["aclose", "close"])
async def test_a_connector_whose_binder_never_comes_back_counts_its_unread_ring_as_dropped(how):
    endpoint = _name(f"orphan-{how}")
    try:
        async with shmsock.socket(PUSH, linger=0.05) as push:
            await _binder_killed(endpoint, push, 7)
            if how == "close":
                push.close()
        st = _stats.snapshot()[(endpoint, "PUSH")]
        assert (st.messages_sent, st.dropped) == (7, 7)
    finally:
        await _clean(endpoint)


async def test_a_binder_that_comes_back_within_linger_gets_what_the_connector_left():
    endpoint = _name("comeback")
    got = []
    async with shmsock.socket(PUSH, linger=10) as push:
        await _binder_killed(endpoint, push, 7)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push.aclose)  # waits for a binder to read the ring
            async with shmsock.socket(PULL) as heir:
                heir.bind(endpoint)
                with trio.fail_after(10):
                    got = [number(await heir.recv()) for _ in range(7)]
    assert got == list(range(7))
    assert _dropped(endpoint, "PUSH") == 0


async def test_a_reader_that_dies_with_messages_unread_is_counted_by_its_writer():
    endpoint = _name("deadreader")
    with spawn(peers.pull_idle, endpoint, False, ctx=forked()) as reader:
        async with shmsock.socket(PUSH) as push:
            push.bind(endpoint)
            await reader.expect("ready")
            await wait_peers(push, 1)
            for i in range(5):
                await push.send(message(i, 100))
            assert _dropped(endpoint, "PUSH") == 0
            reader.kill()
            with trio.fail_after(10):
                while push.peer_count:  # noqa: ASYNC110 (until the poller has seen it go)
                    await trio.sleep(0.001)
            assert _dropped(endpoint, "PUSH") == 5


async def test_a_reader_that_closes_counts_what_it_took_and_never_returned():
    endpoint = _name("inbox")
    async with shmsock.socket(PUSH) as push:
        push.bind(endpoint)
        async with shmsock.socket(PULL) as pull:
            pull.connect(endpoint)
            await wait_peers(push, 1)
            for i in range(5):
                await push.send(message(i, 100))
            assert number(await pull.recv()) == 0  # takes the other four along
        assert _dropped(endpoint, "PULL") == 4
        assert _dropped(endpoint, "PUSH") == 0  # they were read from its ring


@pytest.mark.parametrize("push_binds", [False, True], ids=["push-connects", "push-binds"])
async def test_a_reader_that_closes_counts_what_a_writer_that_went_left_it(push_binds):
    endpoint = _name(f"leftover-{push_binds}")
    child = _writer("PUSH", endpoint, push_binds, "exit", 5, 100)
    try:
        async with shmsock.socket(PULL) as pull:
            _attach(pull, endpoint, not push_binds)
            await child.expect("ready")
            assert await _sent(child) == 5
            assert await _unread(pull) > 0
            await _ended(child, "exit")
        # Nobody else maps that ring now: the writer has gone.
        assert _dropped(endpoint, "PULL") == 5
    finally:
        child.close()


async def test_a_lingering_close_ends_when_the_reader_it_waits_for_dies():
    endpoint = _name("lingerdeath")
    with spawn(peers.pull_idle, endpoint, False, ctx=forked()) as reader:
        async with shmsock.socket(PUSH, linger=None) as push:
            push.bind(endpoint)
            await reader.expect("ready")
            await wait_peers(push, 1)
            for i in range(3):
                await push.send(message(i, 100))
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(push.aclose)  # waits for the reader, without bound
                    await trio.testing.wait_all_tasks_blocked()
                    assert not seam.transport_closed(push)
                    reader.kill()  # and now there is nothing left to wait for
            assert seam.transport_closed(push)
        assert _dropped(endpoint, "PUSH") == 3
