"""ROUTER and DEALER placements, and REP's envelope for DEALERs, with no I/O.

Each test drives a pattern the way the socket does (``outgoing`` then
``route`` and ``sent``/``refused``; ``next_message``, ``accept``,
``incoming``, ``received``) with fake pipes, one rule of the docstrings of
``shmsock/_patterns/router.py``, ``dealer.py`` and ``rep.py`` at a time.
"""

from __future__ import annotations

import pytest
from helpers.fakes import FakePipe, attach, check_invariant

from shmsock import HostUnreachable, Options, SocketType
from shmsock._patterns import DROPPED, make_pattern
from shmsock._patterns.router import REQUEST_ID

REQ, DEALER, ROUTER, REP = SocketType.REQ, SocketType.DEALER, SocketType.ROUTER, SocketType.REP


def peer(name: str, kind: SocketType = DEALER, identity: bytes = b"") -> FakePipe:
    pipe = FakePipe(name)
    pipe.peer_type = kind
    pipe.peer_identity = identity
    return pipe


def router_with(*pipes: FakePipe, mandatory: bool = True):
    router = make_pattern(ROUTER)
    router.set_options(Options(router_mandatory=mandatory))
    attach(router, *pipes)
    return router


def place(pattern, frames):
    """What the socket does for one send: shape, then route; (placement, frames, aux)."""
    pattern.check_send()
    out, aux = pattern.outgoing(frames) if pattern.shapes_send else (frames, pattern.send_aux())
    target = pattern.route()
    if target is not None and target is not DROPPED:
        pattern.sent(target)
    return target, out, aux


def take(pattern):
    """What the socket does for one receive: the frames the user gets, or None."""
    pattern.check_recv()
    while (got := pattern.next_message()) is not None:
        pipe, (frames, aux) = got
        if not pattern.accept(pipe, aux):
            continue
        if pattern.shapes_recv:
            frames = pattern.incoming(pipe, frames, aux)
            if frames is None:
                continue
        pattern.received(pipe, aux)
        return frames
    return None


# -- routing ids ---------------------------------------------------------------------


def test_a_peer_is_known_by_the_id_it_asked_for_or_by_one_the_router_makes_up():
    a, b, c = peer("a", identity=b"alice"), peer("b"), peer("c")
    router = router_with(a, b, c)
    assert router.routing_id_of(a) == b"alice"
    made = [router.routing_id_of(b), router.routing_id_of(c)]
    for rid in made:
        assert len(rid) == 5 and rid[0] == 0  # libzmq's shape: b"\0" + 32-bit counter
    assert made[0] != made[1]
    assert int.from_bytes(made[1][1:], "big") == int.from_bytes(made[0][1:], "big") + 1
    assert list(router.by_id) == [b"alice", *made]


def test_an_id_is_in_use_while_its_peer_lives_and_free_once_it_departs():
    a = peer("a", identity=b"w1")
    router = router_with(a)
    assert router.identity_in_use(b"w1")
    assert not router.identity_in_use(b"w2")
    a.alive = False
    router.gone(a)
    assert not router.identity_in_use(b"w1")  # a restarted worker may have it back
    # What it sent before it went is still presented behind its id.
    a.messages.append(([b"last words"], 0))
    router.queues.want_recv(a)
    assert take(router) == [b"w1", b"last words"]
    router.retired(a)
    assert router.routing_id_of(a) is None


def test_a_second_peer_with_a_taken_id_gets_another_rather_than_stealing_it():
    a, b = peer("a", identity=b"x"), peer("b", identity=b"x")
    router = router_with(a, b)
    assert router.by_id[b"x"] is a
    assert router.routing_id_of(b) != b"x"


# -- sending ---------------------------------------------------------------------------


def test_send_goes_to_the_peer_its_first_frame_names_and_only_there():
    a, b = peer("a", identity=b"A"), peer("b", identity=b"B")
    router = router_with(a, b)
    for rid, pipe in [(b"B", b), (b"A", a), (b"B", b)]:
        target, frames, aux = place(router, [rid, b"hello", b"world"])
        assert target is pipe
        assert (frames, aux) == ([b"hello", b"world"], 0)


def test_an_unknown_id_raises_host_unreachable_naming_it_by_default():
    router = router_with(peer("a", identity=b"A"))
    with pytest.raises(HostUnreachable, match="b'nobody'") as info:
        place(router, [b"nobody", b"x"])
    assert info.value.routing_id == b"nobody"
    assert router.unroutable == 0


def test_with_router_mandatory_off_an_unknown_id_is_dropped_and_counted():
    router = router_with(peer("a", identity=b"A"), mandatory=False)
    target, _frames, _aux = place(router, [b"nobody", b"x"])
    assert target is DROPPED
    assert router.unroutable == 1
    router.set_options(Options(router_mandatory=True))
    with pytest.raises(HostUnreachable):
        place(router, [b"nobody", b"x"])


def test_a_full_peer_is_waited_for_and_others_are_not_tried():
    a, b = peer("a", identity=b"A"), peer("b", identity=b"B")
    router = router_with(a, b)
    a.writable = False  # its ring is full
    router.outgoing([b"A", b"x"])
    assert router.route() is None  # wait for A's room, not B's
    router.refused(a)
    check_invariant(router, [a, b])
    a.writable = True
    assert router.route() is a


