"""``inproc://`` through the public socket API.

The conformance suite (tests/conformance) runs every promise on both
schemes; this module checks what is particular to inproc: the registry
(either order, one run, names taken over), refusals, a socket mixing both
schemes, and that closing, lingering, unbinding and statistics keep the
``shm://`` rules.
"""

from __future__ import annotations

import os
import threading

import pytest
import trio
import trio.testing
from helpers.conformance import fd_count, wait_peers

import shmsock
from shmsock import PAIR, PULL, PUSH, REP, REQ, AddressInUse, IncompatiblePeer, _stats


@pytest.mark.parametrize("bind_first", [True, False])
async def test_connect_and_bind_in_either_order(bind_first):
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        if bind_first:
            pull.bind("inproc://order")
            push.connect("inproc://order")
        else:
            push.connect("inproc://order")
            pull.bind("inproc://order")
        await wait_peers(push, 1)
        await push.send(b"hello")
        assert await pull.recv() == b"hello"


async def test_a_connect_waits_for_each_new_bind():
    async with shmsock.socket(PUSH) as push:
        push.connect("inproc://rebind")
        for round_ in range(3):
            async with shmsock.socket(PULL) as pull:
                pull.bind("inproc://rebind")
                await push.send(b"%d" % round_)
                assert await pull.recv() == b"%d" % round_


async def test_a_live_name_is_in_use_and_a_closed_one_is_free():
    async with shmsock.socket(PULL) as a, shmsock.socket(PULL) as b:
        a.bind("inproc://taken")
        with pytest.raises(AddressInUse):
            b.bind("inproc://taken")
        with pytest.raises(AddressInUse):
            a.bind("inproc://taken")
        a.close()
        b.bind("inproc://taken")


def _run_in_thread(fn) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            trio.run(fn)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join(10)
    assert not t.is_alive()
    if errors:
        raise errors[0]


async def test_sockets_of_another_trio_run_are_refused():
    async with shmsock.socket(PULL) as pull:
        pull.bind("inproc://one-run")

        async def other_run() -> None:
            async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as squatter:
                with pytest.raises(ConnectionRefusedError, match=r"another trio\.run"):
                    push.connect("inproc://one-run")
                with pytest.raises(AddressInUse, match=r"another trio\.run"):
                    squatter.bind("inproc://one-run")

        await trio.to_thread.run_sync(_run_in_thread, other_run)


async def test_a_name_left_bound_by_an_ended_run_is_taken_over():
    async def leave_bound() -> None:
        pull = shmsock.socket(PULL)  # a system task closes it when the run ends
        pull.bind("inproc://left")

    await trio.to_thread.run_sync(_run_in_thread, leave_bound)
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("inproc://left")
        push.connect("inproc://left")
        await push.send(b"mine now")
        assert await pull.recv() == b"mine now"


async def test_an_incompatible_type_is_refused_on_use():
    async with shmsock.socket(PUSH) as push, shmsock.socket(PUSH) as other:
        push.bind("inproc://incompatible")
        other.connect("inproc://incompatible")
        with pytest.raises(IncompatiblePeer):
            await other.send(b"x")


async def test_a_second_pair_peer_is_refused_while_the_first_lives():
    async with (
        shmsock.socket(PAIR) as a,
        shmsock.socket(PAIR) as b,
        shmsock.socket(PAIR) as c,
    ):
        a.bind("inproc://busy")
        b.connect("inproc://busy")
        c.connect("inproc://busy")
        with pytest.raises(ConnectionRefusedError, match="already has its peer"):
            c.send_nowait(b"x")
        await b.send(b"still mine")
        assert await a.recv() == b"still mine"


