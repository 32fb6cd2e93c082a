"""Large messages through the bulk regions, across processes (issue 22).

Frames above 64 KiB go whole into the sender's bulk region, named by a
record in the ring.  What a user relies on, and these tests check:

- every size up to ``max_msg_size`` arrives whole, in order with the small
  messages around it, with checksums on or off, multipart or not;
- leases see the sender's memory in place and stay intact while more
  messages arrive, whatever order they are released in;
- a loan cancelled while it is filled sends nothing;
- a writer killed while it writes its region delivers whole messages only,
  and a reader killed while it holds leases lets the writer go on; a
  connector's regions reach the next binder;
- nothing leaks: descriptors and mappings stay bounded over thousands of
  large messages, and go with the connection; a connection that never
  carried a large frame has no region at all.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import resource
import tracemalloc
from functools import partial

import pytest
import trio
import trio.lowlevel
from helpers import bulkpeers, conformance, peers, seam
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import DEALER, PAIR, PULL, PUSH, REP, REQ, ROUTER

KiB, MiB = 1 << 10, 1 << 20


def digest(frames: list[bytes]) -> tuple[list[int], list[str]]:
    return [len(f) for f in frames], [hashlib.sha256(f).hexdigest() for f in frames]


@pytest.mark.parametrize("checksum", [True, False], ids=["crc", "nocrc"])
async def test_every_size_arrives_whole_and_in_order_across_processes(checksum):
    limit = 20 * MiB
    messages = [
        [os.urandom(n)]
        for n in (5, 1 * MiB, 100, 16 * MiB, 64 * KiB, 64 * KiB + 1, limit, 0, 3 * MiB + 17)
    ]
    messages.insert(3, [b"head", os.urandom(3 * MiB), b"", os.urandom(70 * KiB), b"tail"])
    messages.append([os.urandom(limit - 10), b"0123456789"])  # the limit, over two frames
    child = spawn(
        partial(bulkpeers.pull_digests, max_msg_size=limit), "shm://bulk-order", True, len(messages)
    )
    try:
        await child.expect("ready")
        async with shmsock.socket(PUSH, checksum=checksum, max_msg_size=limit) as push:
            push.connect("shm://bulk-order")
            for frames in messages:
                await push.send_multipart(frames)
            got = await child.recv()
            assert got == [digest(frames) for frames in messages]
            with pytest.raises(shmsock.MessageTooLarge, match="max_msg_size"):
                await push.send(bytes(limit + 1))
            child.send("exit")
            assert await child.join() == 0
    finally:
        child.close()


async def test_batches_of_large_messages_arrive_whole_and_in_order_across_processes():
    # send_many / send_many_nowait put each message above 64 KiB in the bulk
    # region, the others in the ring, all in one go; recv_many takes them.
    sizes = [[10, 1 * MiB, 20, 300 * KiB], [2 * MiB] * 2, [64 * KiB + 1, 5, 600 * KiB]]
    batches = [[os.urandom(n) for n in b] for b in sizes]
    expected = [m for b in batches for m in b]
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://bulk-batches")
        child = spawn(bulkpeers.push_batches, "shm://bulk-batches", False, batches)
        try:
            await child.expect("ready")
            got: list[bytes] = []
            while len(got) < len(expected):
                got.extend(await pull.recv_many(256))
            assert [len(m) for m in got] == [len(m) for m in expected]
            assert got == expected
            await child.expect("sent")
            child.send("exit")
            assert await child.join() == 0
        finally:
            child.close()


async def test_a_batch_too_large_for_the_bulk_region_is_refused_and_sends_nothing():
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://bulk-batch-refused")
        push.connect("shm://bulk-batch-refused")
        await push.wait_peers(1)
        # 1 MiB frames get a region of 8 MiB; one batch may take half of it.
        with pytest.raises(shmsock.MessageTooLarge, match="send smaller batches"):
            push.send_many_nowait([bytes(1 * MiB)] * 5)
        with pytest.raises(shmsock.MessageTooLarge, match="send smaller batches"):
            await push.send_many([b"x"] + [bytes(1 * MiB)] * 5)
        await push.send_many([b"after", bytes(1 * MiB)])
        assert await pull.recv() == b"after"
        assert len(await pull.recv()) == 1 * MiB
        with pytest.raises(trio.WouldBlock):
            pull.recv_nowait()


async def test_a_batch_too_large_for_the_ring_takes_back_its_bulk_frames():
    # Its large message went into the region before the ring refused the
    # records: taken back, the next descriptor starts where the reader
    # expects it (it used to end the connection as corrupt).
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://bulk-batch-ring-refused")
        push.connect("shm://bulk-batch-ring-refused")
        await push.wait_peers(1)
        first = os.urandom(100 * KiB)
        await push.send(first)
        assert await pull.recv() == first
        with pytest.raises(shmsock.MessageTooLarge, match="send smaller batches"):
            push.send_many_nowait([bytes(100 * KiB)] + [b"y" * 60000] * 30)
        after = [os.urandom(200 * KiB), os.urandom(100 * KiB)]
        for m in after:
            await push.send(m)
        with trio.fail_after(30):
            assert [await pull.recv() for _ in after] == after


async def test_leases_stay_intact_while_more_messages_arrive_and_are_released_in_any_order():
    sizes = [1 * MiB] * 24 + [100, 70 * KiB]
    child = spawn(bulkpeers.push_stamped, "shm://bulk-lease", True, sizes, 22)
    try:
        await child.expect("ready")
        async with shmsock.socket(PULL) as pull:
            pull.connect("shm://bulk-lease")
            # Five leases held: the sender's region (8 of these) has room for
            # three more, which arrive while the five are held.
            held = [await pull.recv_lease() for _ in range(5)]
            later = [await pull.recv() for _ in range(3)]
            for seq, lease in enumerate(held):
                assert bulkpeers.check_stamped(lease.bytes) == seq  # not overwritten
            assert [bulkpeers.check_stamped(m) for m in later] == [5, 6, 7]
            # Released out of order: the sender reuses the memory only once
            # the oldest is released too, and then goes on.
            for i in (3, 1, 4, 2, 0):
                held[i].release()
            rest = []
            for _ in range(len(sizes) - 8):
                with await pull.recv(copy=False) as lease:
                    rest.append(bulkpeers.check_stamped(lease.bytes))
            assert rest == list(range(8, len(sizes)))
            await child.expect("sent")
            child.send("exit")
            assert await child.join() == 0
    finally:
        child.close()


async def test_a_loan_cancelled_mid_fill_or_raising_sends_nothing():
    child = spawn(bulkpeers.pull_digests, "shm://bulk-loan", True, 7)
    try:
        await child.expect("ready")
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://bulk-loan")
            await wait_peers(push, 1)
            with trio.CancelScope() as cs:
                async with push.loan(2 * MiB) as buf:
                    buf[:MiB] = b"x" * MiB
                    cs.cancel()
                    await trio.lowlevel.checkpoint()  # cancelled here, half filled
                    buf[MiB:] = b"y" * MiB
            assert cs.cancelled_caught
            with pytest.raises(ZeroDivisionError):
                async with push.loan(3 * MiB) as buf:
                    buf[:] = b"z" * (3 * MiB)
                    raise ZeroDivisionError
            # Loans at and around 32 KiB, where they leave the ring for the
            # bulk region, as well as large ones.
            sizes = (2 * MiB, 5, 32 * KiB, 32 * KiB + 1, 48 * KiB, 64 * KiB, 5 * MiB)
            sent = [os.urandom(n) for n in sizes]
            for data in sent:
                async with push.loan(len(data)) as buf:
                    buf[:] = data
            assert await child.recv() == [digest([data]) for data in sent]
            child.send("exit")
            assert await child.join() == 0
    finally:
        child.close()


@pytest.mark.parametrize("size", [40 * KiB, 64 * KiB, 1 * MiB])
async def test_a_loan_above_32_kib_and_a_lease_of_it_copy_nothing(size):
    # Above 32 KiB a loan is lent from the bulk region (below, a private
    # buffer copied into the ring costs less), so filling it, sending it and
    # reading it as a lease allocate nothing near its size on either side.
    data = os.urandom(size)
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://bulk-loan-in-place")
        push.connect("shm://bulk-loan-in-place")
        await wait_peers(push, 1)
        for i in range(3):  # the first makes the region; the others are measured
            tracemalloc.start()
            try:
                async with push.loan(size) as buf:
                    buf[:] = data
                lease = await pull.recv(copy=False)
                allocated = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            with lease:
                assert lease.buffer == data
            if i:
                assert allocated < size // 4


async def test_a_region_made_for_smaller_frames_grows_for_larger_ones():
    # A 40 KiB loan makes the connection's region, sized for 40 KiB frames;
    # 200 KiB frames after it must get the room a first 200 KiB frame gets
    # (as many waiting for an idle receiver), not the two that fit.
    frame = os.urandom(200 * KiB)

    async def queued(endpoint: str, first: int) -> int:
        async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
            pull.bind(endpoint)
            push.connect(endpoint)
            await wait_peers(push, 1)
            if first:
                async with push.loan(first) as buf:
                    buf[:] = bytes(first)
                assert len(await pull.recv()) == first
            n = conformance.fill(push, frame)
            for _ in range(n):
                assert await pull.recv() == frame
            return n

    with trio.fail_after(30):
        fresh = await queued("shm://bulk-grow-fresh", 0)
        after_small = await queued("shm://bulk-grow-after", 40 * KiB)
    assert fresh >= 8
    assert after_small == fresh


async def test_a_writer_killed_while_it_writes_its_region_delivers_whole_messages_only():
    sizes = [3 * MiB, 100 * KiB, 1 * MiB, 50]
    child = spawn(bulkpeers.pair_stream_stamped, "shm://bulk-kill", False, sizes, 5)
    try:
        async with shmsock.socket(PAIR) as pair:
            pair.bind("shm://bulk-kill")
            await child.expect("ready")
            await child.expect("sending")
            await trio.sleep(random.uniform(0, 0.02))  # killed at any point of its loop
            child.kill()
            got = []
            with trio.fail_after(10), pytest.raises(trio.BrokenResourceError):
                while True:
                    got.append(bulkpeers.check_stamped(await pair.recv()))
            assert got == list(range(len(got)))  # whole, in order, nothing missing
            assert len(got) >= 3
            assert seam.connections(pair) == []  # retired: its regions unmapped
            assert bulkpeers.memfd_mappings() == 0
    finally:
        child.close()


async def test_a_reader_killed_holding_leases_lets_the_writer_free_its_region_and_go_on():
    async with shmsock.socket(PUSH) as push:
        push.bind("shm://bulk-holder")
        child = spawn(bulkpeers.pull_lease_and_hold, "shm://bulk-holder", False, 3)
        try:
            await child.expect("ready")
            # Its region holds four: the three it leases, and one it never reads.
            for seq in range(4):
                await push.send(bulkpeers.stamped(seq, 2 * MiB))
            assert await child.recv() == ("holding", [2 * MiB] * 3)
            assert bulkpeers.memfd_mappings() == 1  # our region for that reader
            child.kill()
            with trio.fail_after(10):
                while seam.connections(push):  # noqa: ASYNC110 - its doorbell's end-of-file
                    await trio.sleep(0.001)
            assert bulkpeers.memfd_mappings() == 0  # freed with the connection
        finally:
            child.close()
        # The next reader gets fresh messages from a fresh region.
        child = spawn(bulkpeers.pull_digests, "shm://bulk-holder", False, 1)
        try:
            await child.expect("ready")
            data = os.urandom(2 * MiB)
            await push.send(data)
            assert await child.recv() == [digest([data])]
            child.send("exit")
            assert await child.join() == 0
        finally:
            child.close()


async def test_a_connectors_regions_go_with_its_ring_to_the_next_binder():
    # The connector's ring outlives a binder; so do the regions its records
    # name: the next binder gets them with the HELLO and reads on.
    sent = [os.urandom(n) for n in (200 * KiB, 5, 3 * MiB, 2 * MiB, 100 * KiB)]
    idle = spawn(peers.pull_idle, "shm://bulk-rebind", True)  # it never reads
    try:
        await idle.expect("ready")
        async with shmsock.socket(PUSH, linger=None) as push:
            push.connect("shm://bulk-rebind")
            for data in sent:  # two regions: one for 200 KiB, a larger for 3 MiB
                await push.send(data)
            assert len(seam.slots(push)[0].bulk.fds()) == 2
            idle.kill()
            binder = spawn(bulkpeers.pull_digests, "shm://bulk-rebind", True, len(sent) + 1)
            try:
                await binder.expect("ready")
                await push.send(b"after")
                assert await binder.recv() == [digest([d]) for d in [*sent, b"after"]]
                binder.send("exit")
                assert await binder.join() == 0
            finally:
                binder.close()
    finally:
        idle.close()


async def test_no_descriptor_or_mapping_leaks_over_thousands_of_large_messages():
    fds0 = bulkpeers.open_fds()
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://bulk-leak")
        push.connect("shm://bulk-leak")
        await wait_peers(push, 1)
        assert bulkpeers.memfd_mappings() == 0  # no large frame yet: no region
        for size in (100 * KiB, 2 * MiB, 9 * MiB):  # each brings a larger region
            await push.send(bytes(size))
            assert len(await pull.recv()) == size
        await push.send(bytes(100 * KiB))  # the smaller regions go now
        assert len(await pull.recv()) == 100 * KiB
        fds, maps = bulkpeers.open_fds(), bulkpeers.memfd_mappings()
        assert maps == 2  # one region: the writer's mapping, and the reader's

        async def sender() -> None:
            for i in range(3000):
                await push.send(bytes([i % 256]) * (70 * KiB + i % 4000))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            for i in range(3000):
                if i % 2:
                    msg = await pull.recv()
                else:
                    with await pull.recv_lease() as lease:
                        msg = lease.bytes
                assert msg == bytes([i % 256]) * (70 * KiB + i % 4000)
        assert (bulkpeers.open_fds(), bulkpeers.memfd_mappings()) == (fds, maps)
    assert bulkpeers.memfd_mappings() == 0
    assert bulkpeers.open_fds() == fds0


async def test_an_idle_connection_holds_no_region_and_a_busy_one_a_bounded_one():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://bulk-idle")
        b.connect("shm://bulk-idle")
        await wait_peers(a, 1)
        for _ in range(100):
            await a.send(bytes(64 * KiB))  # the largest frame that stays in the ring
            assert await b.recv() == bytes(64 * KiB)
        assert bulkpeers.memfd_mappings() == 0
        for _ in range(50):
            await a.send(bytes(MiB))
            assert len(await b.recv()) == MiB
        conn = seam.connections(a)[0]
        assert conn.bulk_out is not None and conn.bulk_out.region is not None
        assert conn.bulk_out.region.capacity == 8 * MiB  # eight such frames, and no more
        assert bulkpeers.memfd_mappings() == 2  # a's region, and b's mapping of it


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap thresholds")
async def test_large_frames_received_a_few_at_a_time_do_not_fault_in_fresh_memory():
    # recv() copies each frame into new bytes.  glibc mapped each 1 MiB
    # block afresh, or gave the heap behind a few freed ones back to the
    # kernel, so every such message cost 256 page faults (the kernel
    # zeroing each page, several times the copy itself) until the reader
    # let the heap keep blocks as large as its region's frames.
    payloads = [os.urandom(MiB) for _ in range(4)]
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        pull.bind("shm://bulk-faults")
        push.connect("shm://bulk-faults")
        await wait_peers(push, 1)

        async def four() -> None:
            held = []
            for p in payloads:
                await push.send(p)
                held.append(await pull.recv())
            assert held == payloads

        await four()  # the region is made, and pre-faulted, here
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            await four()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        assert faults < 40 * 16, f"{faults / 40:.0f} page faults per 1 MiB message"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heap thresholds")
async def test_frames_that_stay_in_the_ring_do_not_fault_in_fresh_memory_either():
    # A 64 KiB frame stays in the ring, and recv() copies it into new
    # bytes.  glibc gave the heap top back to the kernel whenever more than
    # 128 KiB of it was free, so each such frame was faulted in afresh (13
    # page faults a message, more system time than the copy's user time)
    # until a reader let the heap keep a ring's worth of memory.  The
    # reader is a process of its own, whose allocator nothing else tuned.
    payloads = [bytes([i]) * (64 * KiB) for i in range(4)]
    warm, count = 100, 400
    child = spawn(bulkpeers.pull_counting_faults, "shm://ring-faults", True, payloads, warm, count)
    try:
        await child.expect("ready")
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://ring-faults")
            for i in range(warm + count):
                await push.send(payloads[i % 4])
            faults, wrong = await child.recv(timeout=120)
        assert wrong == 0
        assert faults < count, f"{faults / count:.1f} page faults per 64 KiB message"
        await child.finish()
    finally:
        child.close()


# -- every transport: the same calls, whatever carries them ------------------------------

ANY_TRANSPORT = pytest.mark.parametrize("scheme", ["shm", "inproc", "tcp"])


@ANY_TRANSPORT
async def test_large_messages_leases_and_loans_work_on_every_transport(scheme):
    # shm:// reads in place; inproc:// passes the object whole; tcp:// goes
    # through libzmq.  Leases and loans are the same calls everywhere (a
    # private copy where nothing can be lent), so code need not care.
    make = conformance.link_factory(PUSH, PULL, tx_binds=False, max_msg_size=20 * MiB)
    big = [os.urandom(n) for n in (70 * KiB, 3 * MiB, 16 * MiB)]
    async with make(scheme) as link:
        for m in big:  # one at a time: inproc:// holds about a ring's worth of bytes
            await link.tx.send(m)
            with await link.rx.recv(copy=False) as lease:
                assert lease.buffer.readonly and lease.buffer == m
        async with link.tx.loan(2 * MiB) as buf:
            buf[:] = big[1][: 2 * MiB]
        await conformance.cancel_a_loan(link.tx, 1 * MiB)
        assert await link.rx.recv() == big[1][: 2 * MiB]
        await link.tx.send_multipart([b"head", big[2], b"tail"])
        leases = await link.rx.recv_multipart(copy=False)
        assert [bytes(x.buffer) for x in leases] == [b"head", big[2], b"tail"]
        for lease in reversed(leases):
            lease.release()
        await link.tx.send_many([b"a", big[0], b"b"])
        got: list[bytes] = []
        while len(got) < 3:  # tcp:// may hand them over in more than one go
            got += await link.rx.recv_many(3 - len(got))
        assert got == [b"a", big[0], b"b"]
        with pytest.raises(trio.WouldBlock):
            link.rx.recv_nowait()  # the cancelled loan sent nothing


@ANY_TRANSPORT
async def test_loans_send_what_was_written_even_with_the_view_released(scheme):
    # A loan at or under the inline limit is a private buffer written into
    # the ring when the block ends: the peer gets the bytes as they were
    # then, and a later loan does not disturb an earlier message.  Code may
    # release the view it was lent before the block ends, small or large.
    make = conformance.link_factory(PUSH, PULL, tx_binds=False)
    sent = [os.urandom(n) for n in (1, 1 * KiB, 64 * KiB, 200 * KiB)]
    async with make(scheme) as link:
        for i, m in enumerate(sent):
            async with link.tx.loan(len(m)) as buf:
                buf[:] = m
                if i % 2:
                    buf.release()
        await conformance.cancel_a_loan(link.tx, 1 * KiB)
        got: list[bytes] = []
        while len(got) < len(sent):
            got.append(await link.rx.recv())
        assert got == sent
        with pytest.raises(trio.WouldBlock):
            link.rx.recv_nowait()  # the cancelled loan sent nothing


async def test_large_requests_and_replies_keep_their_envelopes():
    # A large frame is held in the region until the socket takes it: the
    # request id (REQ/REP) and the routing id (ROUTER) must survive that.
    big = os.urandom(1 * MiB)
    with trio.fail_after(20):
        async with shmsock.socket(REQ) as req, shmsock.socket(REP) as rep:
            rep.bind("shm://bulk-reqrep")
            req.connect("shm://bulk-reqrep")
            await req.send(big)
            assert await rep.recv() == big
            await rep.send(big[::-1])
            assert await req.recv() == big[::-1]
        async with shmsock.socket(ROUTER) as router, shmsock.socket(DEALER) as dealer:
            router.bind("shm://bulk-router")
            dealer.connect("shm://bulk-router")
            await dealer.send_multipart([b"", big])
            ident, *rest = await router.recv_multipart(copy=False)
            assert [bytes(x.buffer) for x in rest] == [b"", big]
            await router.send_multipart([bytes(ident.buffer), b"", big[::-1]])
            assert await dealer.recv_multipart() == [b"", big[::-1]]


async def test_recv_of_a_large_multipart_message_raises_and_leaves_it_whole():
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://bulk-multipart-recv")
        push.connect("shm://bulk-multipart-recv")
        frames = [b"head", os.urandom(1 * MiB)]
        await push.send_multipart(frames)
        with pytest.raises(shmsock.MultipartMessage):
            await pull.recv()
        assert await pull.recv_multipart() == frames


async def test_a_multipart_message_whose_large_frames_outgrow_the_region_arrives_whole():
    """[b"t", 16 MiB, 16 MiB, 16 MiB] after 16 MiB frames made a region that
    holds two of them: the region grows for the whole message, so
    send_multipart_nowait and await send_multipart send it (they used to raise
    WouldBlock every time and wait for ever: the reader had nothing to
    release).  The receiver is another process; 30 s is only a hang guard."""
    big = [os.urandom(16 * MiB) for _ in range(3)]
    messages = [[b"one", big[0]], [b"t", *big], [b"t", *big[::-1]], [b"after", big[1]]]
    child = spawn(bulkpeers.pull_digests, "shm://bulk-multipart-grows", True, len(messages))
    try:
        await child.expect("ready")
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://bulk-multipart-grows")
            await push.wait_peers(1)
            with trio.fail_after(30):
                await push.send_multipart(messages[0])  # a region for 16 MiB frames
                push.send_multipart_nowait(messages[1])  # a larger region: room at once
                await push.send_multipart(messages[2])
                await push.send_multipart(messages[3])
                got = await child.recv()
            assert got == [digest(frames) for frames in messages]
            child.send("exit")
            assert await child.join() == 0
    finally:
        child.close()


async def test_a_message_or_batch_needing_more_than_the_region_it_found_arrives_whole():
    """A region made for 100 KiB frames (1 MiB) meets a batch and then a
    multipart message whose large frames, each small enough for some region,
    need more than it together: each is written into one region that holds
    all of it (they used to fill the old region and wait for ever)."""
    small, mid = os.urandom(100 * KiB), [os.urandom(400 * KiB + i) for i in range(3)]
    batch = [*mid, os.urandom(2 * MiB)]
    multi = [b"t", *(os.urandom(3 * MiB) for _ in range(3))]
    child = spawn(bulkpeers.pull_digests, "shm://bulk-outgrown", True, 1 + len(batch) + 1)
    try:
        await child.expect("ready")
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://bulk-outgrown")
            await push.wait_peers(1)
            with trio.fail_after(30):
                await push.send(small)
                await push.send_many(batch)
                await push.send_multipart(multi)  # 9 MiB, in a region of 8 MiB
                got = await child.recv()
            assert got == [digest([m]) for m in [small, *batch]] + [digest(multi)]
            child.send("exit")
            assert await child.join() == 0
    finally:
        child.close()
