"""One socket on several transports at once; pyzmq only where tcp:// is used.

A PULL bound on ``shm://`` (or ``inproc://``) and ``tcp://`` at once takes
from a shmsock peer and from a pyzmq peer in other processes, each in order;
a PUSH connected both ways deals its messages to them in turn.  And:
``shm://`` and ``inproc://`` never import pyzmq, and without pyzmq
``tcp://`` says what to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import trio
from helpers import peers
from helpers.procs import forked, spawn
from zmq_helpers import LOOPBACK, peer, zsocket

from shmsock import PULL, PUSH, IncompatiblePeer

pytestmark = pytest.mark.timeout(60)


async def test_a_pull_on_inproc_and_tcp_takes_from_both_in_turn():
    name = f"inproc://mixed-{os.getpid()}"
    async with zsocket(PULL) as pull, zsocket(PUSH) as local:
        pull.bind(name)
        endpoint = pull.bind(LOOPBACK)
        local.connect(name)
        remote_sent = [[b"remote %d" % i] for i in range(200)]
        async with peer("source", endpoint, False, "PUSH", remote_sent, None, True) as theirs:
            await pull.wait_peers(2)
            theirs.send("go")
            await theirs.expect("sent")
            for i in range(200):
                await local.send(b"local %d" % i)
            got = [await pull.recv() for _ in range(400)]
            theirs.send("exit")
    assert [m for m in got if m.startswith(b"local")] == [b"local %d" % i for i in range(200)]
    assert [[m] for m in got if m.startswith(b"remote")] == remote_sent


async def test_a_pull_on_shm_and_tcp_takes_from_a_shm_peer_and_a_pyzmq_peer():
    # Three processes: ours binds shm:// and tcp:// on one PULL; a shmsock
    # PUSH connects over shared memory, a plain pyzmq PUSH over tcp://.
    name = f"shm://both-{os.getpid()}"
    remote_sent = [[b"remote:%d" % i] for i in range(300)]
    async with zsocket(PULL) as pull:
        pull.bind(name)
        endpoint = pull.bind(LOOPBACK)
        with spawn(peers.push_numbers, name, False, 0, 300, "local", ctx=forked()) as local:
            async with peer("source", endpoint, False, "PUSH", remote_sent) as remote:
                await local.expect("ready")
                with trio.fail_after(20):
                    got = [await pull.recv() for _ in range(600)]
                await remote.expect("sent")
                remote.send("exit")
            await local.expect("sent")
            local.send("exit")
    assert [m for m in got if m.startswith(b"local")] == [b"local:%d" % i for i in range(300)]
    assert [[m] for m in got if m.startswith(b"remote")] == remote_sent


async def test_a_push_on_inproc_and_tcp_deals_to_both():
    name = f"inproc://deal-{os.getpid()}"
    async with zsocket(PUSH) as push, zsocket(PULL) as local:
        local.bind(name)
        push.connect(name)
        async with peer("sink", LOOPBACK, True, "PULL", 50) as theirs:
            push.connect(theirs.endpoint)
            await push.wait_peers(2)
            for i in range(100):
                await push.send(b"%d" % i)
            remote = [frames[0] for frames in await theirs.expect("got")]
            theirs.send("exit")
        local_got = [local.recv_nowait() for _ in range(50)]
    # Round-robin spans the transports: with both pipes taking messages,
    # they alternate, whichever came first.
    numbers = sorted(int(m) for m in remote)
    assert numbers in ([*range(0, 100, 2)], [*range(1, 100, 2)])
    assert sorted(remote + local_got, key=int) == [b"%d" % i for i in range(100)]


async def test_a_connect_to_a_binder_of_an_incompatible_type_says_so():
    async with peer("idle", LOOPBACK, True, "PUSH") as theirs, zsocket(PUSH) as push:
        push.connect(theirs.endpoint)
        with trio.fail_after(10), pytest.raises(IncompatiblePeer, match="cannot talk to a PUSH"):
            await push.send(b"to another pusher")
        theirs.send("go")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-c", textwrap.dedent(code)],  # -P: not ./shmsock
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_shm_and_inproc_never_import_pyzmq():
    done = run_python(
        """
        import sys, trio, shmsock
        from shmsock._transport import load

        async def main():
            async with shmsock.socket(shmsock.PULL) as pull, shmsock.socket(shmsock.PUSH) as push:
                pull.bind("shm://no-zmq-here")
                push.connect("shm://no-zmq-here")
                await push.send(b"x")
                assert await pull.recv() == b"x"
            load("inproc")
            shmsock.socket(shmsock.PUSH, sndhwm=10, heartbeat_ivl=0.5)  # options need no pyzmq

        trio.run(main)
        assert "zmq" not in sys.modules, sorted(m for m in sys.modules if "zmq" in m)
        print("clean")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_without_pyzmq_tcp_names_the_extra_to_install():
    done = run_python(
        """
        import sys
        sys.modules["zmq"] = None  # as if pyzmq were not installed
        import shmsock
        from shmsock._transport import load
        for what in (lambda: load("tcp"), lambda: load("ipc"), shmsock.curve_keypair):
            try:
                what()
            except ImportError as exc:
                print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    assert all("pip install 'shmsock[zmq]'" in line for line in lines)
