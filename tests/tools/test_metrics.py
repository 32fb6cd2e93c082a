"""Prometheus metrics: exact counts read at scrape time, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

import pytest
import trio
import trio.testing
from helpers import ringforge as rf
from helpers import seam
from helpers.procs import spawn
from prometheus_client import REGISTRY, CollectorRegistry

import shmsock
from shmsock import _ring as R
from shmsock import _stats
from shmsock._transport.shm import _wire


def sample(metric: str, endpoint: str, kind: str, registry: CollectorRegistry = REGISTRY) -> float:
    value = registry.get_sample_value(metric, {"endpoint": endpoint, "socket_type": kind})
    assert value is not None, f"no {metric} for {endpoint} {kind}"
    return value


def used(metric_kind: str, endpoint: str, direction: str) -> float | None:
    return REGISTRY.get_sample_value(
        "shmsock_ring_used_bytes",
        {"endpoint": endpoint, "socket_type": metric_kind, "direction": direction},
    )


# -- the ring's own message counters ------------------------------------------------


def test_ring_counts_messages_not_records_in_its_header():
    cap = 4096
    region = bytearray(R.region_size(cap))
    R.init_ring(region, cap)
    prod = R.Producer(region, cap)
    # Three messages in six records: a plain one, three frames, a frame in
    # two fragments.
    records = [
        (b"plain", R.START),
        (b"f1", R.START | R.MORE),
        (b"f2", R.MORE),
        (b"f3", 0),
        (b"frag1", R.START | R.CONT),
        (b"frag2", 0),
    ]
    for payload, flags in records:
        prod.write(payload, flags)
    payload_bytes = sum(len(p) for p, _ in records)
    assert rf.get(region, "msgs_written") == 3
    assert rf.get(region, "tail_seq") == 6
    assert prod.messages == 3
    assert prod.bytes == payload_bytes

    cons = R.Consumer(region, cap)
    buf = R.ReadBuffer(cap)
    got = cons.read(buf, max_count=2)[0]  # stops inside the second message
    assert len(got) == 2
    assert rf.get(region, "msgs_read") == 1
    cons.read(buf)
    assert rf.get(region, "msgs_read") == cons.messages == 3
    stats = R.read_stats(region)
    assert (stats.msgs_written, stats.msgs_read) == (3, 3)

    # A consumer taking the ring over continues the header's count, and
    # counts its own from zero.
    prod.write(b"more")
    cons.release()
    taker = R.Consumer(region, cap, resync=True)
    taker.read(buf)
    assert rf.get(region, "msgs_read") == 4
    assert (taker.messages, taker.bytes) == (1, 4)
    taker.release()
    prod.release()


# -- cross-process: exact counts ----------------------------------------------------

SINGLE = [b"m%d" % i * (i % 7 + 1) for i in range(990)]
MULTI = [[b"head%d" % i, b"", b"tail" * i] for i in range(9)]
LARGE = bytes(range(256)) * 600  # 153,600 bytes: streamed in fragments
MESSAGE_BYTES = sum(map(len, SINGLE)) + sum(len(f) for m in MULTI for f in m) + len(LARGE)


def push_mixed(conn: Connection, endpoint: str) -> None:
    """Send 1,000 messages (plain, multipart, one fragmented); report the scrape."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=None, ring_size=64 * 1024) as push:
            push.connect(endpoint)
            for i, msg in enumerate(SINGLE):
                await push.send(msg)
                if i % 110 == 0:
                    await push.send_multipart(MULTI[i // 110])
            await push.send(LARGE)
            await push.wait_peers(1)
            # Read before the socket closes: a live connection's counts.
            conn.send(
                (
                    sample("shmsock_messages_sent_total", endpoint, "PUSH"),
                    sample("shmsock_bytes_sent_total", endpoint, "PUSH"),
                )
            )
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


async def test_scrape_counts_exactly_1000_messages_between_processes():
    endpoint = "shm://metrics-exact"
    assert len(SINGLE) + len(MULTI) + 1 == 1000
    async with shmsock.socket(shmsock.PULL) as pull:
        pull.bind(endpoint)
        with spawn(push_mixed, endpoint) as child:
            got = [await pull.recv_multipart() for _ in range(1000)]
            assert sum(len(f) for m in got for f in m) == MESSAGE_BYTES
            assert sample("shmsock_messages_received_total", endpoint, "PULL") == 1000
            assert sample("shmsock_bytes_received_total", endpoint, "PULL") == MESSAGE_BYTES
            assert sample("shmsock_peers", endpoint, "PULL") == 1
            assert sample("shmsock_corrupt_messages_total", endpoint, "PULL") == 0
            assert await child.recv() == (1000, MESSAGE_BYTES)
            await child.finish()


def push_count(conn: Connection, endpoint: str, count: int) -> None:
    """Send *count* 10-byte messages, then close (with linger) and exit."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PUSH, linger=None) as push:
            push.connect(endpoint)
            for _ in range(count):
                await push.send(b"0123456789")

    trio.run(main)


async def test_counts_of_disconnected_peers_stay():
    endpoint = "shm://metrics-retired"
    async with shmsock.socket(shmsock.PULL) as pull:
        pull.bind(endpoint)
        for count, total in ((10, 10), (5, 15)):
            with spawn(push_count, endpoint, count) as child:
                for _ in range(count):
                    await pull.recv()
                assert await child.join() == 0
            while pull.peer_count:  # noqa: ASYNC110 (until the poller has seen it go)
                await trio.sleep(0.01)
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()  # finds its ring empty: the peer is retired
            assert seam.connections(pull) == []
            # Its counts are still there.
            assert sample("shmsock_messages_received_total", endpoint, "PULL") == total
            assert sample("shmsock_bytes_received_total", endpoint, "PULL") == 10 * total
            assert sample("shmsock_peers", endpoint, "PULL") == 0


# -- in-process behaviour -----------------------------------------------------------


async def test_counts_of_closed_sockets_stay_and_sockets_add_up():
    endpoint = "shm://metrics-closed"
    async with shmsock.socket(shmsock.PULL) as pull:
        pull.bind(endpoint)
        async with shmsock.socket(shmsock.PUSH) as a, shmsock.socket(shmsock.PUSH) as b:
            a.connect(endpoint)
            b.connect(endpoint)
            await a.wait_peers()
            await b.wait_peers()
            await a.send(b"abc")
            await b.send_many([b"de", b"f"])
            assert sample("shmsock_messages_sent_total", endpoint, "PUSH") == 3
            assert sample("shmsock_peers", endpoint, "PUSH") == 2
            for _ in range(3):
                await pull.recv()
        assert sample("shmsock_messages_sent_total", endpoint, "PUSH") == 3
        assert sample("shmsock_bytes_sent_total", endpoint, "PUSH") == 6
        assert sample("shmsock_peers", endpoint, "PUSH") == 0
    assert sample("shmsock_messages_received_total", endpoint, "PULL") == 3


def samples_of(endpoint: str) -> dict[tuple[str, str, str], float]:
    """The default registry's samples for *endpoint*: (name, socket_type, direction) -> value."""
    return {
        (s.name, s.labels["socket_type"], s.labels.get("direction", "")): s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.labels.get("endpoint") == endpoint
    }


async def test_a_bound_socket_with_no_peers_has_its_series_at_zero():
    # The same series as shmsock exporter shows for it (tests/tools/test_cli.py),
    # and the counters only a process keeps besides.
    async with shmsock.socket(shmsock.PULL) as pull, shmsock.socket(shmsock.PUSH) as push:
        pull.bind("shm://metrics-alone-pull")
        push.bind("shm://metrics-alone-push")
        assert samples_of("shm://metrics-alone-pull") == {
            ("shmsock_messages_received_total", "PULL", ""): 0,
            ("shmsock_bytes_received_total", "PULL", ""): 0,
            ("shmsock_corrupt_messages_total", "PULL", ""): 0,
            ("shmsock_dropped_messages_total", "PULL", ""): 0,
            ("shmsock_peers", "PULL", ""): 0,
            ("shmsock_ring_used_bytes", "PULL", "in"): 0,
        }
        assert samples_of("shm://metrics-alone-push") == {
            ("shmsock_messages_sent_total", "PUSH", ""): 0,
            ("shmsock_bytes_sent_total", "PUSH", ""): 0,
            ("shmsock_send_blocked_seconds_total", "PUSH", ""): 0,
            ("shmsock_peers", "PUSH", ""): 0,
            ("shmsock_ring_used_bytes", "PUSH", "out"): 0,
        }


async def test_ring_used_bytes_shows_what_waits_unread():
    endpoint = "shm://metrics-used"
    async with shmsock.socket(shmsock.PULL) as pull, shmsock.socket(shmsock.PUSH) as push:
        pull.bind(endpoint)
        push.connect(endpoint)
        await push.wait_peers()
        for _ in range(5):
            await push.send(b"x" * 100)
        waiting = 5 * rf.rec_size(100)
        assert used("PUSH", endpoint, "out") == waiting
        assert used("PULL", endpoint, "in") == waiting
        for _ in range(5):
            await pull.recv()
        assert used("PUSH", endpoint, "out") == 0
        assert used("PULL", endpoint, "in") == 0


async def test_send_blocked_seconds_counts_waits_for_room_only():
    endpoint = "shm://metrics-blocked"
    metric = "shmsock_send_blocked_seconds_total"
    async with (
        shmsock.socket(shmsock.PUSH, ring_size=4096) as push,
        shmsock.socket(shmsock.PULL) as pull,
        trio.open_nursery() as nursery,
    ):
        # Waiting for a peer to appear is not waiting for room.
        push.connect(endpoint)
        nursery.start_soon(push.send, b"first")
        await trio.testing.wait_all_tasks_blocked()
        pull.bind(endpoint)
        assert await pull.recv() == b"first"
        assert sample(metric, endpoint, "PUSH") == 0
        # Fill the ring, then one more send waits until the reader makes room.
        sent = 0
        while True:
            try:
                push.send_nowait(b"y" * 500)
            except trio.WouldBlock:
                break
            sent += 1
        nursery.start_soon(push.send, b"last")
        await trio.testing.wait_all_tasks_blocked()
        assert sample(metric, endpoint, "PUSH") == 0  # counted when the wait ends
        for _ in range(sent):
            await pull.recv()
        assert await pull.recv() == b"last"
        assert sample(metric, endpoint, "PUSH") > 0
        # A PULL socket never sends: it has no such series.
        assert (
            REGISTRY.get_sample_value(metric, {"endpoint": endpoint, "socket_type": "PULL"}) is None
        )


async def test_oversized_messages_from_a_peer_that_states_no_limit_count_as_dropped(
    monkeypatch,
):
    # A PUSH of a build before the limits were exchanged (its handshake
    # leaves bytes 44-63 zero) cannot know the PULL's: the PULL drops.
    pack = _wire.Handshake.pack
    monkeypatch.setattr(_wire.Handshake, "pack", lambda self: pack(self)[:44] + bytes(20))
    endpoint = "shm://metrics-oversized"
    async with (
        shmsock.socket(shmsock.PULL, max_msg_size=100) as pull,
        shmsock.socket(shmsock.PUSH) as push,
    ):
        pull.bind(endpoint)
        push.connect(endpoint)
        await push.send(b"z" * 200)
        await push.send(b"ok")
        assert await pull.recv() == b"ok"
        assert sample("shmsock_dropped_messages_total", endpoint, "PULL") == 1
        assert sample("shmsock_corrupt_messages_total", endpoint, "PULL") == 0


async def test_scraping_from_another_thread_while_connections_come_and_go():
    endpoint = "shm://metrics-threads"
    key = (endpoint, "PULL")
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()

    def scrape() -> None:
        try:
            while not stop.is_set():
                REGISTRY.get_sample_value("shmsock_peers", {})  # a full collect
                st = _stats.snapshot().get(key)
                seen.append(st.messages_received if st else 0)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind(endpoint)
            for _ in range(20):
                async with shmsock.socket(shmsock.PUSH, linger=None) as push:
                    push.connect(endpoint)
                    await push.send(b"m")
                    await pull.recv()
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen == sorted(seen)  # never backwards
    assert _stats.snapshot()[key].messages_received == 20


# -- registration -------------------------------------------------------------------


async def test_a_registry_of_ones_own():
    endpoint = "shm://metrics-custom"
    mine = CollectorRegistry()
    shmsock.metrics.register(mine)
    shmsock.metrics.register(mine)  # idempotent
    shmsock.metrics.unregister()
    try:
        async with shmsock.socket(shmsock.PULL) as pull, shmsock.socket(shmsock.PUSH) as push:
            pull.bind(endpoint)
            push.connect(endpoint)
            await push.send(b"hello")
            await pull.recv()
            assert sample("shmsock_messages_received_total", endpoint, "PULL", mine) == 1
            assert sample("shmsock_bytes_sent_total", endpoint, "PUSH", mine) == 5
            # Not in the default registry any more.
            assert REGISTRY.get_sample_value("shmsock_peers", {"endpoint": endpoint}) is None
            assert "shmsock_peers" not in {m.name for m in REGISTRY.collect()}
    finally:
        shmsock.metrics.register()
        shmsock.metrics.unregister(mine)
        shmsock.metrics.unregister(mine)  # idempotent too
    assert "shmsock_peers" not in {m.name for m in mine.collect()}


@pytest.mark.parametrize(("value", "registered"), [("0", False), ("off", False), ("1", True)])
def test_environment_variable_decides_the_default_registration(value, registered):
    code = (
        "import shmsock\n"
        "from prometheus_client import REGISTRY\n"
        "print('shmsock_peers' in {m.name for m in REGISTRY.collect()})\n"
    )
    env = {**os.environ, "SHMSOCK_METRICS": value}
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == f"{registered}\n"


def test_endpoint_stats_start_at_zero_and_add_every_counter():
    from shmsock._stats import COUNTERS, EndpointStats

    st = EndpointStats()
    assert all(getattr(st, name) == 0 for name in EndpointStats.__slots__)
    other = EndpointStats()
    for i, name in enumerate(EndpointStats.__slots__, start=1):
        setattr(other, name, i)
    st.add_counters(other)
    assert {name: getattr(st, name) for name in COUNTERS} == {
        name: getattr(other, name) for name in COUNTERS
    }
    assert (st.peers, st.used_in, st.used_out) == (0, 0, 0)  # gauges are not counters
    st.add(other)
    assert (st.peers, st.used_in, st.used_out) == (other.peers, other.used_in, other.used_out)
