"""The ready queues and their schedulers, driven with fake pipes and no I/O."""

from __future__ import annotations

from helpers.fakes import FakePipe, attach, check_invariant

from shmsock import SocketType
from shmsock._patterns import BATCH_TURN, make_pattern
from shmsock._patterns._queues import ReadyQueues, fair_queue, round_robin


def test_a_pipe_is_queued_once_and_leaves_both_queues_when_removed():
    queues: ReadyQueues[FakePipe] = ReadyQueues()
    a, b = FakePipe("a"), FakePipe("b")
    for _ in range(3):
        queues.want_send(a)
        queues.want_recv(a)
    queues.want_send(b)
    assert list(queues.send) == [a, b]
    assert list(queues.recv) == [a]
    queues.remove(a)
    assert list(queues.send) == [b]
    assert list(queues.recv) == []
    assert not a.in_send and not a.in_recv
    queues.clear()
    assert not b.in_send and not queues.send


def test_round_robin_takes_turns_and_a_full_pipe_leaves_until_it_reports_room():
    push = make_pattern(SocketType.PUSH)
    a, b, c = FakePipe("a"), FakePipe("b"), FakePipe("c")
    attach(push, a, b, c)
    order = []
    for _ in range(6):
        pipe = push.route()
        order.append(pipe)
        push.sent(pipe)
    assert order == [a, b, c, a, b, c]
    # b has no room: its offer fails (the pipe marks itself not writable),
    # the socket reports the refusal, and b leaves the queue.
    assert push.route() is a
    push.sent(a)
    assert push.route() is b
    b.writable = False
    push.refused(b)
    assert list(push.queues.send) == [c, a]
    assert [push.route() for _ in range(1)] == [c]
    check_invariant(push, [a, b, c])
    # Room again: the transport reports it, and b takes turns again.
    b.writable = True
    push.queues.want_send(b)
    got = []
    for _ in range(3):
        pipe = push.route()
        got.append(pipe)
        push.sent(pipe)
    assert got == [c, a, b]


def test_round_robin_drops_dead_and_unwritable_pipes_and_passes_over_streaming_ones():
    queues: ReadyQueues[FakePipe] = ReadyQueues()
    queue = queues.send
    dead, full, streaming, ok = FakePipe("dead"), FakePipe("full"), FakePipe("s"), FakePipe("ok")
    for p in (dead, full, streaming, ok):
        queues.want_send(p)
    dead.alive = False
    full.writable = False
    streaming.streaming = True
    assert round_robin(queue) is ok
    assert list(queue) == [ok, streaming]  # the streaming pipe stays, behind
    assert not dead.in_send and not full.in_send and streaming.in_send
    ok.streaming = True
    assert round_robin(queue) is None  # every pipe is streaming: nowhere now
    assert list(queue) == [ok, streaming]


def test_fair_queue_alternates_and_an_empty_pipe_leaves():
    queues: ReadyQueues[FakePipe] = ReadyQueues()
    a, b = FakePipe("a", b"a1", b"a2", b"a3"), FakePipe("b", b"b1")
    queues.want_recv(a)
    queues.want_recv(b)
    got = []
    while (item := fair_queue(queues.recv, rotate=True)) is not None:
        got.append(item[1])
    assert got == [b"a1", b"b1", b"a2", b"a3"]
    assert not queues.recv and not a.in_recv and not b.in_recv


def test_fair_queue_without_rotation_empties_the_first_pipe_first():
    queues: ReadyQueues[FakePipe] = ReadyQueues()
    old, new = FakePipe("old", b"o1", b"o2"), FakePipe("new", b"n1")
    queues.want_recv(old)
    queues.want_recv(new)
    got = []
    while (item := fair_queue(queues.recv, rotate=False)) is not None:
        got.append(item[1])
    assert got == [b"o1", b"o2", b"n1"]


def batches_of(pattern, count, max_count=1):
    """The names of the pipes the next *count* batch receives come from."""
    out = []
    for _ in range(count):
        got = pattern.next_batch(max_count)
        if got is None:
            break
        out.append(got[0].name)
    return out


