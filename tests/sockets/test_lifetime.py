"""A socket's lifetime: with `async with` or without it, and outside Trio.

``async with shmsock.socket(...) as sock`` runs the socket's background task
in a nursery of the block.  A socket used without the block runs it as a Trio
system task from its first bind or connect, ends it with ``aclose``/``close``,
and is closed when ``trio.run`` ends if nobody closed it.  Outside Trio (no
event loop, or asyncio) its first use raises shmsock.NotInTrio.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import trio
import trio.testing
from helpers import peers
from helpers.conformance import wait_peers
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, PULL, PUSH, REP, REQ


def _files(userdir) -> list[str]:
    return sorted(os.listdir(userdir)) if userdir.exists() else []


def _socket_tasks() -> list[trio.lowlevel.Task]:
    """The system tasks that run sockets used without `async with`."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return [
        task
        for nursery in root.child_nurseries
        for task in nursery.child_tasks
        if task.name.startswith("shmsock ")
    ]


async def test_a_socket_works_without_async_with(userdir):
    pull = shmsock.socket(PULL)
    push = shmsock.socket(PUSH)
    assert isinstance(pull, shmsock.Socket)
    pull.bind("shm://bare")
    push.connect("shm://bare")
    # Nobody sends or receives on the binder while it waits: the background
    # task alone carries the handshake.
    await wait_peers(pull, 1)
    await push.send(b"no block needed")
    assert await pull.recv() == b"no block needed"
    assert len(_socket_tasks()) == 2
    await push.aclose()
    pull.close()
    assert push.closed and pull.closed
    await trio.testing.wait_all_tasks_blocked()
    assert _socket_tasks() == []  # close and aclose end the background task
    assert _files(userdir) == []


async def test_a_connector_without_async_with_attaches_to_a_later_binder():
    # The connector watches for a binder in its background task.
    req = shmsock.socket(REQ)
    req.connect("shm://later")
    async with shmsock.socket(REP) as rep:
        await trio.testing.wait_all_tasks_blocked()
        rep.bind("shm://later")
        await req.send(b"ping")
        assert await rep.recv() == b"ping"
        await rep.send(b"pong")
        assert await req.recv() == b"pong"
    await req.aclose()


async def test_a_socket_without_async_with_talks_to_another_process(userdir):
    pull = shmsock.socket(PULL)
    try:
        pull.bind("shm://bareproc")
        with spawn(peers.push_numbers, "shm://bareproc", False, 0, 100, "p") as child:
            await child.expect("ready")
            with trio.fail_after(30):
                got = [await pull.recv() for _ in range(100)]
            assert got == [b"p:%d" % i for i in range(100)]
            await child.finish()
    finally:
        await pull.aclose()
    assert _files(userdir) == []


async def test_a_cancelled_aclose_of_a_socket_without_async_with_still_closes(userdir):
    pull = shmsock.socket(PULL)
    push = shmsock.socket(PUSH, linger=None)
    pull.bind("shm://barecancel")
    push.connect("shm://barecancel")
    await push.send(b"never read")
    with trio.CancelScope() as scope:
        scope.cancel()
        await push.aclose()  # would wait for the reader without bound
    assert scope.cancelled_caught
    assert push.closed
    await pull.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert _socket_tasks() == []
    assert _files(userdir) == []


def test_a_socket_left_open_is_closed_when_trio_run_ends(userdir):
    sockets: list[shmsock.Socket] = []

    async def main() -> None:
        pull = shmsock.socket(PULL)
        push = shmsock.socket(PUSH)
        pair = shmsock.socket(PAIR)
        sockets.extend([pull, push, pair])
        pull.bind("shm://leftopen")
        push.connect("shm://leftopen")
        pair.connect("shm://nobody-binds-this")
        await push.send(b"sent, never received")
        assert _files(userdir) != []

    trio.run(main)
    assert all(s.closed for s in sockets)
    assert _files(userdir) == []


def test_a_socket_left_open_is_closed_when_trio_run_ends_with_an_error(userdir):
    class Boom(Exception):
        pass

    async def main() -> None:
        s = shmsock.socket(PULL)
        s.bind("shm://leftraise")
        raise Boom

    with pytest.raises(Boom):
        trio.run(main)
    assert _files(userdir) == []


async def test_async_with_on_a_socket_already_in_use_closes_it_on_leaving():
    sock = shmsock.socket(PAIR)
    sock.bind("shm://enterlater")
    async with sock as same:
        assert same is sock
        assert not sock.closed
    assert sock.closed
    await trio.testing.wait_all_tasks_blocked()
    assert _socket_tasks() == []


async def test_async_with_twice_or_after_close_raises():
    async with shmsock.socket(PUSH) as sock:
        with pytest.raises(RuntimeError, match="already"):
            async with sock:
                pass  # pragma: no cover
        assert not sock.closed
    with pytest.raises(trio.ClosedResourceError):
        async with sock:
            pass  # pragma: no cover


def test_a_plain_with_says_how_to_use_the_socket():
    sock = shmsock.socket(PULL)
    words = r"async with shmsock\.socket.*await sock\.aclose\(\)"
    with pytest.raises(TypeError, match=words), sock:  # type: ignore[misc]
        pass  # pragma: no cover


def test_a_socket_made_outside_trio_does_nothing_until_used_in_trio(userdir):
    sock = shmsock.socket(PULL)
    assert _files(userdir) == []
    for use in (lambda: sock.bind("shm://outside"), lambda: sock.connect("shm://outside")):
        with pytest.raises(shmsock.NotInTrio, match=r"outside trio\.run"):
            use()
    assert _files(userdir) == []

    async def main() -> None:  # the same socket, used inside Trio later
        async with shmsock.socket(PUSH) as push:
            sock.bind("shm://outside")
            push.connect("shm://outside")
            await push.send(b"made outside")
            assert await sock.recv() == b"made outside"
            await sock.aclose()

    trio.run(main)
    assert _files(userdir) == []
    sock.close()  # idempotent, and harmless outside Trio


@pytest.mark.parametrize(
    "use",
    ["bind", "connect", "async with", "aclose", "wait_peers"],
)
def test_under_asyncio_the_first_use_says_shmsock_runs_under_trio(use, userdir):
    async def main() -> None:
        sock = shmsock.socket(PULL)
        if use == "bind":
            sock.bind("shm://aio")
        elif use == "connect":
            sock.connect("shm://aio")
        elif use == "async with":
            async with sock:
                pass  # pragma: no cover
        elif use == "aclose":
            await sock.aclose()
        else:
            await sock.wait_peers()

    with pytest.raises(shmsock.NotInTrio, match=r"runs under Trio.*under asyncio.*trio\.run"):
        asyncio.run(main())
    assert issubclass(shmsock.NotInTrio, shmsock.ShmsockError)
    assert issubclass(shmsock.NotInTrio, RuntimeError)
    assert _files(userdir) == []


async def test_from_a_worker_thread_the_error_names_trio_from_thread():
    sock = shmsock.socket(PULL)
    with pytest.raises(shmsock.NotInTrio, match=r"trio\.from_thread"):
        await trio.to_thread.run_sync(sock.bind, "shm://thread")
    await trio.to_thread.run_sync(trio.from_thread.run_sync, sock.bind, "shm://thread")
    await sock.aclose()
