"""Crashes, stale and squatted files, half-built segments, other versions, leaks.

These are the process-level cases of the reliability promise (see
docs/reliability.md): a peer SIGKILLed at an awkward moment, files left by
the dead, files planted by someone else, a peer of another protocol
version, a full filesystem, and thousands of open/close cycles.  The
ring-level cases (forged and fuzzed ring states, a writer killed at every
store, sanitizers) live in the ring tests and their tox environments.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile

import pytest
import trio
import trio.testing
from helpers import crashpeers, peers, seam
from helpers.conformance import fd_count, wait_peers
from helpers.procs import forked, spawn

import shmsock
from shmsock import PAIR, PULL, PUSH
from shmsock import _ring as R
from shmsock._transport.shm import _segment, _wire
from shmsock._transport.shm._fs import UserDir

KiB = 1024


def _names(userdir) -> set[str]:
    """The files under the user directory, less a binder's spare ring."""
    return {n for n in os.listdir(userdir) if "@spare." not in n}


def _sentinels(count: int = 16) -> list[int]:
    """Descriptors that take the lowest free numbers, freed ones included.

    Code that closed a descriptor twice would close one of these.
    """
    fds = []
    for _ in range(count // 2):
        fds.extend(os.pipe())
    return fds


def _check_sentinels(fds: list[int]) -> None:
    for fd in fds:
        os.fstat(fd)  # raises EBADF if someone closed it under us
    for fd in fds:
        os.close(fd)


def _mentions(marks: list[str]) -> list[str]:
    """Descriptors and mappings of this process whose file name has a mark.

    A mark like ``"/x@0.c (deleted)"`` picks a removed file apart from a
    new one of the same name.
    """
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if any(m in target for m in marks):
            found.append(target)
    with open("/proc/self/maps") as f:
        found.extend(line for line in f if any(m in line for m in marks))
    return found


# -- case 2: a reader SIGKILLed while a writer is blocked on its full ring ----


async def test_killed_reader_releases_blocked_push_senders_to_other_peers(userdir):
    """PUSH: blocked sends move on to live peers; the dead one is cleaned up once.

    The slot of the dead reader is taken over by a new connector before the
    binder has even noticed the death: the binder's late cleanup of that
    connection must leave the newcomer's files alone.
    """
    with spawn(peers.pull_idle, "shm://k2", False) as child:
        async with (
            shmsock.socket(PUSH, ring_size=4 * KiB, linger=0) as push,
            shmsock.socket(PULL) as other,
            shmsock.socket(PULL) as heir,
        ):
            push.bind("shm://k2")
            await child.expect("ready")
            await wait_peers(push, 1)
            dead = seam.connections(push)[0]
            assert dead.slot == 0
            # The heir re-creates the ring file's name: only the old one counts.
            dead_marks = [f"/{dead.tx_seg.name}", f"/{dead.rx_seg.name} (deleted)"]
            n = 0
            while True:  # fill the child's ring
                try:
                    push.send_nowait(b"to-child-%d" % n)
                    n += 1
                except trio.WouldBlock:
                    break
            other.connect("shm://k2")  # slot 1
            await wait_peers(push, 2)
            queued = []
            while True:  # and the other reader's
                try:
                    push.send_nowait(b"to-other-%d" % len(queued))
                    queued.append(b"to-other-%d" % len(queued))
                except trio.WouldBlock:
                    break

            async def blocked_send(msg: bytes) -> None:
                await push.send(msg)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_send, b"blocked-1")
                nursery.start_soon(blocked_send, b"blocked-2")
                await trio.testing.wait_all_tasks_blocked()
                child.kill()
                # No checkpoint since the kill: the binder has not seen it yet.
                heir.connect("shm://k2")
                assert seam.slots(heir)[0].index == 0  # the dead one's slot
            got = {await heir.recv(), await heir.recv()}
            assert got == {b"blocked-1", b"blocked-2"}
            assert [await other.recv() for _ in queued] == queued
            # The dead connection is retired: no peer, no file, no descriptor
            # and no mapping of it is left; the heir's slot files are intact.
            assert child.pid not in [p.pid for p in seam.connections(push)]
            assert push.peer_count == 2
            sentinels = _sentinels()
            names = _names(userdir)
            assert {"k2@0.lock", "k2@0.c", "k2@1.lock", "k2@1.c"} <= names
            assert dead.tx_seg.name not in names
            assert len([n for n in names if ".b." in n]) == 2
            assert _mentions(dead_marks) == []
            # Traffic, a departure and an arrival later, nobody closed a
            # descriptor that was not theirs.  (The other reader's room, freed
            # above, is news the poller handles when the test task waits: a
            # stream of sends that never waits yields only every
            # schedule_every_us, and would give all twenty to the heir.)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(20):
                await push.send(b"after-%d" % i)
            got_after = [await heir.recv() for _ in range(10)]
            got_after += [await other.recv() for _ in range(10)]
            assert sorted(got_after) == sorted(b"after-%d" % i for i in range(20))
            _check_sentinels(sentinels)


