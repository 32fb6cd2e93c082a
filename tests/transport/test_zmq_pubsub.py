"""PUB and SUB over tcp://: between shmsock sockets, and with pyzmq's (libzmq filters).

Over tcp:// a subscription reaches libzmq's PUB some time after the
connection is made (libzmq's slow joiner, which shmsock closes only on
shm:// and inproc://), so each test publishes until a first message
arrives before it checks anything.
"""

from __future__ import annotations

import trio
import trio.lowlevel
import zmq
from helpers.flowing import until_flowing
from zmq_helpers import attached, peer

import shmsock
from shmsock import PUB, SUB

LOOPBACK = "tcp://127.0.0.1:0"


async def test_shmsock_pub_and_sub_filter_over_tcp():
    async with shmsock.socket(PUB) as pub, shmsock.socket(SUB) as sub:
        endpoint = pub.bind(LOOPBACK)
        sub.subscribe(b"a")
        sub.connect(endpoint)
        await until_flowing(pub.send, sub.recv, b"a-probe")
        for i in range(100):
            await pub.send(b"b%d" % i)
            await pub.send_multipart([b"a%d" % i, b"body"])
        got = [await sub.recv_multipart() for _ in range(100)]
        assert got[-1] == [b"a99", b"body"]
        assert all(m[0].startswith(b"a") for m in got)


async def test_shmsock_pub_to_a_pyzmq_sub():
    ctx = zmq.Context.instance()
    zsub = ctx.socket(zmq.SUB)
    try:
        async with shmsock.socket(PUB) as pub:
            endpoint = pub.bind(LOOPBACK)
            zsub.setsockopt(zmq.SUBSCRIBE, b"x")
            zsub.connect(endpoint)

            async def zrecv() -> bytes:
                while True:
                    try:
                        return zsub.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        await trio.sleep(0.001)  # pyzmq's socket: polled

            await until_flowing(pub.send, zrecv, b"x-probe")
            await pub.send(b"y-not")
            await pub.send(b"x-yes")
            assert await zrecv() == b"x-yes"
    finally:
        zsub.close(0)


async def test_a_pyzmq_pub_to_a_shmsock_sub_that_subscribes_and_unsubscribes():
    ctx = zmq.Context.instance()
    zpub = ctx.socket(zmq.PUB)
    try:
        port = zpub.bind_to_random_port("tcp://127.0.0.1")
        async with shmsock.socket(SUB) as sub:
            sub.connect(f"tcp://127.0.0.1:{port}")
            sub.subscribe("q")  # after connecting: libzmq's SUB passes it on

            async def zsend(msg: bytes) -> None:
                zpub.send(b"z-not")
                zpub.send(msg)
                await trio.lowlevel.checkpoint()

            await until_flowing(zsend, sub.recv, b"q-probe")
            zpub.send(b"q-yes")
            assert await sub.recv() == b"q-yes"
    finally:
        zpub.close(0)


# -- against pyzmq in other processes ---------------------------------------------------


async def test_our_sub_gets_what_a_pyzmq_pub_process_publishes_after_the_first_message():
    """libzmq's slow joiner: what the publisher sent before our subscription
    reached it is lost; from the first message that came through on, nothing."""
    async with shmsock.socket(SUB) as sub:
        sub.subscribe(b"k")  # before connecting: libzmq's SUB sends it on connect
        async with attached(
            sub, False, "probing_publisher", "PUB", [b"k", b"x"], 500, {"SNDHWM": 0}
        ) as theirs:
            with trio.fail_after(20):
                assert await sub.recv_multipart() == [b"k", b"probe"]
            theirs.send("go")
            got = []
            with trio.fail_after(20):
                while (frames := await sub.recv_multipart()) != [b"k", b"END"]:
                    if frames != [b"k", b"probe"]:
                        got.append(frames)
            assert got == [[b"k", b"%d" % i] for i in range(500)]
            await theirs.expect("sent")


async def test_a_nodrop_pub_waits_for_a_slow_pyzmq_sub_process_and_loses_nothing():
    """nodrop over tcp:// is libzmq's XPUB_NODROP: with small queues at both
    ends, send waits for the subscriber instead of dropping."""
    payload = bytes(1000)
    async with shmsock.socket(PUB, nodrop=True, sndhwm=10) as pub:
        endpoint = pub.bind(LOOPBACK)
        async with peer(
            "collecting_subscriber", endpoint, False, "SUB", [b""], 1, {"RCVHWM": 10}
        ) as theirs:
            with trio.fail_after(20):
                while not theirs.child.conn.poll():
                    await pub.send(b"probe")
                    await trio.sleep(0.005)
            await theirs.expect("flowing")
            for i in range(3000):
                await pub.send_multipart([b"%d" % i, payload])
            await pub.send(b"END")
            got = await theirs.expect("got", timeout=60)
            assert [frames[0] for frames in got] == [b"%d" % i for i in range(3000)]
            assert pub.stats()[endpoint].dropped == 0
