"""A socket inherited by a fork() child: unusable there, and harmless.

The child of ``os.fork()`` shares every descriptor, mapping and file of its
parent's sockets.  These tests fork the test process itself, while its
sockets are connected, and check that the child's every use raises
StateError, and that the child touches nothing of the parent's whatever
it does: no file removed or written, no lock released, no doorbell byte,
and the parent's connections, and new ones, go on working.

The child shares the parent's Trio epoll instance too, so the parent must
not run its own loop while the child lives: it waits for the child's
report in a plain blocking call, after every task of its own has settled.
The child reports through a pipe and ends with ``os._exit``, never
returning into pytest.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import os
import select
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import trio
import trio.testing
from helpers import peers, seam
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, REP, REQ, _stats

pytestmark = pytest.mark.filterwarnings(
    # Python 3.12+ warns about fork() in a process with threads (Trio's
    # thread cache, from earlier tests).  The child here runs no thread.
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

_never_resumed: list[Coroutine[Any, Any, Any]] = []


def _outcome(call: Callable[[], object]) -> list[str]:
    """How *call* ended: ["returned"], ["waited"] or [exception class, message].

    An async method is stepped once, by hand, and never resumed: the child
    must not run its copy of the parent's Trio loop.  Until it would wait,
    an async call runs exactly as under Trio.
    """
    try:
        result = call()
        if isinstance(result, Coroutine):
            try:
                result.send(None)
            except StopIteration:
                return ["returned"]
            _never_resumed.append(result)
            return ["waited"]
    except BaseException as exc:
        return [type(exc).__name__, str(exc)]
    return ["returned"]


def _fork_with_pipe() -> tuple[int, int]:
    """fork(); returns (pid, read end) in the parent, (0, write end) in the child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        return 0, w
    os.close(w)
    return pid, r


def _report_and_exit(w: int, report: object) -> None:
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(w, data) :]
    os._exit(0)


def _child_report(pid: int, r: int, timeout: float = 30) -> Any:
    """The child's report, once it has exited.

    A blocking wait on purpose: the parent's Trio loop must not poll the
    epoll instance it shares with the child while the child lives.
    """
    data = b""
    try:
        while True:
            if not select.select([r], [], [], timeout)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("the forked child did not report in time")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


def _is_fork_error(outcome: list[str]) -> bool:
    return (
        outcome[0] == "StateError"
        and "belongs to the parent process" in outcome[1]
        and "do not survive fork()" in outcome[1]
        and "create new sockets in the child" in outcome[1]
    )


def _uses(sock: shmsock.Socket) -> dict[str, Callable[[], object]]:
    """Every way of using a socket, each called once."""
    return {
        "send_nowait": lambda: sock.send_nowait(b"from the child"),
        "send_multipart_nowait": lambda: sock.send_multipart_nowait([b"a", b"b"]),
        "send_many_nowait": lambda: sock.send_many_nowait([b"m1", b"m2"]),
        "recv_nowait": sock.recv_nowait,
        "recv_multipart_nowait": sock.recv_multipart_nowait,
        "recv_many_nowait": sock.recv_many_nowait,
        "bind": lambda: sock.bind("shm://fork-child-bind"),
        "connect": lambda: sock.connect("shm://fork-child-connect"),
        "send": lambda: sock.send(b"from the child"),
        "send_multipart": lambda: sock.send_multipart([b"a", b"b"]),
        "send_many": lambda: sock.send_many([b"m1", b"m2"]),
        "recv": sock.recv,
        "recv_multipart": sock.recv_multipart,
        "recv_many": sock.recv_many,
        "wait_peers": lambda: sock.wait_peers(1),
        "async for": sock.__anext__,
    }


async def test_every_use_of_an_inherited_socket_in_the_child_raises(userdir):
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://fork-use")
        b.connect("shm://fork-use")
        await b.send(b"to a")
        assert await a.recv() == b"to a"
        await trio.testing.wait_all_tasks_blocked()
        pid, fd = _fork_with_pipe()
        if pid == 0:
            try:
                report = {
                    f"{name} ({role})": _outcome(use)
                    for role, sock in (("binder", a), ("connector", b))
                    for name, use in _uses(sock).items()
                }
            except BaseException as exc:
                report = {"the child": [type(exc).__name__, str(exc)]}
            _report_and_exit(fd, report)
        report = _child_report(pid, fd)
        assert {use: how for use, how in report.items() if not _is_fork_error(how)} == {}
        assert len(report) == 32
        # Nothing the child tried reached a ring: the parent's sockets hold
        # exactly what the parent sent, both ways.
        with pytest.raises(trio.WouldBlock):
            a.recv_nowait()
        with pytest.raises(trio.WouldBlock):
            b.recv_nowait()
        await a.send(b"to b")
        assert await b.recv() == b"to b"
        await b.send(b"to a again")
        assert await a.recv() == b"to a again"