async def test_one_socket_round_robins_over_shm_and_inproc_peers():
    async with (
        shmsock.socket(PUSH) as push,
        shmsock.socket(PULL) as near,
        shmsock.socket(PULL) as far,
    ):
        push.bind("inproc://mixed")
        push.bind("shm://mixed")
        near.connect("inproc://mixed")
        far.connect("shm://mixed")
        await wait_peers(push, 2)
        for i in range(10):
            await push.send(b"%d" % i)
        got = [await near.recv() for _ in range(5)] + [await far.recv() for _ in range(5)]
        assert sorted(got, key=int) == [b"%d" % i for i in range(10)]
        stats = _stats.snapshot()
        assert stats[("inproc://mixed", "PUSH")].messages_sent == 5
        assert stats[("shm://mixed", "PUSH")].messages_sent == 5


async def test_what_was_sent_before_close_is_still_received():
    async with shmsock.socket(PULL) as pull:
        pull.bind("inproc://keep")
        push = shmsock.socket(PUSH, linger=0)
        push.connect("inproc://keep")
        await wait_peers(push, 1)
        push.send_many_nowait([b"a", b"b", b"c"])
        await push.aclose()
        assert [await pull.recv() for _ in range(3)] == [b"a", b"b", b"c"]
        with pytest.raises(trio.WouldBlock):
            pull.recv_nowait()


async def test_aclose_lingers_until_the_reader_takes():
    async with shmsock.socket(PULL) as pull, trio.open_nursery() as nursery:
        pull.bind("inproc://linger")
        push = shmsock.socket(PUSH, linger=5)
        push.connect("inproc://linger")
        await wait_peers(push, 1)
        push.send_nowait(b"wait for me")
        closed = trio.Event()

        async def close() -> None:
            await push.aclose()
            closed.set()

        nursery.start_soon(close)
        await trio.testing.wait_all_tasks_blocked()
        assert not closed.is_set()  # lingering: the message is not taken yet
        assert await pull.recv() == b"wait for me"
        with trio.fail_after(30):
            await closed.wait()


async def test_a_reader_closing_on_unread_messages_counts_them_dropped():
    async with shmsock.socket(PUSH) as push:
        push.bind("inproc://drop")
        async with shmsock.socket(PULL) as pull:
            pull.connect("inproc://drop")
            await wait_peers(push, 1)
            push.send_many_nowait([b"1", b"2"])
            await trio.testing.wait_all_tasks_blocked()
        assert _stats.snapshot()[("inproc://drop", "PULL")].dropped == 2


async def test_req_is_told_when_rep_goes_holding_its_request():
    async with shmsock.socket(REQ) as req:
        req.connect("inproc://holder")
        async with shmsock.socket(REP) as rep:
            rep.bind("inproc://holder")
            await req.send(b"question")
            assert await rep.recv() == b"question"
        with trio.fail_after(30), pytest.raises(trio.BrokenResourceError):
            await req.recv()


async def test_unbind_and_disconnect():
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("inproc://ends")
        push.connect("inproc://ends")
        await push.send(b"unread")
        pull.unbind("inproc://ends")
        # What the binder had not received is discarded, and counted (an
        # inproc connection has no ring to keep it for the next binder).
        with pytest.raises(trio.WouldBlock):
            pull.recv_nowait()
        assert _stats.snapshot()[("inproc://ends", "PULL")].dropped == 1
        with pytest.raises(trio.WouldBlock):
            push.send_nowait(b"nobody")  # the connect waits for the next bind
        pull.bind("inproc://ends")
        await push.send(b"after rebind")
        assert await pull.recv() == b"after rebind"
        push.disconnect("inproc://ends")
        with pytest.raises(shmsock.InvalidEndpoint, match="not connected"):
            push.disconnect("inproc://ends")
        with pytest.raises(trio.WouldBlock):
            push.send_nowait(b"nobody")


async def test_no_file_is_made_and_no_descriptor_opened(userdir):
    async def exchange(name: str) -> None:
        async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
            a.bind(name)
            b.connect(name)
            await a.send(b"x")
            assert await b.recv() == b"x"
            assert fd_count() == before

    before = fd_count()
    await exchange("inproc://warm-up")  # imports and lazily created objects
    before = fd_count()
    await exchange("inproc://nothing")
    assert not os.path.exists(userdir)  # noqa: ASYNC240
