"""The registry of what the bench measures: peers, and the ways each moves messages.

A *peer* is a library a user could pick instead of shmsock (shmsock itself
is one too, so that its figures are made the same way).  A *way* is one
way of using it, and one line in the tables and charts:

- ``Stream``: one-way throughput; a receiver process and sender processes.
- ``Echo``: a round trip; a server process that echoes and a client that
  times each round.

Every role follows ``protocol`` (the conversation is its ``wire`` module).
To add a peer: write its roles in a module here (import the library inside
the functions, so a machine without it can still import the registry), add
a ``Peer`` (with the line that says how to install it) and its ways to the
lists below.  The sections of the
suite pick ways from these lists by their flags.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from . import iox2, mp, pyzmq, shm, tcp, unix

Role = Callable[[Connection, dict[str, Any]], None]
# Makes what both processes of a rig must be given at their start (a queue):
# (multiprocessing context, the way's params, message size) -> spec entries.
Shared = Callable[[Any, dict[str, Any], int], dict[str, Any]]


@dataclass(frozen=True)
class Peer:
    name: str
    module: str | None = None  # imported to see whether the peer is there
    install: str = ""

    def missing(self) -> str | None:
        """None if the peer can run here, else the one line that says how to add it."""
        if self.module is None:
            return None
        try:
            importlib.import_module(self.module)
        except ImportError:
            return f"{self.name} is not installed, so its figures are left out: {self.install}"
        return None


@dataclass(frozen=True)
class Stream:
    """A way to move messages one way, for the throughput figures."""

    key: str  # stable: figure ids are built from it, and runs compared by them
    label: str
    peer: str
    receiver: Role
    sender: Role
    params: Mapping[str, Any] = field(default_factory=dict)
    style: str = ""  # shmsock's call style: await, nowait, batch, iter
    zero_copy: bool = False  # compared only with shmsock's zero-copy figures
    everywhere: bool = True  # at every --sizes in the default suite, else only at 1 KiB
    sweep: bool = True  # in --sweep
    shared: Shared | None = None


@dataclass(frozen=True)
class Echo:
    """A way to make a round trip, for the latency figures."""

    key: str
    label: str
    peer: str
    server: Role
    client: Role
    params: Mapping[str, Any] = field(default_factory=dict)
    loaded: bool = False  # measured on a loaded machine too, in every run
    shared: Shared | None = None


_BENCH = "pip install 'shmsock[bench]'"
PEERS = {
    "shmsock": Peer("shmsock"),
    "pyzmq": Peer("pyzmq", "zmq", f"{_BENCH} (or pip install pyzmq)"),
    "unix": Peer("unix"),
    "multiprocessing": Peer("multiprocessing"),
    "iceoryx2": Peer("iceoryx2", "iceoryx2", f"{_BENCH} (or pip install iceoryx2)"),
}


def _shm(style: str, crc: bool, everywhere: bool = True, sweep: bool = False) -> Stream:
    label = f"shmsock {style}, CRC {'on' if crc else 'off'}"
    return Stream(
        f"shmsock-{style}{'' if crc else '-nocrc'}", label, "shmsock",
        shm.receiver, shm.sender, {"mode": style, "checksum": crc},
        style=style, everywhere=everywhere, sweep=sweep,
    )  # fmt: skip


STREAMS = [
    _shm("await", True, sweep=True),
    _shm("await", False),
    _shm("nowait", True, sweep=True),
    _shm("nowait", False),
    _shm("batch", True, sweep=True),
    _shm("batch", False),
    _shm("iter", True),
    Stream("pyzmq", "pyzmq ipc://, send/recv", "pyzmq", pyzmq.receiver, pyzmq.sender),
    Stream(
        "zmq-asyncio", "zmq.asyncio ipc://, await send/recv", "pyzmq",
        pyzmq.async_receiver, pyzmq.async_sender, everywhere=False,
    ),
    Stream("unix", "Trio over a Unix socket", "unix", unix.receiver, unix.sender),
    Stream(
        "mp-queue", "multiprocessing.Queue", "multiprocessing",
        mp.queue_receiver, mp.queue_sender, {"kind": "queue"}, everywhere=False,
        shared=mp.shared,
    ),
    Stream(
        "mp-pipe", "multiprocessing.Pipe, send_bytes", "multiprocessing",
        mp.pipe_receiver, mp.pipe_sender, {"kind": "pipe"}, everywhere=False,
        shared=mp.shared,
    ),
    Stream(
        "iceoryx2", "iceoryx2, copy in and out", "iceoryx2",
        iox2.receiver, iox2.sender, {"zero_copy": False}, everywhere=False,
    ),
    Stream(
        "iceoryx2-zero-copy", "iceoryx2, zero-copy (8 bytes touched)", "iceoryx2",
        iox2.receiver, iox2.sender, {"zero_copy": True}, zero_copy=True, everywhere=False,
    ),
]  # fmt: skip

# tcp:// on loopback (the "tcp" section): shmsock's call styles over libzmq,
# pyzmq's sync API and zmq.asyncio over the same wire, and each of shmsock's
# ends with pyzmq on the other.  The peer is "pyzmq" for every way: shmsock's
# tcp:// needs it too.


def _tcp(key: str, label: str, receiver: Role, sender: Role, mode: str = "") -> Stream:
    params = {"mode": mode} if mode else {}
    return Stream(
        f"tcp-{key}", label, "pyzmq", receiver, sender, params,
        style=mode, everywhere=False, sweep=False, shared=tcp.shared,
    )  # fmt: skip


TCP_STREAMS = [
    _tcp("shmsock-await", "shmsock await, both ends", shm.receiver, shm.sender, "await"),
    _tcp("shmsock-nowait", "shmsock nowait, both ends", shm.receiver, shm.sender, "nowait"),
    _tcp("shmsock-batch", "shmsock batch, both ends", shm.receiver, shm.sender, "batch"),
    _tcp("pyzmq", "pyzmq send/recv", pyzmq.receiver, pyzmq.sender),
    _tcp("zmq-asyncio", "zmq.asyncio await", pyzmq.async_receiver, pyzmq.async_sender),
    _tcp("recv-await", "shmsock await <- pyzmq send", shm.receiver, pyzmq.sender, "await"),
    _tcp("recv-batch", "shmsock batch <- pyzmq send", shm.receiver, pyzmq.sender, "batch"),
    _tcp("send-nowait", "pyzmq recv <- shmsock nowait", pyzmq.receiver, shm.sender, "nowait"),
    _tcp("send-batch", "pyzmq recv <- shmsock batch", pyzmq.receiver, shm.sender, "batch"),
]

# The fan-in: ways that take several senders into one receiver.
FANIN = [
    Stream("shmsock", "shmsock batch", "shmsock", shm.receiver, shm.sender, {"mode": "batch"}),
    Stream("pyzmq", "pyzmq", "pyzmq", pyzmq.receiver, pyzmq.sender),
    Stream(
        "mp-queue",
        "multiprocessing.Queue",
        "multiprocessing",
        mp.queue_receiver,
        mp.queue_sender,
        {"kind": "queue"},
        shared=mp.shared,
    ),
]
QUIET_SENDERS: dict[str, Role] = {"shmsock": shm.quiet_sender, "pyzmq": pyzmq.quiet_sender}

ECHOES = [
    Echo("shmsock-parked", "shmsock parked (default)", "shmsock", shm.rep, shm.req,
         {"spin": False}, loaded=True),
    Echo("shmsock-spin", "shmsock spin_us={spin_us}", "shmsock", shm.rep, shm.req,
         {"spin": True}, loaded=True),
    Echo("floor", "floor: ring + checkpoints only", "shmsock", shm.floor_echo, shm.floor_client),
    Echo("pyzmq", "pyzmq REQ/REP ipc://", "pyzmq", pyzmq.rep, pyzmq.req, loaded=True),
    Echo("unix", "Trio over a Unix socket", "unix", unix.echo, unix.client, loaded=True),
    Echo("mp-queue", "multiprocessing.Queue, a pair", "multiprocessing", mp.queue_echo,
         mp.queue_client, {"kind": "queue"}, shared=mp.shared),
    Echo("mp-pipe", "multiprocessing.Pipe, send_bytes", "multiprocessing", mp.pipe_echo,
         mp.pipe_client, {"kind": "pipe"}, shared=mp.shared),
    Echo("iceoryx2-busy", "iceoryx2 busy-polling", "iceoryx2", iox2.echo, iox2.client,
         {"parked": False}),
    Echo("iceoryx2-parked", "iceoryx2 parked in its Listener", "iceoryx2", iox2.echo,
         iox2.client, {"parked": True}),
]  # fmt: skip

#: ROUTER <-> DEALER round trips (section "router"): a DEALER client, and a
#: ROUTER echo server that answers each message by its routing id.
ROUTER_ECHOES = [
    Echo("shmsock-router", "shmsock ROUTER/DEALER parked", "shmsock", shm.router, shm.dealer,
         {"spin": False}),
    Echo("shmsock-router-spin", "shmsock ROUTER/DEALER spin_us={spin_us}", "shmsock",
         shm.router, shm.dealer, {"spin": True}),
    Echo("pyzmq", "pyzmq ROUTER/DEALER ipc://", "pyzmq", pyzmq.router, pyzmq.dealer),
]  # fmt: skip