def test_a_peer_that_departs_while_its_message_waits_is_unreachable():
    a = peer("a", identity=b"A")
    router = router_with(a)
    a.writable = False
    router.outgoing([b"A", b"x"])
    assert router.route() is None
    a.alive = False
    router.gone(a)
    with pytest.raises(HostUnreachable):
        router.route()
    # ... and so is a new send to it.
    with pytest.raises(HostUnreachable):
        router.outgoing([b"A", b"x"])


def test_one_frame_is_not_a_router_message():
    router = router_with(peer("a", identity=b"A"))
    with pytest.raises(ValueError, match="at least two frames"):
        router.outgoing([b"A"])


def test_targets_are_the_one_peer_named_for_the_size_check():
    a, b = peer("a", identity=b"A"), peer("b", identity=b"B")
    router = router_with(a, b)
    router.outgoing([b"B", b"x"])
    assert list(router.targets([a, b])) == [b]


# -- REQ peers: libzmq's envelope ---------------------------------------------------------


def test_a_reqs_request_comes_in_libzmqs_envelope_and_the_reply_goes_back_by_it():
    q = peer("q", REQ, identity=b"client")
    router = router_with(q)
    q.arrive(router, ([b"ask", b"more"], 7))
    frames = take(router)
    assert frames == [b"client", REQUEST_ID.pack(7), b"", b"ask", b"more"]
    target, out, aux = place(router, [*frames[:3], b"answer"])
    assert target is q
    assert (out, aux) == ([b"answer"], 7)


def test_a_reply_to_a_req_without_request_id_answers_its_last_request():
    q = peer("q", REQ, identity=b"client")
    router = router_with(q)
    q.arrive(router, ([b"ask"], 41))
    take(router)
    assert place(router, [b"client", b"", b"answer"])[1:] == ([b"answer"], 41)


def test_a_reply_to_a_req_without_envelope_is_refused():
    router = router_with(peer("q", REQ, identity=b"client"))
    with pytest.raises(ValueError, match="is a REQ"):
        router.outgoing([b"client", b"answer"])


def test_a_dealers_message_comes_in_behind_its_id_alone():
    d = peer("d", DEALER, identity=b"D")
    router = router_with(d)
    d.arrive(router, ([b"", b"body"], 0))
    assert take(router) == [b"D", b"", b"body"]


def test_a_router_fair_queues_over_its_peers():
    a, b = peer("a", identity=b"A"), peer("b", identity=b"B")
    router = router_with(a, b)
    a.arrive(router, ([b"a1"], 0), ([b"a2"], 0))
    b.arrive(router, ([b"b1"], 0))
    got = [take(router) for _ in range(3)]
    assert got == [[b"A", b"a1"], [b"B", b"b1"], [b"A", b"a2"]]


# -- DEALER --------------------------------------------------------------------------


def test_a_dealer_round_robins_and_fair_queues_with_no_envelope():
    dealer = make_pattern(DEALER)
    a, b = peer("a", REP), peer("b", ROUTER)
    attach(dealer, a, b)
    assert not dealer.shapes_send and not dealer.shapes_recv
    assert dealer.plain_send and dealer.plain_recv and dealer.batch_send and dealer.batch_recv
    assert [place(dealer, [b"", b"m"])[0] for _ in range(4)] == [a, b, a, b]
    a.writable = False
    assert place(dealer, [b"m"])[0] is b  # a full peer is skipped, not waited for
    assert dealer.compatible == {REP, DEALER, ROUTER}


def test_the_compatible_sets_are_libzmqs():
    def compatible(kind):
        return make_pattern(kind).compatible

    assert compatible(ROUTER) == {REQ, DEALER, ROUTER}
    assert compatible(REQ) == {REP, ROUTER}
    assert compatible(REP) == {REQ, DEALER}


# -- REP answering a DEALER -------------------------------------------------------------


def test_a_rep_strips_a_dealers_envelope_and_sends_it_back_before_the_reply():
    rep = make_pattern(REP)
    d = peer("d", DEALER)
    attach(rep, d)
    assert rep.shapes_recv  # a DEALER is attached
    d.arrive(rep, ([b"client", b"\x01\x00\x00\x00", b"", b"ask"], 0))
    assert take(rep) == [b"ask"]
    target, out, aux = place(rep, [b"answer"])
    assert target is d
    assert (out, aux) == ([b"client", b"\x01\x00\x00\x00", b"", b"answer"], 0)
    assert not rep.shapes_send  # idle again


def test_a_rep_drops_a_dealers_message_that_is_not_a_request():
    rep = make_pattern(REP)
    d = peer("d", DEALER)
    attach(rep, d)
    d.arrive(rep, ([b"no delimiter"], 0), ([b"x", b""], 0), ([b"", b"fine"], 0))
    assert take(rep) == [b"fine"]
    assert place(rep, [b"ok"])[1] == [b"", b"ok"]


def test_a_rep_with_req_peers_only_does_not_shape():
    rep = make_pattern(REP)
    q = peer("q", REQ)
    attach(rep, q)
    assert not rep.shapes_recv and not rep.shapes_send
    d = peer("d", DEALER)
    attach(rep, d)
    assert rep.shapes_recv
    q.arrive(rep, ([b"ask"], 9))
    assert take(rep) == [b"ask"]
    assert place(rep, [b"answer"])[1:] == ([b"answer"], 9)  # a REQ's reply keeps its aux
    rep.retired(d)
    assert not rep.shapes_recv
