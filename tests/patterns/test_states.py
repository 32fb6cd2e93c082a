"""Every REQ, REP and PAIR state transition, and the capabilities, with no I/O.

Each test drives a pattern the way the socket does (route, offer, sent or
refused; next_message, accept, received) with fake pipes, one transition
of the docstrings of ``shmsock/_patterns/req.py`` and ``rep.py`` at a time.
"""

from __future__ import annotations

import pytest
import trio
from helpers.fakes import FakePipe, attach

from shmsock import SocketType, StateError
from shmsock._patterns import DROPPED, PATTERNS, make_pattern


def send(pattern, pipe_ok=True):
    """Route one message as the socket does; return where it went (or the placement)."""
    pattern.check_send()
    aux = pattern.send_aux()
    target = pattern.route()
    if target is None or target is DROPPED:
        return target, aux
    if pipe_ok:
        pattern.sent(target)
    else:
        target.writable = False  # a refused offer marks the pipe not writable
        pattern.refused(target)
    return target, aux


def recv(pattern):
    """Take one message as the socket does: (pipe, message) or None."""
    pattern.check_recv()
    while (got := pattern.next_message()) is not None:
        pipe, (message, aux) = got
        if pattern.accept(pipe, aux):
            pattern.received(pipe, aux)
            return pipe, message
    pattern.no_message([])
    return None


def reply(pipe, message, aux):
    """*pipe*'s peer sends *message* with *aux*; the transport queues it."""
    pipe.messages.append((message, aux))
    pipe.readable = True


# -- REQ ---------------------------------------------------------------------------


def req_with(*names):
    req = make_pattern(SocketType.REQ)
    pipes = [FakePipe(n) for n in names]
    attach(req, *pipes)
    return req, pipes


def test_req_idle_refuses_recv_and_send_moves_to_waiting():
    req, [rep] = req_with("rep")
    with pytest.raises(StateError, match="send a request before receiving"):
        req.check_recv()
    target, aux = send(req)
    assert target is rep and aux != 0
    with pytest.raises(StateError, match="receive the reply before sending again"):
        req.check_send()


def test_req_waiting_takes_only_the_reply_to_its_request_then_is_idle():
    req, [a, b] = req_with("a", "b")
    target, aux = send(req)
    assert target is a
    reply(b, b"not asked", aux)  # another peer, same id: dropped
    reply(a, b"stale", aux - 1)  # an abandoned request's reply: dropped
    reply(a, b"answer", aux)
    req.queues.want_recv(b)
    assert recv(req) == (a, b"answer")
    req.check_send()  # IDLE again
    with pytest.raises(StateError):
        req.check_recv()


def test_req_ids_are_non_zero_and_wrap():
    req, _ = req_with("rep")
    req._next_id = 0xFFFFFFFF
    assert req.send_aux() == 1
    assert req.send_aux() == 2


def test_req_whose_rep_dies_raises_broken_once_then_is_idle():
    req, [rep] = req_with("rep")
    send(req)
    rep.alive = False
    req.gone(rep)
    with pytest.raises(trio.BrokenResourceError):
        recv(req)
    req.check_send()  # IDLE: a new request may go elsewhere


def test_req_another_peer_dying_does_not_break_the_request():
    req, [_a, b] = req_with("a", "b")
    send(req)
    req.gone(b)
    assert recv(req) is None  # nothing yet, and not broken


def test_req_cancelled_recv_abandons_the_request():
    req, [rep] = req_with("rep")
    _, aux = send(req)
    req.recv_cancelled()
    req.check_send()  # IDLE
    _, aux2 = send(req)
    reply(rep, b"late", aux)
    reply(rep, b"right", aux2)
    assert recv(req) == (rep, b"right")


def test_req_round_robins_requests_and_skips_a_full_rep():
    req, [a, b] = req_with("a", "b")
    assert send(req)[0] is a
    req.recv_cancelled()
    target, _ = send(req, pipe_ok=False)  # b had no room
    assert target is b
    assert send(req)[0] is a


