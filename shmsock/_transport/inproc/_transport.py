"""The inproc registry, and the transport of one socket (see the package docstring)."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import trio

from ... import _stats
from ..._errors import AddressInUse, IncompatiblePeer, InvalidEndpoint, RoutingIdInUse
from ..._options import Options
from ..._stats import EndpointStats
from .. import Events, Pipe, SocketSpec, parse_name
from ._pipe import FanWriter, InprocPipe, connect_pipes, count_pipe

if TYPE_CHECKING:
    from .._reactor import Reactor

__all__ = ["InprocTransport"]

log = logging.getLogger("shmsock")

# Guards the registry: sockets of runs in other threads use it too.
_LOCK = threading.Lock()
_bound: dict[str, _Binding] = {}
_dialing: dict[str, list[_Dialer]] = {}


def _greeting(spec: SocketSpec) -> list[list[bytes]]:
    return [] if spec.greeting is None else spec.greeting()


def _run_alive(token: trio.lowlevel.TrioToken) -> bool:
    try:
        token.run_sync_soon(lambda: None)
    except trio.RunFinishedError:
        return False
    return True


class _Binding:
    __slots__ = ("endpoint", "name", "token", "transport")

    def __init__(self, name: str, transport: InprocTransport) -> None:
        self.name = name
        self.endpoint = f"inproc://{name}"
        self.transport = transport
        self.token = transport.token


class _Dialer:
    __slots__ = ("endpoint", "name", "pipe", "refused", "token", "transport")

    def __init__(self, name: str, transport: InprocTransport) -> None:
        self.name = name
        self.endpoint = f"inproc://{name}"
        self.transport = transport
        self.token = transport.token
        self.pipe: InprocPipe | None = None
        self.refused: Exception | None = None


class InprocTransport:
    """The ``inproc://`` endpoints and connections of one socket."""

    #: No message is too large to offer whole (only max_msg_size limits it).
    max_simple: Final = sys.maxsize
    #: No descriptor to wait on: a task parks until the writer's Events call.
    bells: Final = None

    def __init__(self, spec: SocketSpec, events: Events, reactor: Reactor | None = None) -> None:
        self.spec = spec
        self.events = events
        self.token = trio.lowlevel.current_trio_token()
        self.bindings: dict[str, _Binding] = {}
        self.dialers: list[_Dialer] = []
        self.pipes: list[InprocPipe] = []  # live or not yet finished
        self.retired: dict[str, EndpointStats] = {}
        self.closed = False

    # -- endpoints ---------------------------------------------------------------

    def bind(self, endpoint: str) -> None:
        name = parse_name(endpoint)
        if name in self.bindings:
            raise AddressInUse(f"{endpoint} is already bound by this socket")
        with _LOCK:
            other = _bound.get(name)
            if other is not None:
                if other.token is self.token or _run_alive(other.token):
                    where = "" if other.token is self.token else " in another trio.run"
                    raise AddressInUse(f"{endpoint} is bound by a live socket{where}")
                del _bound[name]  # its run ended without closing it
            b = _bound[name] = self.bindings[name] = _Binding(name, self)
            dialers = _dialing.get(name, [])
            # Connects of runs that ended without closing can never attach.
            dialers[:] = [d for d in dialers if d.token is self.token or _run_alive(d.token)]
            waiting = [d for d in dialers if d.token is self.token]
        for d in waiting:
            self._accept(b, d)

    def connect(self, endpoint: str) -> None:
        name = parse_name(endpoint)
        with _LOCK:
            b = _bound.get(name)
            if b is not None and b.token is not self.token:
                if _run_alive(b.token):
                    raise ConnectionRefusedError(
                        f"{endpoint} is bound in another trio.run: inproc:// connects only"
                        " sockets of one run"
                    )
                b = None
            d = _Dialer(name, self)
            _dialing.setdefault(name, []).append(d)
            self.dialers.append(d)
        if b is not None:
            b.transport._accept(b, d)

    def _accept(self, b: _Binding, d: _Dialer) -> None:
        """As the binder, take dialer *d* on, or refuse it."""
        if d.pipe is not None and d.pipe.alive:
            return
        dialer = d.transport
        if dialer.spec.kind not in self.spec.compatible:
            self._refuse(
                d,
                IncompatiblePeer(
                    f"the socket bound at {b.endpoint} cannot talk to this socket type"
                ),
            )
            return
        limit = self.spec.max_peers
        if limit is not None and sum(p.alive for p in self.pipes) >= limit:
            self._refuse(
                d,
                ConnectionRefusedError(
                    f"{b.endpoint} refused the connection: it already has its peer"
                ),
            )
            return
        asked = dialer.spec.options.routing_id
        if asked is not None and self.events.identity_in_use(asked):
            self._refuse(
                d,
                RoutingIdInUse(
                    f"the ROUTER bound at {b.endpoint} has a peer of routing id {asked!r}"
                    " already: this socket's routing_id must differ"
                ),
            )
            return
        mine = self.spec.options.routing_id
        if mine is not None and dialer.events.identity_in_use(mine):
            # The connecting ROUTER has a peer of our id: it will not have
            # us.  We asked for the id, so we say it; its next bind retries.
            log.warning(
                "shmsock: %s: the ROUTER connecting here has a peer of this socket's"
                " routing id %r already: not connected",
                b.endpoint,
                mine,
            )
            return
        mine_pipe, theirs = connect_pipes(self, dialer, b, b.endpoint)
        d.pipe, d.refused = theirs, None
        self.pipes.append(mine_pipe)
        dialer.pipes.append(theirs)
        self.events.attached(mine_pipe)
        dialer.events.attached(theirs)
        # Each side's greeting, before either hears anything else (rule 8).
        for frames in _greeting(dialer.spec):
            theirs.send_control(frames)
        for frames in _greeting(self.spec):
            mine_pipe.send_control(frames)

    @staticmethod
    def _refuse(d: _Dialer, exc: Exception) -> None:
        d.refused = exc
        d.transport.events.changed()

    def unbind(self, endpoint: str) -> None:
        name = parse_name(endpoint)
        b = self.bindings.pop(name, None)
        if b is None:
            connected = any(d.name == name for d in self.dialers)
            hint = " (it connected there: use disconnect)" if connected else ""
            raise InvalidEndpoint(f"this socket is not bound to {endpoint}{hint}")
        with _LOCK:
            if _bound.get(name) is b:
                del _bound[name]
        for pipe in [p for p in self.pipes if p.binding is b]:
            self._end(pipe)

    def disconnect(self, endpoint: str) -> int:
        name = parse_name(endpoint)
        mine = [d for d in self.dialers if d.name == name]
        if not mine:
            hint = " (it is bound there: use unbind)" if name in self.bindings else ""
            raise InvalidEndpoint(f"this socket is not connected to {endpoint}{hint}")
        for d in mine:
            self.dialers.remove(d)
            self._forget(d)
            if d.pipe is not None:
                self._end(d.pipe)
        return len(mine)

    def _end(self, pipe: InprocPipe) -> None:
        """End *pipe* from this side (unbind, disconnect): the peer keeps what we sent."""
        was_alive = pipe.alive
        pipe.close()
        if was_alive:
            self.events.gone(pipe)
        self.events.finished(pipe)

    @staticmethod
    def _forget(d: _Dialer) -> None:
        with _LOCK:
            waiting = _dialing.get(d.name, [])
            if d in waiting:
                waiting.remove(d)
            if not waiting:
                _dialing.pop(d.name, None)

    # -- the rest of the contract ------------------------------------------------------

    def check_atomic(self, frames: list[bytes], size: int) -> None:
        pass  # a message larger than the queue's budget goes when it is empty

    def check_usable(self) -> None:
        for d in self.dialers:
            if d.refused is not None and (d.pipe is None or not d.pipe.alive):
                raise d.refused

    def retire(self, pipe: InprocPipe) -> None:
        if pipe in self.pipes:
            self.pipes.remove(pipe)
            retired = self.retired.setdefault(pipe.endpoint, EndpointStats())
            count_pipe(retired, pipe, gauges=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with _LOCK:
            for name, b in self.bindings.items():
                if _bound.get(name) is b:
                    del _bound[name]
        for d in self.dialers:
            self._forget(d)
        for pipe in self.pipes:
            pipe.close()

    def set_options(self, options: Options) -> None:
        self.spec = dataclasses.replace(self.spec, options=options)

    def send_control(self, frames: list[bytes]) -> None:
        # A connection exists at once or not at all: no greeting is in flight.
        for pipe in self.pipes:
            pipe.send_control(frames)

    def fan_out(self, pipes: Sequence[Pipe]) -> FanWriter:
        return FanWriter(pipes)  # type: ignore[arg-type]

    def undelivered(self) -> bool:
        return False  # a message lives in a pipe, or nowhere

    def count_lost(self) -> None:
        with _stats.LOCK:
            for pipe in self.pipes:
                pipe.drop_inbox()

    def disown(self) -> None:
        """This process is a fork() child: let go without touching anything.

        Nothing of an inproc connection is shared with the parent (the
        registry is emptied by the at-fork hook below), so this only marks
        the transport closed.
        """
        self.closed = True

    def stats(self) -> dict[str, EndpointStats]:
        out: dict[str, EndpointStats] = {}
        for endpoint, retired in list(self.retired.items()):
            out.setdefault(endpoint, EndpointStats()).add_counters(retired)
        for pipe in list(self.pipes):
            count_pipe(out.setdefault(pipe.endpoint, EndpointStats()), pipe)
        for b in list(self.bindings.values()):
            out.setdefault(b.endpoint, EndpointStats())
        return out


def _forget_after_fork() -> None:
    # A fork() child has its parent's registry but none of its sockets'
    # runs: nothing in it can ever connect.  The lock may have been held by
    # a thread of the parent that the child does not have.
    global _LOCK
    _LOCK = threading.Lock()
    _bound.clear()
    _dialing.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