async def test_killed_pair_peer_breaks_blocked_senders_and_is_cleaned_up_once(userdir):
    with spawn(peers.pair_send_then_wait, "shm://k2p", False, []) as child:
        async with shmsock.socket(PAIR, ring_size=4 * KiB, linger=0) as pair:
            pair.bind("shm://k2p")
            await child.expect("ready")
            await child.expect("sent")
            await wait_peers(pair, 1)
            dead = seam.connections(pair)[0]
            dead_marks = [f"/{dead.tx_seg.name}", f"/{dead.rx_seg.name}"]
            while True:
                try:
                    pair.send_nowait(b"x" * 100)
                except trio.WouldBlock:
                    break
            broken = []

            async def blocked_send(msg: bytes) -> None:
                try:
                    await pair.send(msg)
                except trio.BrokenResourceError:
                    broken.append(msg)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_send, b"one")
                nursery.start_soon(blocked_send, b"two")
                await trio.testing.wait_all_tasks_blocked()
                child.kill()
            assert sorted(broken) == [b"one", b"two"]
            with pytest.raises(trio.BrokenResourceError):
                pair.send_nowait(b"three")
            with pytest.raises(trio.BrokenResourceError):
                await pair.recv()  # it sent nothing; now it is retired
            assert _names(userdir) == {"k2p@lock", "k2p@sock"}
            assert _mentions(dead_marks) == []
            sentinels = _sentinels()
            # A new peer takes the slot and the binder works again.
            async with shmsock.socket(PAIR) as newcomer:
                newcomer.connect("shm://k2p")
                await newcomer.send(b"hello")
                assert await pair.recv() == b"hello"
                await pair.send(b"welcome")
                assert await newcomer.recv() == b"welcome"
            _check_sentinels(sentinels)


# -- case 3: stale endpoints, and processes racing to clean them ---------------


async def _leave_a_stale_endpoint(endpoint: str, connectors: int, sig: int) -> None:
    """A binder and some connectors, all killed by *sig*: only their files remain.

    SIGTERM's default action ends a process as abruptly as SIGKILL does (no
    Python code runs, nothing is closed), so both leave the same files.
    """
    binder = spawn(peers.pull_idle, endpoint, True, ctx=forked())
    pushes = []
    try:
        await binder.expect("ready")
        pushes = [
            spawn(peers.push_numbers, endpoint, False, 0, 0, ctx=forked())
            for _ in range(connectors)
        ]
        for c in pushes:
            await c.expect("ready")
            await c.expect("sent")
        for c in [binder, *pushes]:
            os.kill(c.pid, sig)
        for c in [binder, *pushes]:
            assert await c.join() == -sig
    finally:
        for c in [binder, *pushes]:
            c.close()


_DEATHS = pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"]
)


async def test_connect_takes_a_slot_whose_ring_file_lost_its_lock(userdir):
    """A ring file left without its lock (say, the lock removed by hand) is
    replaced, not an obstacle: connect no longer scans the directory for
    leftovers, so it must not trip over this one."""
    userdir.mkdir(mode=0o700, exist_ok=True)
    (userdir / "nolock@0.c").write_bytes(b"stale")
    os.chmod(userdir / "nolock@0.c", 0o600)
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://nolock")
        push.connect("shm://nolock")
        await push.send(b"through slot 0")
        with trio.fail_after(10):
            assert await pull.recv() == b"through slot 0"
        assert (userdir / "nolock@0.lock").exists()
        assert (userdir / "nolock@0.c").stat().st_size > len(b"stale")


