"""Peers over tcp:// that restart, die, hang and go; cancellation; closing; counting.

Every remote peer is a plain pyzmq program in its own process, killed with
SIGKILL or stopped with SIGSTOP where the test says so.  Heartbeats are set
short (0.1 s, timed out after 0.3 s) where a test waits for them.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import sys
import textwrap

import pytest
import trio
import zmq
from helpers import peers, seam
from helpers.procs import forked, spawn
from zmq_helpers import LOOPBACK, attached, peer, zsocket

import shmsock
from shmsock import PAIR, PULL, PUSH, REP, REQ

pytestmark = pytest.mark.timeout(60)

FAST_HEARTBEAT = {"heartbeat_ivl": 0.1, "heartbeat_timeout": 0.3}


async def test_a_connecting_push_reaches_the_binder_that_replaces_a_dead_one():
    async with zsocket(PUSH) as push:
        async with peer("sink", LOOPBACK, True, "PULL", 10) as first:
            endpoint = first.endpoint
            push.connect(endpoint)
            for i in range(10):
                await push.send(b"a%d" % i)
            assert await first.expect("got") == [[b"a%d" % i] for i in range(10)]
            first.child.kill()
        await seam.until(push, lambda: not push.peer_count)  # the kernel closed its connection
        # The same port, bound by a new process: libzmq redials by itself.
        async with peer("sink", endpoint, True, "PULL", 10) as second:
            with trio.fail_after(10):
                for i in range(10):
                    await push.send(b"b%d" % i)
            assert await second.expect("got") == [[b"b%d" % i] for i in range(10)]
            second.send("exit")


async def test_a_bound_pull_takes_from_a_pusher_that_comes_back():
    async with zsocket(PULL) as pull:
        endpoint = pull.bind(LOOPBACK)
        for round_ in range(2):
            sent = [[b"%d-%d" % (round_, i)] for i in range(20)]
            async with peer("source", endpoint, False, "PUSH", sent) as theirs:
                assert [await pull.recv_multipart() for _ in sent] == sent
                await theirs.expect("sent")
                theirs.child.kill()
            await seam.until(pull, lambda: not pull.peer_count)
        # The first pusher's pipe was retired when the second one's came; the
        # last one's stays the reader (libzmq may hand over a last message
        # after it reports the end) until a new peer comes or the socket closes.
        assert [p.alive for p in seam.pipes(pull)] == [False]


@pytest.mark.parametrize("how", ["killed", "stopped"])
@pytest.mark.parametrize("ours_bind", [True, False], ids=["ours-binds", "theirs-binds"])
async def test_our_req_hears_that_the_rep_holding_its_request_is_gone(how, ours_bind):
    # Killed: the kernel closes its connection at once.  Stopped: nothing
    # closes, and only the heartbeats can tell; without them recv would
    # wait for ever, as libzmq's REQ does.
    async with (
        zsocket(REQ, **FAST_HEARTBEAT) as req,
        attached(req, ours_bind, "hold", "REP") as theirs,
    ):
        await req.send(b"are you there?")
        assert await theirs.expect("got") == [b"are you there?"]
        os.kill(theirs.child.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        try:
            with trio.fail_after(30), pytest.raises(trio.BrokenResourceError):
                await req.recv()
        finally:
            theirs.child.close()  # kills it, stopped or not


async def test_a_pair_whose_peer_died_is_broken_until_a_new_one_comes():
    async with zsocket(PAIR, **FAST_HEARTBEAT) as pair:
        endpoint = pair.bind(LOOPBACK)
        async with peer("echo", endpoint, False, "PAIR") as theirs:
            await pair.send(b"one")
            assert await pair.recv() == b"re:one"
            theirs.child.kill()
            with trio.fail_after(30), pytest.raises(trio.BrokenResourceError):
                await pair.recv()
            with pytest.raises(trio.BrokenResourceError):
                await pair.send(b"lost")
        async with peer("echo", endpoint, False, "PAIR") as theirs:
            with trio.fail_after(30):
                await pair.wait_peers(1)
            await pair.send(b"two")
            assert await pair.recv() == b"re:two"
            theirs.send("exit")


async def test_cancelled_sends_send_nothing_and_the_others_arrive_once_in_order():
    rng = random.Random(21)
    done: list[bytes] = []
    async with (
        zsocket(PUSH, sndhwm=4) as push,
        peer("collect", LOOPBACK, True, "PULL", {"RCVHWM": 4}) as theirs,
    ):
        push.connect(theirs.endpoint)
        for i in range(3000):
            message = b"m%d" % i
            with trio.move_on_after(rng.choice((0, 0, 1e-5, 1e-4, 1e-3, 1))):
                await push.send(message)
                done.append(message)
        await push.send(b"END")
        got = await theirs.expect("got")
        theirs.send("exit")
    assert [frames[0] for frames in got] == done
    assert 0 < len(done) < 3000  # some were cancelled, some were not


async def test_cancelled_receives_take_nothing_and_every_message_is_taken_once():
    rng = random.Random(22)
    sent = [[b"m%d" % i] if i % 7 else [b"m%d" % i, b"x"] for i in range(3000)]
    got: list[list[bytes]] = []
    cancelled = 0
    async with (
        zsocket(PULL, rcvhwm=4) as pull,
        peer("source", LOOPBACK, True, "PUSH", sent, {"SNDHWM": 4}) as theirs,
    ):
        pull.connect(theirs.endpoint)
        with trio.fail_after(30):
            while len(got) < len(sent):
                with trio.move_on_after(rng.choice((0, 1e-5, 1e-4, 1e-3, 1))) as scope:
                    got.append(await pull.recv_multipart())
                cancelled += scope.cancelled_caught
        assert got == sent
        assert cancelled > 0
        theirs.send("exit")


async def test_close_leaves_libzmq_to_deliver_what_it_holds_for_linger(mock_clock):
    # aclose returns at once: nothing says when a tcp peer has everything.
    # libzmq goes on sending in its own thread, for up to linger.  Trio's
    # clock stands still here (mock_clock): an aclose that waited out the
    # linger on a timer would hang the test (until pytest-timeout ends it).
    async with peer("idle", LOOPBACK, True, "PULL") as theirs:
        async with shmsock.socket(PUSH, linger=5) as push:
            push.connect(theirs.endpoint)
            await push.wait_peers(1)
            for i in range(100):
                await push.send(b"%d" % i)
            await push.aclose()
        theirs.send("read now")
        got = await theirs.expect("got")
        assert got == [[b"%d" % i] for i in range(100)]


async def test_a_batch_libzmq_has_no_room_for_waits_in_the_link_and_close_lingers_for_it():
    big = [bytes(64 << 10)] * 200  # 12.5 MiB: more than libzmq and the kernel hold
    async with (
        peer("idle", LOOPBACK, True, "PULL", {"RCVHWM": 1}) as theirs,
        shmsock.socket(PUSH, sndhwm=1, linger=0.3) as push,
    ):
        push.connect(theirs.endpoint)
        await push.wait_peers(1)
        await push.send_many(big)  # taken whole
        [pipe] = seam.pipes(push)
        assert pipe.unread()  # the link holds the rest
        with pytest.raises(trio.WouldBlock):
            push.send_nowait(b"more")  # not writable till the rest is handed over
        start = trio.current_time()
        await push.aclose()
        assert trio.current_time() - start >= 0.25  # it lingered
        [st] = seam.zmq(push).stats().values()
        assert 0 < st.dropped < 200
        assert st.messages_sent == 200


async def test_one_pipe_per_bound_endpoint_whatever_the_number_of_remote_peers():
    async with zsocket(PULL) as pull:
        endpoint = pull.bind(LOOPBACK)
        a_sent = [[b"a%d" % i] for i in range(50)]
        b_sent = [[b"b%d" % i] for i in range(50)]
        async with (
            peer("source", endpoint, False, "PUSH", a_sent) as a,
            peer("source", endpoint, False, "PUSH", b_sent) as b,
        ):
            got = [await pull.recv_multipart() for _ in range(100)]
            assert sorted(got) == sorted(a_sent + b_sent)
            assert [m for m in got if m[0][:1] == b"a"] == a_sent  # each in its order
            assert pull.peer_count == 1
            [st] = seam.stats(pull).values()
            assert st.peers == 2 and st.messages_received == 100
            a.send("exit")
            b.send("exit")


async def test_unbind_and_disconnect_end_the_pipe_and_may_be_done_again():
    async with zsocket(PULL) as pull, zsocket(PUSH) as push:
        endpoint = pull.bind("tcp://127.0.0.1:0")
        push.connect(endpoint)
        await push.send(b"1")
        assert await pull.recv() == b"1"
        push.disconnect(endpoint)
        assert push.peer_count == 0
        with pytest.raises(trio.WouldBlock):
            push.send_nowait(b"nobody")
        pull.unbind(endpoint)
        await seam.until(pull, lambda: not pull.peer_count)
        # libzmq frees the port in its own thread, a moment later: bind anew.
        endpoint = pull.bind("tcp://127.0.0.1:0")
        push.connect(endpoint)
        await push.send(b"2")
        assert await pull.recv() == b"2"


async def test_rep_drops_the_reply_to_a_requester_that_has_gone():
    # Two requesters share the bound endpoint's pipe; one dies holding our
    # answer's address.  ROUTER says EHOSTUNREACH, and REP drops the reply,
    # without error, as it does on shm://.
    async with zsocket(REP) as rep:
        endpoint = rep.bind(LOOPBACK)
        [link] = seam.zmq(rep).bound.values()
        async with peer("requester", endpoint, False, 1) as a:
            assert await rep.recv() == b"q0"
            async with peer("requester", endpoint, False, 1) as b:
                await seam.until(rep, lambda: link.shaken == 2)
                a.child.kill()
                await seam.until(rep, lambda: link.shaken == 1)
                await rep.send(b"re:q0")  # to the dead one: dropped, without error
                # Counted as dropped when libzmq knows the requester has gone
                # (EHOSTUNREACH); until its socket has processed the end of
                # that connection, libzmq takes the reply and drops it itself.
                [st] = seam.stats(rep).values()
                assert st.dropped + st.messages_sent == 1
                assert await rep.recv() == b"q0"  # b's
                await rep.send(b"re:q0")
                assert await b.expect("replies") == [[b"re:q0"]]
                b.send("exit")
        async with peer("requester", endpoint, False, 1) as c:
            assert await rep.recv() == b"q0"
            await rep.send(b"re:q0")
            assert await c.expect("replies") == [[b"re:q0"]]
            c.send("exit")


async def test_what_a_gone_peer_sent_is_all_read_even_after_a_new_peer_came():
    # A take() brings up to 64 messages into the pipe's inbox at once.  When
    # the peer goes and another comes before they are read, the new pipe
    # reads them first, then what libzmq holds from either peer.
    async with zsocket(PULL) as pull:
        endpoint = pull.bind(LOOPBACK)
        first = [[b"a%d" % i] for i in range(100)]
        async with peer("source", endpoint, False, "PUSH", first) as a:
            await a.expect("sent")
            with trio.fail_after(10):
                assert await pull.recv_multipart() == first[0]
            [pipe] = seam.pipes(pull)
            a.send("exit")  # it closes, and its libzmq sends all it holds first
            assert await a.child.join() == 0
            await seam.until(pull, lambda: not pipe.alive)
        second = [[b"b%d" % i] for i in range(10)]
        async with peer("source", endpoint, False, "PUSH", second) as b:
            await b.expect("sent")
            await seam.until(pull, lambda: pull.peer_count == 1)
            with trio.fail_after(10):
                got = [await pull.recv_multipart() for _ in range(109)]
            # Each peer's in order, nothing lost (libzmq fair-queues what it
            # still holds from the old peer with the new peer's).
            assert [m for m in got if m[0][:1] == b"a"] == first[1:]
            assert [m for m in got if m[0][:1] == b"b"] == second
            b.send("exit")


@pytest.mark.filterwarnings(
    # libzmq's threads: the child touches nothing of them (as test_fork.py says).
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
async def test_a_fork_child_lets_go_of_the_links_without_touching_them():
    # The socket's at-fork hook calls disown(); the child must not close or
    # use the parent's libzmq sockets (pyzmq would not close them anyway),
    # and a libzmq context made in the child is the child's own.
    async with zsocket(PUSH) as push, peer("sink", LOOPBACK, True, "PULL", 4) as theirs:
        push.connect(theirs.endpoint)
        await push.send(b"before")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                seam.zmq(push).disown()  # the socket's at-fork hook did it already
                from shmsock._transport.zmq import _context

                ctx = _context.context()  # a new one: the parent's is not the child's
                s = ctx.socket(zmq.PUSH)
                s.close(0)
                ctx.term()
                code = 0
            finally:
                os._exit(code)
        _, status = await trio.to_thread.run_sync(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        for message in (b"after", b"the", b"fork"):
            await push.send(message)
        assert await theirs.expect("got") == [[b"before"], [b"after"], [b"the"], [b"fork"]]
        theirs.send("exit")


@pytest.mark.parametrize("kind", [PULL, PAIR])
async def test_what_a_peer_sent_just_before_it_closed_is_all_received(kind):
    # libzmq reports the end of a connection before it hands over the last
    # messages it read from it, and (with IMMEDIATE) would throw away what
    # the socket had not read yet: neither may lose a message.
    sent = [[b"%d" % i] for i in range(100)]
    for _ in range(3):
        async with (
            zsocket(kind) as ours,
            peer("burst", LOOPBACK, True, "PUSH" if kind == PULL else "PAIR", sent) as theirs,
        ):
            ours.connect(theirs.endpoint)
            await theirs.expect("sent")
            with trio.fail_after(10):
                got = [await ours.recv_multipart() for _ in sent]
            assert got == sent


async def test_a_multiprocessing_child_that_returns_lets_libzmq_deliver_what_it_holds():
    # A multiprocessing child ends with os._exit, which runs no atexit
    # handler: the process must still wait, as linger=None says, while
    # libzmq sends what it holds.  32 MiB is more than the kernel's
    # loopback buffers take, and the receiver reads slowly, so most of it
    # is still in the child's libzmq queue when the child returns.
    count, size = 512, 64 << 10
    async with zsocket(PULL, rcvhwm=4) as pull:
        endpoint = pull.bind(LOOPBACK)
        with spawn(peers.push_and_return, endpoint, count, size, ctx=forked()) as child:
            got = []
            with trio.fail_after(20):
                for i in range(count):
                    got.append(await pull.recv())
                    if i % 8 == 0:
                        await trio.sleep(0.01)
            assert await child.join() == 0
    assert [m[:4] for m in got] == [i.to_bytes(4, "big") for i in range(count)]


_EXITS_AFTER_LARGE_SENDS = """
    import sys, trio, shmsock

    async def main(endpoint, count, size):
        async with shmsock.socket(shmsock.PUSH, linger=None, sndhwm=count) as push:
            push.connect(endpoint)
            await push.wait_peers(1)
            for i in range(count):
                await push.send(i.to_bytes(4, "big") * (size // 4))

    trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
"""


async def test_a_program_that_exits_after_large_sends_lets_libzmq_deliver_them():
    # The program ends as programs do, through its atexit handlers, with
    # most of 16 MiB still in libzmq's queue.  pyzmq's own atexit handler
    # (zero-copy sends register it) forgets the buffers it lent libzmq:
    # sending large frames without a copy let libzmq's I/O thread read
    # freed memory while it lingered (the program died of SIGSEGV/SIGABRT,
    # and the receiver waited for the rest forever).
    count, size = 256, 64 << 10
    async with zsocket(PULL, rcvhwm=4) as pull:
        endpoint = pull.bind(LOOPBACK)
        script = textwrap.dedent(_EXITS_AFTER_LARGE_SENDS)
        argv = [sys.executable, "-P", "-c", script, endpoint, str(count), str(size)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        got = []
        async with trio.open_nursery() as nursery:
            # A program that dies raises CalledProcessError here at once.
            nursery.start_soon(
                functools.partial(trio.run_process, argv, env=env, capture_stderr=True)
            )
            with trio.fail_after(30):
                for i in range(count):
                    got.append(await pull.recv())
                    if i % 8 == 0:
                        await trio.sleep(0.01)  # slow: libzmq holds the rest at exit
    assert [m[:4] for m in got] == [i.to_bytes(4, "big") for i in range(count)]
