"""unbind and disconnect, as in pyzmq, across real processes.

unbind stops accepting at an endpoint, removes its files and ends the
connections accepted there; disconnect ends a connection and releases the
slot.  Either way the peer still reads what this socket sent; what the peer
sent and this socket had taken but not handed out is dropped and counted;
the socket's other endpoints go on as before.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from helpers import endpointpeers, seam
from helpers.conformance import wait_peers
from helpers.procs import Child, spawn

import shmsock
from shmsock import PAIR, PULL, PUSH, REP, REQ, _stats


@asynccontextmanager
async def peer(kind: str, endpoint: str, bind: bool) -> AsyncIterator[Child]:
    """A socket in another process, driven by commands (see endpointpeers)."""
    with spawn(endpointpeers.commanded, kind, endpoint, bind) as child:
        await child.expect("ready")
        yield child
        child.send(("exit",))
        assert await child.join() == 0


async def ask(child: Child, *order: Any) -> Any:
    child.send(order)
    return await child.recv()


def files(userdir) -> list[str]:
    return sorted(os.listdir(userdir)) if userdir.exists() else []


def dropped(endpoint: str, kind: str) -> int:
    return _stats.snapshot()[(endpoint, kind)].dropped


async def test_after_unbind_a_new_connector_cannot_attach_and_the_files_are_gone(userdir):
    ep = "shm://ub"
    async with shmsock.socket(PULL) as pull:
        pull.bind(ep)
        async with peer("PUSH", ep, False) as first:
            await wait_peers(pull, 1)
            assert await ask(first, "send", "a", 3) == "sent"
            assert [await pull.recv() for _ in range(3)] == [b"a:0", b"a:1", b"a:2"]
            pull.unbind(ep)
            assert pull.peer_count == 0
            assert not (userdir / "ub@sock").exists() and not (userdir / "ub@lock").exists()
            assert await ask(first, "wait_gone") == "gone"
            # Left: the live connector's own slot, its lock and the ring it
            # writes (it removed ours once it saw the connection end).
            assert files(userdir) == ["ub@0.c", "ub@0.lock"]
            async with peer("PUSH", ep, False) as second:
                # Nobody listens there now: nothing can attach.
                assert await ask(second, "wait_peers", 1, 1.0) == 0
                assert pull.peer_count == 0
                pull.bind(ep)  # the endpoint is free again: both attach by themselves
                await wait_peers(pull, 2)
                assert await ask(second, "send", "b", 1) == "sent"
                assert await pull.recv() == b"b:0"
    assert dropped(ep, "PULL") == 0


async def test_unbind_leaves_what_was_sent_readable_by_the_peer():
    ep = "shm://ubsent"
    async with shmsock.socket(PUSH) as push:
        push.bind(ep)
        async with peer("PULL", ep, False) as reader:
            await wait_peers(push, 1)
            for i in range(50):
                await push.send(b"%d" % i)
            push.unbind(ep)  # before the reader has read any of it
            assert await ask(reader, "recv", 50) == [b"%d" % i for i in range(50)]
            assert await ask(reader, "wait_gone") == "gone"


async def test_unbind_drops_what_it_had_taken_and_leaves_the_rest_for_the_next_binder():
    ep = "shm://ubkeep"
    async with shmsock.socket(PULL) as pull:
        pull.bind(ep)
        async with peer("PUSH", ep, False) as writer:
            await wait_peers(pull, 1)
            # Still in the connector's ring at unbind: the next binder gets it.
            assert await ask(writer, "send", "a", 10) == "sent"
            pull.unbind(ep)
            assert await ask(writer, "wait_gone") == "gone"
            pull.bind(ep)
            with trio.fail_after(30):
                got = [await pull.recv() for _ in range(10)]
            assert got == [b"a:%d" % i for i in range(10)]
            assert dropped(ep, "PULL") == 0
            # Taken from the ring with the first one, not handed out: dropped.
            assert await ask(writer, "send", "b", 10) == "sent"
            assert await pull.recv() == b"b:0"
            pull.unbind(ep)
            assert dropped(ep, "PULL") == 9
            assert await ask(writer, "wait_gone") == "gone"
            pull.bind(ep)
            assert await ask(writer, "send", "c", 1) == "sent"
            assert await pull.recv() == b"c:0"  # not b:1: dropped, never duplicated


async def test_after_disconnect_the_binder_sees_the_peer_go_and_reads_what_was_sent(userdir):
    ep = "shm://dc"
    async with peer("PULL", ep, True) as binder, shmsock.socket(PUSH) as push:
        push.connect(ep)
        await wait_peers(push, 1)
        for i in range(50):
            await push.send(b"%d" % i)
        push.disconnect(ep)
        assert push.peer_count == 0
        assert not (userdir / "dc@0.c").exists()  # our ring and slot lock went at once
        assert not (userdir / "dc@0.lock").exists()
        assert await ask(binder, "recv", 50) == [b"%d" % i for i in range(50)]
        assert await ask(binder, "wait_gone") == "gone"
        left = files(userdir)
        assert all(n in ("dc@lock", "dc@sock") or n.startswith("dc@spare.") for n in left), left
        push.connect(ep)  # and it may connect again
        await push.send(b"again")
        assert await ask(binder, "recv", 1) == [b"again"]


async def test_disconnect_drops_and_counts_what_the_binder_sent_and_was_not_received():
    ep = "shm://dcdrop"
    async with peer("PUSH", ep, True) as binder, shmsock.socket(PULL) as pull:
        pull.connect(ep)
        await wait_peers(pull, 1)
        assert await ask(binder, "send", "a", 10) == "sent"
        assert await pull.recv() == b"a:0"  # nine more taken with it
        assert await ask(binder, "send", "b", 5) == "sent"  # still in the ring
        pull.disconnect(ep)
        assert dropped(ep, "PULL") == 14
        assert await ask(binder, "wait_gone") == "gone"


async def test_a_push_bound_on_two_endpoints_that_unbinds_one_keeps_sending_to_the_other(userdir):
    async with shmsock.socket(PUSH) as push:
        push.bind("shm://two1")
        push.bind("shm://two2")
        async with (
            peer("PULL", "shm://two1", False) as one,
            peer("PULL", "shm://two2", False) as two,
        ):
            await wait_peers(push, 2)
            push.unbind("shm://two1")
            assert push.peer_count == 1
            for i in range(200):
                await push.send(b"%d" % i)
            assert await ask(two, "recv", 200) == [b"%d" % i for i in range(200)]
            assert await ask(one, "wait_gone") == "gone"
            assert await ask(one, "wait_peers", 1, 0.2) == 0
            assert (userdir / "two2@sock").exists() and (userdir / "two2@lock").exists()
            assert not (userdir / "two1@sock").exists() and not (userdir / "two1@lock").exists()


async def test_disconnecting_one_endpoint_leaves_the_others_connected():
    async with (
        peer("PUSH", "shm://dc1", True) as one,
        peer("PUSH", "shm://dc2", True) as two,
        shmsock.socket(PULL) as pull,
    ):
        pull.connect("shm://dc1")
        pull.connect("shm://dc2")
        await wait_peers(pull, 2)
        pull.disconnect("shm://dc1")
        assert pull.peer_count == 1
        assert await ask(one, "wait_gone") == "gone"
        assert await ask(two, "send", "two", 5) == "sent"
        assert [await pull.recv() for _ in range(5)] == [b"two:%d" % i for i in range(5)]


@pytest.mark.parametrize("parent_binds", [True, False], ids=["unbind", "disconnect"])
async def test_a_pair_may_bind_or_connect_again_after_unbind_or_disconnect(parent_binds):
    ep = f"shm://pairagain-{parent_binds}"
    async with peer("PAIR", ep, not parent_binds) as other, shmsock.socket(PAIR) as pair:
        attach = pair.bind if parent_binds else pair.connect
        detach = pair.unbind if parent_binds else pair.disconnect
        attach(ep)
        assert await ask(other, "send", "first", 1) == "sent"
        assert await pair.recv() == b"first:0"
        detach(ep)
        assert await ask(other, "wait_gone") == "gone"
        with pytest.raises(trio.WouldBlock):  # as a new PAIR: no peer, no error
            pair.send_nowait(b"nobody")
        attach(ep)  # a PAIR that has its endpoint raises StateError here
        await wait_peers(pair, 1)
        assert await ask(other, "wait_peers", 1, 30) == 1
        assert await ask(other, "send", "second", 1) == "sent"
        assert await pair.recv() == b"second:0"
        await pair.send(b"back")
        assert await ask(other, "recv", 1) == [b"back"]


async def test_a_pair_waiting_to_receive_when_it_unbinds_waits_for_the_next_peer():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://pairwait")
        b.connect("shm://pairwait")
        await wait_peers(a, 1)
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await a.recv())

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            a.unbind("shm://pairwait")
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # still waiting, not BrokenResourceError
            a.bind("shm://pairwait")
            await wait_peers(b, 1)
            await b.send(b"to the new binding")
        assert got == [b"to the new binding"]


async def test_a_req_whose_request_went_to_a_disconnected_endpoint_is_told_at_once():
    async with shmsock.socket(REP) as rep, shmsock.socket(REQ) as req:
        rep.bind("shm://reqdc")
        req.connect("shm://reqdc")
        await req.send(b"question")
        assert await rep.recv() == b"question"
        async with trio.open_nursery() as nursery:

            async def disconnect_soon() -> None:
                await trio.testing.wait_all_tasks_blocked()
                req.disconnect("shm://reqdc")

            nursery.start_soon(disconnect_soon)
            with trio.fail_after(10), pytest.raises(trio.BrokenResourceError):
                await req.recv()
        await rep.send(b"answer to nobody")  # dropped without error, as for a dead REQ
        req.connect("shm://reqdc")
        await req.send(b"again")  # the REQ is ready to send again
        assert await rep.recv() == b"again"


async def test_unbind_and_disconnect_refuse_what_the_socket_did_not_do():
    async with shmsock.socket(PULL) as s:
        s.bind("shm://mine")
        s.connect("shm://theirs")
        with pytest.raises(shmsock.InvalidEndpoint, match=r"not bound to shm://other$"):
            s.unbind("shm://other")
        with pytest.raises(shmsock.InvalidEndpoint, match="use disconnect"):
            s.unbind("shm://theirs")
        with pytest.raises(shmsock.InvalidEndpoint, match=r"not connected to shm://other$"):
            s.disconnect("shm://other")
        with pytest.raises(shmsock.InvalidEndpoint, match="use unbind"):
            s.disconnect("shm://mine")
        for bad in ("tcp://1.2.3.4:5", "shm://", "mine"):
            with pytest.raises(shmsock.InvalidEndpoint):
                s.unbind(bad)
            with pytest.raises(shmsock.InvalidEndpoint):
                s.disconnect(bad)
        s.unbind("shm://mine")
        s.disconnect("shm://theirs")
        with pytest.raises(shmsock.InvalidEndpoint):
            s.unbind("shm://mine")
        with pytest.raises(shmsock.InvalidEndpoint):
            s.disconnect("shm://theirs")
        s.bind("shm://mine")
    with pytest.raises(trio.ClosedResourceError):
        s.unbind("shm://mine")
    with pytest.raises(trio.ClosedResourceError):
        s.disconnect("shm://theirs")


async def test_what_was_sent_before_the_connector_read_our_welcome_still_reaches_it():
    # The binder attaches a connector when it answers the HELLO, and may
    # write at once; the connector opens the binder's ring only when it
    # reads that answer.  An unbind in between must leave the ring for it.
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        push.bind("shm://early")
        pull.connect("shm://early")  # sends its HELLO now
        seam.poll(push)  # accept and answer it, here and now, in this task
        assert push.peer_count == 1 and pull.peer_count == 0
        push.send_nowait(b"before the welcome was read")
        push.unbind("shm://early")
        with trio.fail_after(10):
            assert await pull.recv() == b"before the welcome was read"


async def test_a_connector_closed_before_reading_the_welcome_removes_the_binders_ring(userdir):
    # The other side of the case above: unbind left its ring for the
    # connector, which closes without ever having read the answer.
    async with shmsock.socket(PUSH) as push:
        pull = shmsock.socket(PULL)
        push.bind("shm://early2")
        pull.connect("shm://early2")
        seam.poll(push)
        push.unbind("shm://early2")
        assert any(".b." in name for name in files(userdir))
        pull.close()
        assert files(userdir) == []