@_DEATHS
async def test_racing_binders_on_a_stale_endpoint_one_wins_and_cleans(sig, userdir):
    await _leave_a_stale_endpoint("shm://stale3", 3, sig)
    left = _names(userdir)
    assert {"stale3@lock", "stale3@sock", "stale3@0.c", "stale3@2.lock"} <= left
    children = [spawn(peers.bind_race, "shm://stale3", ctx=forked()) for _ in range(6)]
    try:
        for c in children:
            await c.expect("ready")
        for c in children:
            c.send("go")
        outcomes = sorted([await c.recv() for c in children])
        assert outcomes == ["bound"] + ["in use"] * 5
        # The winner removed every slot of the dead; nothing else is left.
        assert _names(userdir) == {"stale3@lock", "stale3@sock"}
        for c in children:
            c.send("exit")
        for c in children:
            assert await c.join() == 0
    finally:
        for c in children:
            c.close()


@_DEATHS
async def test_racing_connectors_reclaim_stale_slots_exactly_once(sig, userdir):
    await _leave_a_stale_endpoint("shm://stale4", 4, sig)
    children = [
        spawn(crashpeers.connect_race, "shm://stale4", f"c{i}", ctx=forked()) for i in range(6)
    ]
    try:
        for c in children:
            await c.expect("ready")
        for c in children:
            c.send("go")
        slots = [await c.recv() for c in children]
        assert sorted(slots) == list(range(6))  # distinct, stale ones reused
        async with shmsock.socket(PULL) as pull:
            pull.bind("shm://stale4")
            got = {await pull.recv() for _ in children}
            assert got == {f"c{i}".encode() for i in range(6)}
            slots = {n.split("@")[1].split(".")[0] for n in _names(userdir)}
            assert slots == {"lock", "sock"} | {str(k) for k in range(6)}
            for c in children:
                c.send("exit")
            for c in children:
                assert await c.join() == 0
    finally:
        for c in children:
            c.close()


# -- case 4: squatted segment files --------------------------------------------


def _squat(path, kind: str, victim) -> None:
    """Put something that is not ours to use at *path*."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "symlink":
        path.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "wider-mode":
        path.write_bytes(bytes(64))
        os.chmod(path, 0o644)
    elif kind == "directory":
        path.mkdir(mode=0o700)
    else:  # another owner (root only: see the parametrization)
        path.write_bytes(bytes(64))
        os.chmod(path, 0o600)
        os.chown(path, 12345, 12345)


SQUATTERS = ["symlink", "fifo", "wider-mode", "directory"] + (
    ["other-owner"] if os.geteuid() == 0 else []
)


@pytest.mark.parametrize("kind", SQUATTERS)
async def test_squatted_connector_ring_is_refused_never_followed(kind, userdir, tmp_path, caplog):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    async with shmsock.socket(PUSH) as push:
        push.connect("shm://sqc")  # no binder yet: the ring waits in slot 0
        _squat(userdir / "sqc@0.c", kind, victim)
        async with shmsock.socket(PULL) as pull:
            pull.bind("shm://sqc")
            with trio.fail_after(10), pytest.raises(ConnectionRefusedError, match="failed its"):
                while True:  # the refusal arrives in the background
                    await push.send(b"never")
            assert pull.peer_count == 0
        assert "cannot use the ring of slot 0" in caplog.text
    assert victim.read_bytes() == b"precious"
    path = userdir / "sqc@0.c"
    if path.is_dir() and not path.is_symlink():
        path.rmdir()


@pytest.mark.parametrize("kind", SQUATTERS)
async def test_squatted_binder_ring_is_refused_never_followed(kind, userdir, tmp_path, monkeypatch):
    """Someone swaps the binder's ring between its publication and our open."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    real_open = _segment.open_existing
    swapped = []

    def swap_then_open(d, name, role):
        if role == _segment.ROLE_BINDER and not swapped:
            swapped.append(name)
            _squat(userdir / name, kind, victim)
        return real_open(d, name, role)

    monkeypatch.setattr(_segment, "open_existing", swap_then_open)
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        push.bind("shm://sqb")
        pull.connect("shm://sqb")
        with trio.fail_after(10), pytest.raises(shmsock.UnsafeFile, match=r"sqb@0\.b\."):
            await pull.recv()
        assert len(swapped) == 1
    assert victim.read_bytes() == b"precious"
    for name in os.listdir(userdir):
        path = userdir / name
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()