# -- REP ---------------------------------------------------------------------------


def rep_with(*names):
    rep = make_pattern(SocketType.REP)
    pipes = [FakePipe(n) for n in names]
    attach(rep, *pipes)
    return rep, pipes


def test_rep_idle_refuses_send_and_recv_moves_to_owing():
    rep, [a] = rep_with("a")
    with pytest.raises(StateError, match="receive a request before sending"):
        rep.check_send()
    reply(a, b"q", 7)
    assert recv(rep) == (a, b"q")
    with pytest.raises(StateError, match="send the reply before receiving again"):
        rep.check_recv()


def test_rep_owing_sends_to_the_asker_with_its_id_and_is_idle():
    rep, [_a, b] = rep_with("a", "b")
    reply(b, b"q", 42)
    rep.queues.want_recv(b)
    assert recv(rep) == (b, b"q")
    target, aux = send(rep)
    assert (target, aux) == (b, 42)
    rep.check_recv()  # IDLE
    with pytest.raises(StateError):
        rep.check_send()


def test_rep_reply_to_a_dead_asker_is_dropped_and_rep_is_idle():
    rep, [a] = rep_with("a")
    reply(a, b"q", 1)
    recv(rep)
    a.alive = False
    assert send(rep)[0] is DROPPED
    rep.check_recv()  # IDLE


def test_rep_waits_while_the_asker_is_full_and_stays_owing():
    rep, [a] = rep_with("a")
    reply(a, b"q", 1)
    recv(rep)
    target, _ = send(rep, pipe_ok=False)
    assert target is a
    assert rep.route() is None  # not writable: wait for its room
    with pytest.raises(StateError):
        rep.check_recv()  # still owing
    a.writable = True
    assert send(rep)[0] is a


# -- PAIR --------------------------------------------------------------------------


def test_pair_raises_broken_once_its_peer_is_gone_until_a_new_one_attaches():
    pair = make_pattern(SocketType.PAIR)
    old = FakePipe("old")
    attach(pair, old)
    pair.no_target([old])  # a peer: no error
    old.alive = False
    pair.gone(old)
    with pytest.raises(trio.BrokenResourceError):
        pair.no_target([old])
    with pytest.raises(trio.BrokenResourceError):
        pair.no_message([old])
    new = FakePipe("new")
    attach(pair, new)
    pair.no_target([old, new])


# -- capabilities -------------------------------------------------------------------


def test_compatibility_is_symmetric():
    for kind, cls in PATTERNS.items():
        for other in cls.compatible:
            assert kind in PATTERNS[other].compatible, (kind, other)


def test_capabilities_agree_with_each_other():
    for kind, cls in PATTERNS.items():
        assert cls.kind is kind
        assert not cls.batch_send or cls.can_send
        assert not cls.batch_recv or cls.can_recv
        assert not cls.plain_send or cls.can_send
        assert not cls.plain_recv or cls.can_recv
        # An XSUB's sends are control messages (upstream), and what an XPUB
        # receives are its subscribers' control messages: neither is data.
        assert cls.writes_data == (cls.can_send and not cls.sends_control)
        assert cls.reads_data == (cls.can_recv and not cls.fans_out)


@pytest.mark.parametrize("kind", [SocketType.REQ, SocketType.REP])
def test_req_and_rep_refuse_batches(kind):
    pattern = make_pattern(kind)
    with pytest.raises(StateError, match="one message at a time"):
        pattern.check_send_many()
    with pytest.raises(StateError, match="one message at a time"):
        pattern.check_recv_many()


def test_one_way_types_refuse_the_other_way():
    with pytest.raises(StateError, match="PUSH sockets cannot receive"):
        make_pattern(SocketType.PUSH).check_recv()
    with pytest.raises(StateError, match="PULL sockets cannot send"):
        make_pattern(SocketType.PULL).check_send_many()