def _shared_state(userdir, socks: list[shmsock.Socket]) -> dict[str, object]:
    """What a child could change of the parent's: the endpoint's files (by
    name, inode and a digest of the contents: ring headers, positions, waiter
    flags, data) and the bytes waiting unread on the parent's doorbells."""
    files = {}
    for name in sorted(os.listdir(userdir)):
        path = userdir / name
        st = os.stat(path, follow_symlinks=False)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        files[name] = (st.st_ino, digest)
    pending = []
    for sock in socks:
        for peer in seam.connections(sock):
            try:
                pending.append(peer.sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except BlockingIOError:
                pending.append(b"")
    return {"files": files, "doorbells": pending}


def _held(userdir, name: str) -> bool:
    """Whether a live process holds the flock on the lock file *name*."""
    fd = os.open(userdir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class _LeaveInChild(Exception):
    """Raised in the child to leave the inherited ``async with`` blocks."""


async def _round_trip(req: shmsock.Socket, rep: shmsock.Socket, tag: bytes) -> None:
    with trio.fail_after(10):
        await req.send(b"request " + tag)
        assert await rep.recv() == b"request " + tag
        await rep.send(b"reply " + tag)
        assert await req.recv() == b"reply " + tag


async def test_a_child_leaving_the_inherited_block_leaves_the_parent_intact(userdir):
    """The child closes the parent's sockets every way it can: close(),
    aclose(), leaving the ``async with`` blocks with an exception, garbage
    collection, and a statistics scrape.  The parent's binder and connector
    go on as if the child had never been."""
    endpoint = "shm://fork-leave"
    in_child = False
    try:
        async with shmsock.socket(REP) as rep:
            rep.bind(endpoint)
            async with shmsock.socket(REQ) as req:
                req.connect(endpoint)
                await _round_trip(req, rep, b"before")
                await trio.testing.wait_all_tasks_blocked()
                before = _shared_state(userdir, [rep, req])
                pid, fd = _fork_with_pipe()
                if pid == 0:
                    in_child = True
                    req.close()
                    await rep.aclose()
                    raise _LeaveInChild
                report = _child_report(pid, fd)
                assert _shared_state(userdir, [rep, req]) == before
                assert report == {"left": "cleanly", "stats": []}
                assert _held(userdir, "fork-leave@lock")
                assert _held(userdir, "fork-leave@0.lock")
                assert rep.peer_count == 1
                assert req.peer_count == 1
                await _round_trip(req, rep, b"after")
                # A newcomer from another process attaches to the parent's
                # binder, and messages flow both ways.
                with spawn(peers.req_client, endpoint, False, "new", 1) as newcomer:
                    await newcomer.expect("ready")
                    with trio.fail_after(10):
                        assert await rep.recv() == b"new-0"
                    await rep.send(b"answer")
                    assert await newcomer.recv() == [b"answer"]
                    await newcomer.finish()
                await wait_peers(rep, 1)
                await _round_trip(req, rep, b"at last")
    except BaseException as exc:
        if not in_child:
            raise
        # The child, after leaving both blocks.
        if isinstance(exc, _LeaveInChild):
            try:
                rep = req = None  # type: ignore[assignment]
                gc.collect()
                stats = [list(key) for key in _stats.snapshot()]
                list(shmsock.metrics.COLLECTOR.collect())
                report = {"left": "cleanly", "stats": stats}
            except BaseException as exc2:
                report = {"left": repr(exc2)}
        else:
            report = {"left": repr(exc)}
        _report_and_exit(fd, report)


async def test_a_parent_that_dies_while_its_child_lives_is_seen_dead_at_once(userdir):
    """The child lets go of the parent's descriptors when it is forked, so
    the parent's locks and doorbells still die with the parent: its peer
    sees the death, and its endpoint can be bound again, while the child
    lives on."""
    async with shmsock.socket(PAIR) as pair:
        pair.bind("shm://fork-peer")
        parent = spawn(peers.fork_and_wait, "shm://fork-bound", "shm://fork-peer")
        child_pid = 0
        try:
            child_pid = await parent.recv()
            await wait_peers(pair, 1)
            # Not parent.kill(), which joins: the child holds the pipe that
            # multiprocessing watches for its parent's exit.
            os.kill(parent.pid, signal.SIGKILL)
            with trio.fail_after(10), pytest.raises(trio.BrokenResourceError):
                await pair.recv()
            # Its descriptors are released in no set order as it dies: the
            # doorbell may go before the lock.  Once it is reaped, all are.
            await trio.to_thread.run_sync(os.waitpid, parent.pid, 0)
            async with shmsock.socket(shmsock.PULL) as pull, shmsock.socket(shmsock.PUSH) as push:
                pull.bind("shm://fork-bound")  # the dead parent's endpoint
                push.connect("shm://fork-bound")
                await push.send(b"taken over")
                assert await pull.recv() == b"taken over"
            os.kill(child_pid, 0)  # the child is still alive
        finally:
            if child_pid:
                os.kill(child_pid, signal.SIGKILL)
            parent.close()