def test_a_busy_pipe_keeps_its_turn_for_batch_turn_batches_then_the_next_takes_over():
    pull = make_pattern(SocketType.PULL)
    n = 3 * BATCH_TURN
    a = FakePipe("a", *[b"a"] * n)
    b = FakePipe("b", *[b"b"] * n)
    attach(pull, a, b)
    got = batches_of(pull, 4 * BATCH_TURN)
    assert got == (["a"] * BATCH_TURN + ["b"] * BATCH_TURN) * 2
    check_invariant(pull, [a, b])


def test_a_newcomer_is_served_between_the_busy_pipes_turns():
    pull = make_pattern(SocketType.PULL)
    n = 4 * BATCH_TURN
    a = FakePipe("a", *[b"a"] * n)
    b = FakePipe("b", *[b"b"] * n)
    quiet = FakePipe("quiet")
    attach(pull, quiet)
    assert batches_of(pull, 1) == []  # empty: it left the queue
    assert not quiet.in_recv
    attach(pull, a, b)
    assert batches_of(pull, 3) == ["a", "a", "a"]
    quiet.arrive(pull, b"q")  # one message: a newcomer that drains at once
    got = batches_of(pull, 3)
    assert got == ["quiet", "a", "a"]
    quiet.arrive(pull, b"q")
    assert batches_of(pull, 2) == ["quiet", "a"]
    check_invariant(pull, [a, b, quiet])


def test_newcomers_alternate_with_the_queued_pipes_and_cannot_starve_them():
    pull = make_pattern(SocketType.PULL)
    a = FakePipe("a", *[b"a"] * 100)
    attach(pull, a)
    assert batches_of(pull, 1) == ["a"]
    x, y = FakePipe("x"), FakePipe("y")
    attach(pull, x, y)  # empty: they leave at the next look
    x.arrive(pull, b"x")
    y.arrive(pull, b"y")
    assert batches_of(pull, 4) == ["x", "a", "y", "a"]


def test_a_newcomer_left_with_more_than_a_batch_queues_behind_the_busy_pipes():
    pull = make_pattern(SocketType.PULL)
    a = FakePipe("a", *[b"a"] * 100)
    b = FakePipe("b", *[b"b"] * 100)
    attach(pull, a, b)
    assert batches_of(pull, 1) == ["a"]
    late = FakePipe("late", *[b"l"] * 100)  # joins with a backlog
    attach(pull, late)
    # Its first batch comes between the queued pipes' batches; it did not
    # drain, so it is busy: it waits behind a and b for a turn of its own.
    got = batches_of(pull, 1 + 1 + (BATCH_TURN - 2) + BATCH_TURN + BATCH_TURN)
    assert got[:2] == ["late", "a"]
    rest = got[2:]
    assert rest == ["a"] * (BATCH_TURN - 2) + ["b"] * BATCH_TURN + ["late"] * BATCH_TURN


def test_a_pipe_that_ran_dry_during_a_long_turn_queues_as_busy_when_it_has_more():
    pull = make_pattern(SocketType.PULL)
    a = FakePipe("a", b"a1", b"a2")  # two batches, then dry within its turn
    b = FakePipe("b", *[b"b"] * 100)
    attach(pull, a, b)
    assert batches_of(pull, 3) == ["a", "a", "b"]
    assert a.busy and not a.in_recv
    a.arrive(pull, *[b"a"] * 50)
    # Busy: it takes its place behind b without a newcomer's batch first.
    got = batches_of(pull, BATCH_TURN - 1 + BATCH_TURN)
    assert got == ["b"] * (BATCH_TURN - 1) + ["a"] * BATCH_TURN
    assert not a.busy


def test_pair_takes_batches_in_order_without_turns():
    pair = make_pattern(SocketType.PAIR)
    old = FakePipe("old", *[b"o"] * (2 * BATCH_TURN))
    new = FakePipe("new", b"n")
    attach(pair, old, new)
    assert batches_of(pair, 2 * BATCH_TURN + 1) == ["old"] * (2 * BATCH_TURN) + ["new"]