async def test_binder_ring_name_taken_by_a_squatter_is_skipped(userdir, tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    squatter = userdir / "sqt@0.b.00000000"
    # The ring is made at accept (no spare ring made ahead): the path covered.
    seam.no_spare_rings(monkeypatch)
    async with shmsock.socket(PUSH) as push, shmsock.socket(PULL) as pull:
        push.bind("shm://sqt")
        tokens = iter([bytes(4)])
        real = os.urandom
        monkeypatch.setattr(os, "urandom", lambda n: next(tokens, None) or real(n))
        pull.connect("shm://sqt")  # HELLO sent; the binder answers it later
        squatter.symlink_to(victim)  # where the binder's first token points
        await push.send(b"through another name")
        assert await pull.recv() == b"through another name"
        assert squatter.is_symlink()
        assert next(tokens, None) is None  # the squatted token was drawn
    # Whoever cleaned up removed the name, not what it pointed to.
    assert victim.read_bytes() == b"precious"
    if squatter.is_symlink():
        squatter.unlink()


# -- case 6: half-initialised segments -----------------------------------------


@pytest.mark.parametrize("point", crashpeers.CREATE_POINTS)
async def test_connector_killed_while_creating_its_ring(point, userdir):
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://half")
        with spawn(crashpeers.die_creating_segment, "shm://half", False, point) as child:
            await child.expect("ready")
            await child.expect(point)
            st = os.stat(userdir / "half@0.c")
            assert stat.S_IMODE(st.st_mode) == 0o200  # unfinished
            child.kill()
        # The next connector takes the slot over and is the only one heard.
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://half")
            assert seam.slots(push)[0].index == 0
            await push.send(b"fresh")
            assert await pull.recv() == b"fresh"
            assert pull.peer_count == 1
            assert stat.S_IMODE(os.stat(userdir / "half@0.c").st_mode) == 0o600


@pytest.mark.parametrize("point", crashpeers.CREATE_POINTS)
async def test_binder_killed_while_creating_a_ring_for_us(point, userdir):
    with spawn(crashpeers.die_creating_segment, "shm://halfb", True, point) as child:
        async with shmsock.socket(PUSH) as push:
            await child.expect("ready")
            push.connect("shm://halfb")
            await child.expect(point)
            (unfinished,) = [n for n in os.listdir(userdir) if ".b." in n]
            assert stat.S_IMODE(os.stat(userdir / unfinished).st_mode) == 0o200
            child.kill()
            # The connector notices the binder is gone and removes what it left.
            with trio.fail_after(10):
                while (userdir / unfinished).exists():  # noqa: ASYNC110
                    await trio.sleep(0.001)
            async with shmsock.socket(PULL) as pull:
                pull.bind("shm://halfb")  # takes the dead binder's endpoint
                await push.send(b"to the next binder")
                assert await pull.recv() == b"to the next binder"


async def test_a_connector_that_closes_before_noticing_its_binder_died_removes_its_ring(userdir):
    # The binder's ring to us is ours to remove once the binder is gone (a
    # 1 MiB file by default); closing without a checkpoint gives the socket
    # no chance to have seen the hang-up before.
    with spawn(peers.bind_and_hold, "shm://gonebinder", "PAIR") as binder:
        await binder.expect("ready")
        async with shmsock.socket(PAIR) as pair:
            pair.connect("shm://gonebinder")
            await wait_peers(pair, 1)
            assert any(n.startswith("gonebinder@0.b.") for n in os.listdir(userdir))
            binder.kill()
            pair.close()
    # What stays is what a dead binder leaves for the next one to take over.
    assert _names(userdir) == {"gonebinder@lock", "gonebinder@sock"}
    async with shmsock.socket(PAIR) as again:
        again.bind("shm://gonebinder")


async def test_a_connector_that_closes_removes_the_live_binders_ring_it_mapped(userdir):
    # Once the connector is done with the binder's ring nobody reads it, and
    # a binder that closes at the same moment, or dies before it notices,
    # would leave it behind: the connector removes it (see Engine.close).
    async with shmsock.socket(PAIR) as binder:
        binder.bind("shm://livebinder")
        async with shmsock.socket(PAIR) as pair:
            pair.connect("shm://livebinder")
            await wait_peers(binder, 1)
            ring = seam.connections(binder)[0].tx_seg.name
            assert ring in os.listdir(userdir)
            pair.close()
            assert ring not in os.listdir(userdir)
        with trio.fail_after(10):
            while binder.peer_count:  # noqa: ASYNC110 (until its poller has seen it go)
                await trio.sleep(0.01)
        assert ring not in os.listdir(userdir)  # and the binder, noticing, is content


@pytest.mark.parametrize("point", crashpeers.CREATE_POINTS)
async def test_binder_killed_while_making_its_spare_ring(point, userdir):
    with spawn(crashpeers.die_creating_spare, "shm://spare", point) as child:
        await child.expect(point)
        (unfinished,) = [n for n in os.listdir(userdir) if "@spare." in n]
        assert stat.S_IMODE(os.stat(userdir / unfinished).st_mode) == 0o200
        child.kill()
        await child.join()
        async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
            pull.bind("shm://spare")  # takes over, and removes the dead binder's spare
            assert not (userdir / unfinished).exists()
            push.connect("shm://spare")
            await push.send(b"through a fresh ring")
            assert await pull.recv() == b"through a fresh ring"


def _hello_from_nowhere(sockpath: str, slot: int) -> int:
    """Send a HELLO for *slot* as a PUSH would; return the refusal reason."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sockpath)
        s.sendall(_wire.Handshake(_wire.Kind.HELLO, PUSH, slot, os.getpid(), 4096).pack())
        data = b""
        while len(data) < _wire.SIZE:
            chunk = s.recv(_wire.SIZE - len(data))
            assert chunk, "closed without an answer"
            data += chunk
    answer = _wire.Handshake.unpack(data)
    assert answer.kind == _wire.Kind.REFUSE
    return answer.reason


async def test_a_stale_hello_never_attaches_the_next_connectors_ring_of_its_slot():
    # A connector sends its HELLO for slot 0 and goes before the binder reads
    # it; the next connector claims slot 0 and makes its ring there.  The
    # binder, reading the stale HELLO now, finds a ring at slot 0, but it is
    # not the ring of the connection that asked: attaching it would give that
    # ring two readers, each taking some of the next connector's messages.
    # It never attaches: the stale connection has hung up, so the WELCOME
    # that would attach it fails, and the binder lets go of the ring.
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://stale-hello")
        d = UserDir()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
                gone.connect(d.sockpath("stale-hello@sock"))
                hello = _wire.Handshake(_wire.Kind.HELLO, PUSH, 0, os.getpid(), 4096)
                gone.sendall(hello.pack())
        finally:
            d.close()
        # No checkpoint since: the binder has read neither HELLO yet.
        push.connect("shm://stale-hello")
        assert seam.slots(push)[0].index == 0
        await wait_peers(pull, 1)
        for n in range(200):
            await push.send(b"%d" % n)
        with trio.fail_after(10):
            got = [await pull.recv() for _ in range(200)]
        assert got == [b"%d" % n for n in range(200)]
        with pytest.raises(trio.WouldBlock):
            pull.recv_nowait()
        assert len(seam.connections(pull)) == 1


@pytest.mark.parametrize("shape", ["unfinished", "empty", "short", "shorter-than-declared"])
async def test_binder_refuses_and_removes_a_dead_connectors_broken_ring(shape, userdir, caplog):
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://forged")
        path = userdir / "forged@0.c"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            if shape == "unfinished":
                os.posix_fallocate(fd, 0, _segment.segment_size(4096))
                os.fchmod(fd, 0o200)
            elif shape == "short":
                os.write(fd, _segment.MAGIC)
            elif shape == "shorter-than-declared":
                # A genuine header declaring 64 KiB, on a file of 4 KiB.
                os.write(fd, _segment._HDR.pack(_segment.MAGIC, 1, 64, 65536, 1, 8, 1))
                os.ftruncate(fd, _segment.segment_size(4096))
        finally:
            os.close(fd)
        dirfd = os.open(userdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            reason = await trio.to_thread.run_sync(
                _hello_from_nowhere, f"/proc/self/fd/{dirfd}/forged@sock", 0
            )
        finally:
            os.close(dirfd)
        assert reason == _wire.Refusal.BAD_SEGMENT
        expected = {
            "unfinished": "unfinished",
            "empty": "truncated",
            "short": "truncated",
            "shorter-than-declared": "size its header declares",
        }[shape]
        assert expected in caplog.text
        # Nobody holds slot 0, so the binder removed the broken ring.
        assert _names(userdir) == {"forged@lock", "forged@sock"}
        assert pull.peer_count == 0
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://forged")
            await push.send(b"real")
            assert await pull.recv() == b"real"


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_binding_and_connecting_then_closing_at_once_logs_no_warning(caplog):
    """The shortest program: bind and connect in one process, then leave.

    The connector sends its HELLO and removes its ring as it closes, before
    the binder has read the HELLO: that is a connector gone, not a bad ring.
    """
    caplog.set_level(logging.DEBUG, logger="shmsock")
    for _ in range(3):
        async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
            pull.bind("shm://short")
            push.connect("shm://short")
    assert _warnings(caplog) == []


async def test_a_connector_gone_before_its_hello_is_read_is_handled_quietly(userdir, caplog):
    caplog.set_level(logging.DEBUG, logger="shmsock")
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://gone-hello")
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://gone-hello")
            push.close()  # no checkpoint since the HELLO: the binder has not read it
        await trio.testing.wait_all_tasks_blocked()  # now it has
        assert "slot 0 hung up before its HELLO was read" in caplog.text
        assert _warnings(caplog) == []
        assert pull.peer_count == 0
        assert _names(userdir) == {"gone-hello@lock", "gone-hello@sock"}
        async with shmsock.socket(PUSH) as push:  # the endpoint serves the next one
            push.connect("shm://gone-hello")
            await push.send(b"next")
            assert await pull.recv() == b"next"


async def test_a_live_connector_whose_ring_is_missing_is_still_refused_and_logged(caplog):
    async with shmsock.socket(PULL) as pull:
        pull.bind("shm://no-ring")
        d = UserDir()
        try:
            sockpath = f"/proc/self/fd/{d.fd}/no-ring@sock"
            reason = await trio.to_thread.run_sync(_hello_from_nowhere, sockpath, 3)
        finally:
            d.close()
        assert reason == _wire.Refusal.BAD_SEGMENT
        assert any("cannot use the ring of slot 3" in w for w in _warnings(caplog))
        assert pull.peer_count == 0


@pytest.mark.parametrize(
    ("shape", "error", "words"),
    [
        ("mode-0200", shmsock.SegmentError, "unfinished"),
        ("empty", shmsock.SegmentError, "truncated"),
        ("header-only", shmsock.SegmentError, "size its header declares"),
        ("bad-magic", shmsock.SegmentError, "not a shmsock segment"),
        ("bad-ring-magic", shmsock.SegmentError, "does not hold a shmsock ring"),
        ("segment-version", shmsock.VersionMismatch, "version 7, this shmsock speaks version 1"),
        (
            "ring-version",
            shmsock.VersionMismatch,
            f"ring in .* version {R.RING_VERSION + 1}, this shmsock speaks"
            f" version {R.RING_VERSION}",
        ),
    ],
)
def test_opening_a_bad_segment_raises_before_reading_it(shape, error, words, shm_root):
    d = UserDir()
    try:
        sg = _segment.create(d, "x@0.c", 4096, PUSH, _segment.ROLE_CONNECTOR)
        sg.close()
        path = os.path.join(d.path, "x@0.c")
        with open(path, "r+b") as f:
            if shape == "mode-0200":
                os.chmod(path, 0o200)
            elif shape == "empty":
                f.truncate(0)
            elif shape == "header-only":
                f.truncate(_segment.HEADER)
            elif shape == "bad-magic":
                f.write(b"NOTMINE!")
            elif shape == "bad-ring-magic":
                f.seek(_segment.HEADER)
                f.write(b"NOTARING")
            elif shape == "segment-version":
                f.seek(8)
                f.write((7).to_bytes(4, "little"))
            else:
                f.seek(_segment.HEADER + 8)
                f.write((R.RING_VERSION + 1).to_bytes(4, "little"))
        with pytest.raises(error, match=words):
            _segment.open_existing(d, "x@0.c", _segment.ROLE_CONNECTOR)
        d.unlink("x@0.c")
    finally:
        d.close()


# -- case 7: another protocol version, across processes ------------------------


@pytest.mark.parametrize("what", ["handshake", "segment", "ring"])
async def test_connector_of_another_version_is_refused_naming_both(what, caplog):
    theirs = crashpeers.future_version(what)
    ours = theirs - 1
    with spawn(crashpeers.other_version, "shm://ver", False, what) as child:
        await child.expect("ready")  # connected, no binder yet
        async with shmsock.socket(PULL) as pull:
            pull.bind("shm://ver")
            kind, message = await child.recv()
            assert kind == "VersionMismatch"
            assert (
                f"shm://ver has protocol version {ours}, this shmsock speaks version {theirs}"
                in message
            )
            assert f"version {theirs}, this shmsock speaks version {ours}" in caplog.text
            assert pull.peer_count == 0
            await child.finish()
            # The binder is unharmed: a peer of its own version attaches.
            async with shmsock.socket(PUSH) as push:
                push.connect("shm://ver")
                await push.send(b"same version")
                assert await pull.recv() == b"same version"


@pytest.mark.parametrize("what", ["handshake", "segment", "ring"])
async def test_binder_of_another_version_is_refused_naming_both(what):
    theirs = crashpeers.future_version(what)
    ours = theirs - 1
    with spawn(crashpeers.other_version, "shm://ver2", True, what) as child:
        await child.expect("ready")
        async with shmsock.socket(PUSH) as push:
            push.connect("shm://ver2")
            with trio.fail_after(10), pytest.raises(shmsock.VersionMismatch) as info:
                await push.send(b"hello")
            assert f"version {theirs}, this shmsock speaks version {ours}" in str(info.value)
            assert (info.value.found, info.value.expected) == (theirs, ours)
            if what == "ring":
                assert "the ring in" in str(info.value)
            else:
                assert "the socket bound at shm://ver2" in str(info.value)
            await child.finish()
            # A binder of our version takes the endpoint over: the refused
            # connector attaches to it by itself.
            async with shmsock.socket(PULL) as pull:
                pull.bind("shm://ver2")
                with trio.fail_after(10):
                    await push.send(b"hello again")
                assert await pull.recv() == b"hello again"


# -- case 9: full shared memory ---------------------------------------------------

FULLSHM = os.path.join(os.path.dirname(__file__), os.pardir, "helpers", "fullshm.py")
LIMIT = 512 * KiB  # room for small rings, not for a 1 MiB one
_MOUNT = 'mount -t tmpfs -o size="$1",mode=0755 shmsock-full "$2" && shift 2 && exec "$@"'


def _tmpfs_prefix() -> list[str] | None:
    """A command prefix that runs the rest of a command over a small tmpfs.

    ``prefix + [str(LIMIT), root, *command]`` mounts a tmpfs of LIMIT bytes
    on *root* in a private mount namespace (as root, or as a user where user
    namespaces are allowed) and runs *command* there.  None where neither
    works: a file size limit then stands in for the full filesystem.
    """
    if shutil.which("unshare") is None:
        return None
    for flags in (["-m"], ["-r", "-m"]):
        prefix = ["unshare", *flags, "--propagation", "private", "sh", "-c", _MOUNT, "sh"]
        with tempfile.TemporaryDirectory() as probe:
            try:
                done = subprocess.run(
                    [*prefix, str(LIMIT), probe, "true"], capture_output=True, timeout=30
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
        if done.returncode == 0:
            return prefix
    return None


_TMPFS = _tmpfs_prefix()


@pytest.mark.parametrize("how", ["rlimit"] + (["tmpfs"] if _TMPFS else []))
async def test_full_shared_memory_fails_at_connect_or_accept_never_sigbus(how, tmp_path):
    root = tmp_path / "small"
    root.mkdir()
    command = [sys.executable, FULLSHM, str(LIMIT)]
    if how == "tmpfs":
        assert _TMPFS is not None
        command = [*_TMPFS, str(LIMIT), str(root), *command]
    else:
        command.append("--rlimit")
    done = await trio.run_process(
        command,
        env={**os.environ, "SHMSOCK_ROOT": str(root)},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()  # -7 would be SIGBUS
    out = json.loads(done.stdout)
    kind, message = out["connect"]
    assert kind == "SharedMemoryFull"
    assert "no room for a 1048896-byte segment" in message
    assert out["left_by_connect"] == []
    kind, message = out["accept"]
    assert kind == "SharedMemoryFull"
    assert "shm://full2 has no shared memory left" in message
    assert b"no room for a 1048896-byte segment" in done.stderr  # the binder's log
    assert out["received"] == "fits"
    assert out["left_at_end"] == []


async def test_a_connectors_ring_is_wholly_allocated_once_connect_returns():
    # connect() allocates most of its ring while the binder answers the
    # HELLO; a write must never reach a page the filesystem has not given
    # (SIGBUS when it is full), so all of it is there by the time it returns.
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH, ring_size=1024 * KiB) as push:
        pull.bind("shm://allocated")
        push.connect("shm://allocated")
        d = UserDir()
        try:
            st = os.stat("allocated@0.c", dir_fd=d.fd)
        finally:
            d.close()
        assert st.st_size == _segment.segment_size(1024 * KiB)
        assert st.st_blocks * 512 >= st.st_size
        await push.send(b"x")
        assert await pull.recv() == b"x"


# -- case 10: no leaks -----------------------------------------------------------


def _footprint(root: str) -> tuple[int, int, list[str]]:
    """(descriptors, mappings of files under *root*, files under *root*)."""
    with open("/proc/self/maps") as f:
        maps = sum(1 for line in f if root in line)
    files = sorted(
        os.path.relpath(os.path.join(top, name), root)
        for top, dirs, names in os.walk(root)
        for name in names + dirs
    )
    return fd_count(), maps, files


@pytest.fixture
def fast_root(monkeypatch, shm_root):
    """A root on /dev/shm (shmsock's default) where there is one, else the test's.

    Creating and removing files there costs a fraction of what it does on
    a disk, which matters for a test that does it tens of thousands of times.
    """
    if not os.path.isdir("/dev/shm"):
        yield str(shm_root)
        return
    root = tempfile.mkdtemp(prefix="shmsock-test-", dir="/dev/shm")
    monkeypatch.setenv("SHMSOCK_ROOT", root)
    try:
        yield root
    finally:
        shutil.rmtree(root)


async def test_five_thousand_open_connect_send_close_cycles_leak_nothing(fast_root):
    root = fast_root

    async def cycle(i: int) -> None:
        # Alternate who binds.  The connector leaves first, except every
        # 50th time: a connector whose binder leaves first watches the
        # directory for the next one, and closing an inotify watch costs
        # the kernel milliseconds.
        async with (
            shmsock.socket(PUSH, ring_size=4 * KiB) as push,
            shmsock.socket(PULL, ring_size=4 * KiB) as pull,
        ):
            if i % 2:
                push.bind("shm://leak")
                pull.connect("shm://leak")
            else:
                pull.bind("shm://leak")
                push.connect("shm://leak")
            await push.send(b"%d" % i)
            assert await pull.recv() == b"%d" % i
            binder, connector = (push, pull) if i % 2 else (pull, push)
            await (binder if i % 50 < 2 else connector).aclose()

    await cycle(0)  # creates the per-user directory, warms up imports
    gc.collect()  # what earlier tests left for the collector is not ours
    before = _footprint(root)
    for i in range(5000):
        await cycle(i)
    gc.collect()
    assert _footprint(root) == before
