"""The ``tcp://`` and ``ipc://`` transport of one socket: its links, by endpoint."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import zmq

from ..._errors import InvalidEndpoint
from ..._stats import EndpointStats
from . import _endpoint
from ._fanout import ZmqFanWriter
from ._link import Link

if TYPE_CHECKING:
    from ..._options import Options
    from .. import Events, Pipe, SocketSpec
    from .._reactor import Reactor

__all__ = ["ZmqTransport"]


class ZmqTransport:
    """The libzmq endpoints of one socket, one link each (see the package rules)."""

    #: libzmq takes any message whole: nothing needs streaming.
    max_simple: Final = sys.maxsize
    #: No direct wait: the socket's tasks park, the reactor watches libzmq.
    bells: Final = None

    def __init__(self, spec: SocketSpec, events: Events, reactor: Reactor) -> None:
        self.spec = spec
        self.events = events
        self.reactor = reactor
        #: Bound links by the endpoint libzmq reports (the port a 0 got).
        self.bound: dict[str, Link] = {}
        #: How each bind was written, for unbind: "tcp://*:0" -> the endpoint above.
        self.spelled: dict[str, str] = {}
        self.connected: dict[str, list[Link]] = {}
        #: Links unbound or disconnected: their counts stay in the stats.
        self.ended: list[Link] = []
        self.retired: dict[str, EndpointStats] = {}
        self.closed = False

    # -- endpoints ---------------------------------------------------------------

    def _link(self, endpoint: str, bound: bool) -> Link:
        spec = self.spec
        return Link(
            spec,
            self.events,
            self.reactor,
            endpoint,
            bound=bound,
            ipv6=endpoint.startswith("tcp://") and _endpoint.is_ipv6(endpoint),
        )

    def send_control(self, frames: list[bytes]) -> None:
        """A SUB's or XSUB's control message: each libzmq socket of ours takes it."""
        for link in self._links():
            link.control(frames)

    def _links(self) -> list[Link]:
        return [*self.bound.values(), *(link for ls in self.connected.values() for link in ls)]

    def fan_out(self, pipes: Sequence[Pipe]) -> ZmqFanWriter:
        return ZmqFanWriter(pipes)  # type: ignore[arg-type]

    def bind(self, endpoint: str) -> str:
        """Bind a libzmq socket at *endpoint*; returns the endpoint it got.

        ``tcp://*:0`` and ``tcp://127.0.0.1:0`` get a free port: the
        endpoint returned names it (libzmq's LAST_ENDPOINT).  Raises
        InvalidEndpoint, AddressInUse (a port in use, an ``ipc://`` path a
        live socket listens on), FileExistsError (an ``ipc://`` path holding
        another file), ValueError (CURVE options that do not fit) and
        OSError for what else the system refuses.
        """
        _endpoint.check_bind(endpoint)
        link = self._link(endpoint, bound=True)
        try:
            link.sock.bind(endpoint)
            got: str = link.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        except zmq.ZMQError as exc:
            link.close()
            raise _endpoint.error_from(exc, endpoint, "bind") from None
        except BaseException:
            link.close()
            raise
        link.endpoint = got
        self.bound[got] = link
        self.spelled[endpoint] = got
        link.start()
        return got

    def connect(self, endpoint: str) -> None:
        """Connect a libzmq socket to *endpoint*; libzmq dials in the background.

        Never waits: the pipe attaches once a connection is made and its
        handshake done, and again after each reconnect.
        """
        _endpoint.check_connect(endpoint)
        link = self._link(endpoint, bound=False)
        try:
            link.sock.connect(endpoint)
        except zmq.ZMQError as exc:
            link.close()
            raise _endpoint.error_from(exc, endpoint, "connect") from None
        except BaseException:
            link.close()
            raise
        self.connected.setdefault(endpoint, []).append(link)
        link.start()

    def _end(self, link: Link) -> None:
        """Close *link* as the socket's own unbind or disconnect: its pipes end."""
        pipes = [p for p in (link.pipe, link.draining) if p is not None]
        link.close()
        self.ended.append(link)
        for pipe in pipes:
            self.events.gone(pipe)
            self.events.finished(pipe)

    def unbind(self, endpoint: str) -> None:
        """Close the libzmq socket bound at *endpoint* (as written, or as bind returned it)."""
        got = self.spelled.get(endpoint, endpoint)
        link = self.bound.pop(got, None)
        if link is None:
            raise InvalidEndpoint(f"{endpoint} is not bound by this socket")
        for spelled, resolved in list(self.spelled.items()):
            if resolved == got:
                del self.spelled[spelled]
        self._end(link)

    def disconnect(self, endpoint: str) -> int:
        """Close every libzmq socket connected to *endpoint*; returns how many."""
        links = self.connected.pop(endpoint, None)
        if not links:
            raise InvalidEndpoint(f"{endpoint} is not connected by this socket")
        for link in links:
            self._end(link)
        return len(links)

    def links(self) -> list[Link]:
        """Every open link.  Copies under the GIL: the exporter's thread calls it too."""
        out = list(self.bound.values())
        for links in list(self.connected.values()):
            out.extend(links)
        return out

    # -- the rest of the contract ----------------------------------------------------

    def check_atomic(self, frames: list[bytes], size: int) -> None:
        pass  # libzmq sends any message whole

    def check_usable(self) -> None:
        """Raise why a connect brought no peer: a handshake refused (SecurityError, ...)."""
        for links in self.connected.values():
            for link in links:
                if link.refused is not None and (link.pipe is None or not link.pipe.alive):
                    raise link.refused

    def set_options(self, options: Options) -> None:
        """New options apply to links made from now on; ``linger`` to all at once."""
        self.spec = _with_options(self.spec, options)
        for link in self.links():
            link.spec = self.spec
            link.set_linger(options.linger)

    def undelivered(self) -> bool:
        return False  # a link's backlog belongs to its pipe (Pipe.unread)

    def count_lost(self) -> None:
        pass  # what libzmq holds is its own to send, or lose, after the close

    def close(self) -> None:
        """Close every link: libzmq sends what they hold for up to ``linger`` more."""
        if self.closed:
            return
        self.closed = True
        for link in self.links():
            link.close()
            self._keep(link)

    def _keep(self, link: Link) -> None:
        st = self.retired.setdefault(link.endpoint, EndpointStats())
        link.count(st)
        st.peers = st.used_in = st.used_out = 0

    def disown(self) -> None:
        """A fork() child: let go of every link without a call into libzmq."""
        self.closed = True
        for link in self.links():
            link.disown()

    def stats(self) -> dict[str, EndpointStats]:
        out: dict[str, EndpointStats] = {}
        for endpoint, st in list(self.retired.items()):
            out.setdefault(endpoint, EndpointStats()).add_counters(st)
        if not self.closed:
            for link in [*self.links(), *list(self.ended)]:
                link.count(out.setdefault(link.endpoint, EndpointStats()))
        return out


def _with_options(spec: SocketSpec, options: Options) -> SocketSpec:
    return dataclasses.replace(spec, options=options)
