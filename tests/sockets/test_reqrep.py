"""REQ and REP: the request/reply state machines, routing, and peer death."""

from __future__ import annotations

import collections
import functools

import pytest
import trio
import trio.testing
from helpers import peers
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import REP, REQ, StateError


async def test_state_errors_leave_the_state_unchanged():
    async with shmsock.socket(REQ) as req, shmsock.socket(REP) as rep:
        rep.bind("shm://st")
        req.connect("shm://st")
        with pytest.raises(StateError, match="send a request before receiving"):
            await req.recv()
        with pytest.raises(StateError, match="receive a request before sending"):
            await rep.send(b"unasked")
        with pytest.raises(StateError):
            rep.send_nowait(b"unasked")
        await req.send(b"q1")
        with pytest.raises(StateError, match="receive the reply before sending again"):
            await req.send(b"q2")
        with pytest.raises(StateError):
            req.send_nowait(b"q2")
        assert await rep.recv() == b"q1"
        with pytest.raises(StateError, match="send the reply before receiving again"):
            await rep.recv()
        await rep.send(b"a1")
        assert await req.recv() == b"a1"  # the errors changed nothing
        await req.send(b"q3")
        assert await rep.recv() == b"q3"
        await rep.send(b"a3")
        assert await req.recv() == b"a3"


async def test_batch_methods_are_refused():
    async with shmsock.socket(REQ) as req, shmsock.socket(REP) as rep:
        with pytest.raises(StateError):
            await req.send_many([b"a"])
        with pytest.raises(StateError):
            await rep.recv_many()


async def test_req_round_robins_over_reps():
    async with shmsock.socket(REQ) as req, trio.open_nursery() as nursery:
        for i in range(3):
            await nursery.start(_rep_task, f"shm://rr{i}", f"r{i}".encode())
            req.connect(f"shm://rr{i}")
        await wait_peers(req, 3)
        counts = collections.Counter()
        for i in range(30):
            await req.send(b"%d" % i)
            reply = await req.recv()
            name, _, echoed = reply.partition(b":")
            assert echoed == b"%d" % i
            counts[name] += 1
        assert counts == {b"r0": 10, b"r1": 10, b"r2": 10}
        nursery.cancel_scope.cancel()


async def _rep_task(endpoint, name, task_status=trio.TASK_STATUS_IGNORED):
    async with shmsock.socket(REP) as rep:
        rep.bind(endpoint)
        task_status.started()
        while True:
            req = await rep.recv()
            await rep.send(name + b":" + req)


async def test_rep_fair_queues_and_replies_to_the_asker():
    async with shmsock.socket(REP) as rep, trio.open_nursery() as nursery:
        rep.bind("shm://fq")
        order = []

        async def client(tag):
            async with shmsock.socket(REQ) as req:
                req.connect("shm://fq")
                for i in range(20):
                    await req.send(tag + b"%d" % i)
                    assert await req.recv() == b"re:" + tag + b"%d" % i

        for tag in (b"a", b"b", b"c"):
            nursery.start_soon(client, tag)
        for _ in range(60):
            msg = await rep.recv()
            order.append(msg[:1])
            await rep.send(b"re:" + msg)
        assert collections.Counter(order) == {b"a": 20, b"b": 20, b"c": 20}


async def test_cancelled_recv_abandons_the_request_and_late_replies_are_dropped():
    async with shmsock.socket(REQ) as req, shmsock.socket(REP) as rep:
        rep.bind("shm://late")
        req.connect("shm://late")
        await req.send(b"first")
        assert await rep.recv() == b"first"
        with trio.move_on_after(0.05) as cs:
            await req.recv()
        assert cs.cancelled_caught
        await req.send(b"second")  # allowed: the first request was abandoned
        await rep.send(b"reply to first")  # late
        assert await rep.recv() == b"second"
        await rep.send(b"reply to second")
        assert await req.recv() == b"reply to second"
        with pytest.raises(StateError):
            req.recv_nowait()  # nothing outstanding: the late reply is gone


async def test_req_blocks_without_rep_and_cancelling_keeps_it_idle():
    async with shmsock.socket(REQ) as req:
        req.connect("shm://absent")
        with trio.move_on_after(0.05) as cs:
            await req.send(b"hello?")
        assert cs.cancelled_caught
        with pytest.raises(StateError):
            req.recv_nowait()  # the cancelled send left it idle
        async with shmsock.socket(REP) as rep:
            rep.bind("shm://absent")
            await req.send(b"now")
            assert await rep.recv() == b"now"
            await rep.send(b"yes")
            assert await req.recv() == b"yes"


async def test_multipart_requests_and_replies():
    async with shmsock.socket(REQ) as req, shmsock.socket(REP) as rep:
        rep.bind("shm://mp")
        req.connect("shm://mp")
        await req.send_multipart([b"method", b"arg1", b""])
        assert await rep.recv_multipart() == [b"method", b"arg1", b""]
        await rep.send_multipart([b"ok", b"42"])
        assert await req.recv_multipart() == [b"ok", b"42"]


