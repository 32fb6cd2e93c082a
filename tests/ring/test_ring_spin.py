"""The spin mechanism of the binding layer (shmsock/_spin.c through ``_ring.spin``).

Each case ends the spin one way and checks the answer: data (which ring),
the bound, a peer that announced that it sleeps, a doorbell with news, and
a ring whose position is impossible (left for the read to report).
"""

from __future__ import annotations

import socket
import threading

import pytest
from helpers import ringforge as rf

from shmsock import CorruptMessage
from shmsock import _ring as R

CAP = 1024
LONG = 30_000_000_000  # 30 s: a spin that must end some other way than by its bound


def ring():
    region = bytearray(R.region_size(CAP))
    R.init_ring(region, CAP)
    return region, R.Producer(region, CAP), R.Consumer(region, CAP)


def test_data_ends_the_spin_with_the_index_of_its_ring():
    _, _, idle = ring()
    _, prod, cons = ring()
    prod.write(b"hello")
    assert R.spin([idle, cons], [None, None], [-1, -1], LONG) == 1
    assert cons.read(R.ReadBuffer(CAP))[0] == [b"hello"]


def test_empty_rings_end_the_spin_at_its_bound():
    _, _, a = ring()
    _, _, b = ring()
    assert R.spin([a], [None], [-1], 200_000) == R.SPIN_TIMEOUT
    assert R.spin([a, b], [None, None], [-1, -1], 200_000) == R.SPIN_TIMEOUT
    assert R.spin([a], [None], [-1], 0) == R.SPIN_TIMEOUT  # one look


def test_a_peer_that_announced_its_sleep_ends_the_spin():
    # Our rx ring, and the ring we write to the peer (tx); the peer reads
    # tx through peer_rx and has announced that it sleeps: no answer comes.
    _, _, rx = ring()
    _, tx, peer_rx = ring()
    assert peer_rx.prepare_wait()
    assert R.spin([rx], [tx], [-1], LONG) == R.SPIN_PEER_IDLE
    # One peer at work is enough to go on spinning.
    _, _, rx2 = ring()
    assert R.spin([rx, rx2], [tx, None], [-1, -1], 200_000) == R.SPIN_TIMEOUT
    peer_rx.cancel_wait()
    assert R.spin([rx], [tx], [-1], 200_000) == R.SPIN_TIMEOUT


@pytest.mark.parametrize("news", ["byte", "hang-up"])
def test_a_doorbell_with_news_ends_the_spin(news):
    _, _, rx = ring()
    ours, theirs = socket.socketpair()
    try:
        if news == "byte":
            theirs.send(b"S")
        else:
            theirs.close()
        assert R.spin([rx], [None], [ours.fileno()], LONG) == R.SPIN_DOORBELL
    finally:
        ours.close()
        theirs.close()


def test_the_spin_releases_the_gil():
    # The writer is a Python thread: it can only write while the spinning
    # thread does not hold the GIL.  Held, the spin would run to its bound.
    _, prod, cons = ring()
    started = threading.Event()

    def write() -> None:
        started.wait()
        prod.write(b"from a thread")

    t = threading.Thread(target=write)
    t.start()
    started.set()
    try:
        assert R.spin([cons], [None], [-1], LONG) == 0
    finally:
        t.join()
    assert cons.read(R.ReadBuffer(CAP))[0] == [b"from a thread"]


def test_an_impossible_position_is_left_for_the_read_to_report():
    region, _, cons = ring()
    rf.put(region, "tail", 5)  # misaligned: not a position a producer publishes
    assert R.spin([cons], [None], [-1], LONG) == 0
    with pytest.raises(CorruptMessage):
        cons.read(R.ReadBuffer(CAP))