async def test_spinning_req_and_rep_across_processes_also_sleep_and_wake():
    with spawn(
        functools.partial(peers.rep_server, spin_us=200), "shm://spinning", True, "r"
    ) as rep:
        await rep.expect("ready")
        async with shmsock.socket(REQ, spin_us=200) as req:
            req.connect("shm://spinning")
            for i in range(300):
                # Every tenth answer comes late: both sides spin out and sleep,
                # and the doorbells must wake them.
                body = b"nap" if i % 10 == 0 else b"%d" % i
                await req.send(body)
                assert await req.recv() == b"r:" + body
            await req.send(b"quit")
            assert await req.recv() == b"r:quit"
        await rep.expect("done")
        await rep.finish()


async def test_several_reqs_and_several_reps_across_processes():
    reps = [spawn(peers.rep_server, f"shm://rep{i}", True, f"r{i}") for i in range(2)]
    reqs = []
    try:
        for r in reps:
            await r.expect("ready")
        # Two REQ processes on the first REP, and this process's REQ on both.
        reqs = [spawn(peers.req_client, "shm://rep0", False, f"c{i}", 40) for i in range(2)]
        async with shmsock.socket(REQ) as req:
            req.connect("shm://rep0")
            req.connect("shm://rep1")
            await wait_peers(req, 2)
            names = collections.Counter()
            for i in range(40):
                await req.send(b"me-%d" % i)
                name, _, echoed = (await req.recv()).partition(b":")
                assert echoed == b"me-%d" % i
                names[name] += 1
            assert names == {b"r0": 20, b"r1": 20}
        for i, c in enumerate(reqs):
            await c.expect("ready")
            assert await c.recv() == [f"r0:c{i}-{j}".encode() for j in range(40)]
            c.send("exit")
        for c in reqs:
            assert await c.join() == 0
        async with shmsock.socket(REQ) as stopper:
            for i in range(2):
                stopper.connect(f"shm://rep{i}")
            await wait_peers(stopper, 2)  # so the two quits go one to each
            for _ in reps:
                await stopper.send(b"quit")
                assert (await stopper.recv()).endswith(b":quit")
        for r in reps:
            await r.expect("done")
            await r.finish()
    finally:
        for c in reqs + reps:
            c.close()


async def test_killed_rep_gives_broken_promptly_and_the_next_request_goes_to_a_live_one():
    with spawn(peers.rep_hold, "shm://kr-dead", True) as holder:
        await holder.expect("ready")
        async with shmsock.socket(REQ) as req, trio.open_nursery() as nursery:
            req.connect("shm://kr-dead")
            await req.send(b"doomed")
            assert await holder.recv() == b"doomed"
            await nursery.start(_rep_task, "shm://kr-live", b"live")
            req.connect("shm://kr-live")

            async def waiter():
                with trio.fail_after(30), pytest.raises(trio.BrokenResourceError):
                    await req.recv()

            async with trio.open_nursery() as inner:
                inner.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                holder.kill()
            await req.send(b"retry")  # ready to send again
            assert await req.recv() == b"live:retry"
            nursery.cancel_scope.cancel()
    async with shmsock.socket(REP) as heir:  # take over the dead REP's endpoint
        heir.bind("shm://kr-dead")


async def test_reply_to_a_dead_requester_is_dropped_without_error():
    with spawn(peers.req_client, "shm://dead-req", False, "gone", 1) as child:
        async with shmsock.socket(REP) as rep:
            rep.bind("shm://dead-req")
            await child.expect("ready")
            assert await rep.recv() == b"gone-0"
            child.kill()
            # Make sure the reply really meets a dead peer.
            while rep.peer_count:  # noqa: ASYNC110
                await trio.sleep(0.001)
            await rep.send(b"nobody listens")  # no error
            async with shmsock.socket(REQ) as req:
                req.connect("shm://dead-req")
                await req.send(b"next")
                assert await rep.recv() == b"next"
                await rep.send(b"answer")
                assert await req.recv() == b"answer"


async def test_rep_send_is_a_checkpoint_and_cancelled_send_keeps_the_reply_owed():
    async with shmsock.socket(REQ) as req, shmsock.socket(REP, schedule_every_us=0) as rep:
        rep.bind("shm://rsc")
        req.connect("shm://rsc")
        await req.send(b"q")
        assert await rep.recv() == b"q"
        with trio.CancelScope() as cs:
            cs.cancel()
            await rep.send(b"cancelled")
        with pytest.raises(StateError):
            await rep.recv()  # still owes the reply
        with trio.testing.assert_checkpoints():
            await rep.send(b"a")
        assert await req.recv() == b"a"
