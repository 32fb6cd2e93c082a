"""A link: one libzmq socket, for one endpoint bound or connected (see the package rules).

A link owns its libzmq socket and that socket's monitor, registers both
descriptors with the socket's reactor, and keeps every rule of the
package's docstring for them: all calls into its libzmq socket are made
here or by its pipes (``_pipe.py``), which call :meth:`Link.after_call`,
:meth:`Link.again_send` and :meth:`Link.again_recv` as the rules say.

Sessions: the monitor tells of connections (CONNECTED or ACCEPTED, and
DISCONNECTED, each with its descriptor) and of handshakes (HANDSHAKE_*,
which name no connection).  A link counts ``shaken``, its connections whose
handshake succeeded, as an upper bound that is exact once no handshake is
pending: it rises with each success and is cut to the number of open
connections at each end.  A handshake that fails without an event (libzmq
has a few) can only make it too high, for as long as that connection stays
open, never too low: a live peer is never taken for gone.  While ``shaken``
is above zero the link shows one pipe; when it falls to zero that pipe is
gone, and is read until libzmq has nothing more (rule 5 of the contract).
"""

from __future__ import annotations

import errno
import itertools
import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import zmq

from ..._errors import IncompatiblePeer
from ..._stats import EndpointStats
from ..._types import SocketType
from . import _calls, _context, _setup
from ._envelope import Envelope, envelope_for
from ._pipe import ZmqPipe
from ._upstream import Upstream, send_upstream

if TYPE_CHECKING:
    from .. import Events, SocketSpec
    from .._reactor import Reactor

__all__ = ["Link"]

# Plain ints: pyzmq's constants are enum flags, whose ``&`` runs in Python
# (about 1 us here), and sync() tests EVENTS against them on every wake-up.
_POLLIN: Final = int(zmq.POLLIN)
_POLLOUT: Final = int(zmq.POLLOUT)
_EVENTS: Final = int(zmq.EVENTS)
_DONTWAIT: Final = int(zmq.DONTWAIT)

_MONITORED: Final = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_EVENT: Final = struct.Struct("=HI")
#: Seconds between a several-peer ROUTER's looks at POLLOUT (Link._recheck_later).
_RECHECK_FIRST: Final = 0.001
_RECHECK_LAST: Final = 0.064

_monitors = itertools.count(1)


class Link:
    """One endpoint's libzmq socket, its monitor, and the pipe it shows."""

    def __init__(
        self,
        spec: SocketSpec,
        events: Events,
        reactor: Reactor,
        endpoint: str,
        *,
        bound: bool,
        ipv6: bool,
    ) -> None:
        self.spec = spec
        self.events = events
        self.reactor = reactor
        self.endpoint = endpoint
        self.bound = bound
        options = spec.options
        self.envelope: Envelope = envelope_for(spec, random.getrandbits(32))
        self.router = self.envelope.router
        #: A publisher with nodrop (libzmq's XPUB_NODROP): see again_send.
        self.lossless = spec.kind in (SocketType.PUB, SocketType.XPUB) and options.nodrop
        #: Directions the socket uses: only those are ever waited for (rule 3).
        self.watch_recv = spec.reads_data
        self.watch_send = spec.writes_data
        #: A connecting link with immediate off shows its pipe from connect on.
        self.persistent = not bound and not options.immediate
        self.pipe: ZmqPipe | None = None  # the live pipe
        self.draining: ZmqPipe | None = None  # a gone pipe still being read
        self.pipes: list[ZmqPipe] = []  # every pipe not yet retired (their counts)
        #: A peer's handshake succeeded and the pipe waits for POLLOUT (_arrive).
        self.arriving = False
        self.conns: set[int] = set()
        self.shaken = 0
        self.handshook = False  # since the last CONNECTED (a connecting link's)
        self.refused: Exception | None = None
        #: One offer_batch's messages that libzmq had no room for yet (rule 6).
        self.backlog: tuple[memoryview, list[int], int] | None = None
        self.drain_waiting = False
        self.retired = EndpointStats()
        #: An XPUB's: what its peers send upstream (``_upstream``), read by the link.
        self.upstream = Upstream(self) if spec.kind == SocketType.XPUB else None
        #: An XSUB's: subscriptions of each prefix sent to libzmq (``_upstream``).
        self.sent_up: dict[bytes, int] = {}
        self._reporting = False
        self._recheck_pending = False
        self._recheck_delay = _RECHECK_FIRST
        self._recheck_sent = 0
        self._report_recv = False
        self._report_send = False
        self.closed = False
        self._zap_domain = ""

        ctx = _context.context()
        sock = self.sock = ctx.socket(self.envelope.zmq_type)
        try:
            self._zap_domain = _setup.configure(
                sock, options, bound=bound, router=self.router, ipv6=ipv6
            )
            self.monitor = sock.get_monitor_socket(
                _MONITORED, f"inproc://shmsock-monitor-{next(_monitors)}"
            )
        except BaseException:
            sock.close(0)
            raise
        self._send = sock.send
        self._recv = sock.recv
        self._get = sock.getsockopt
        #: libzmq's batch calls on this socket (None: pyzmq's calls only).
        self.batch = _calls.Batch(sock) if _calls.API is not None else None
        self.events_now: Callable[[], int] = (
            self.batch.events if self.batch is not None else self._pyzmq_events
        )
        self.fd: int = sock.getsockopt(zmq.FD)
        self.mfd: int = self.monitor.getsockopt(zmq.FD)
        self._get_monitor = self.monitor.getsockopt
        if spec.greeting is not None:
            for frames in spec.greeting():  # a SUB's subscriptions so far
                self.control(frames)

    def control(self, frames: list[bytes]) -> None:
        """A SUB's (un)subscription, as libzmq's SUB socket takes it (it filters upstream).

        An XSUB's control message (a subscription or any other) is sent on
        its libzmq XSUB socket instead (``_upstream``).
        """
        if self.spec.kind == SocketType.XSUB:
            send_upstream(self, self.sent_up, frames)
            return
        frame = frames[0] if len(frames) == 1 else b""
        if self.spec.kind == SocketType.SUB and frame[:1] in (b"\x00", b"\x01"):
            option = zmq.SUBSCRIBE if frame[0] else zmq.UNSUBSCRIBE
            self.sock.setsockopt(option, frame[1:])

    def start(self) -> None:
        """Watch the descriptors (after bind or connect succeeded)."""
        self.reactor.register(self.mfd, self._on_monitor)
        self.reactor.register(self.fd, self._on_fd)
        # Rule 2, for the monitor: its descriptor signals only after a read
        # found it empty.  The data socket's turn comes with its first pipe.
        self._on_monitor()
        if self.persistent:
            self._attach()

    def _pyzmq_events(self) -> int:
        ev: int = self._get(_EVENTS)
        return ev

    @property
    def reader(self) -> ZmqPipe | None:
        """The pipe that reads what libzmq holds: the live one, else a gone one draining."""
        return self.pipe or self.draining

    # -- the EVENTS discipline (the package's rules 2-5) -----------------------------

    def _on_fd(self) -> None:
        """Rule 5: the descriptor woke; see what is ready, and report it now."""
        if not self.closed:
            if self.draining is not None:
                self._on_monitor()  # a new peer first: see arrival_pending
            self.sync(direct=True)

    def arrival_pending(self) -> bool:
        """May a gone pipe read now?  Not while the monitor holds news unseen.

        libzmq's monitor tells of a new peer's handshake before that peer's
        first message reaches the socket.  A message read through the gone
        pipe would be taken for the departed peer's, and a REP's answer to it
        dropped: the new peer's first request never answered.  So the gone
        pipe reads only once the monitor is read, and not while a new peer
        waits for POLLOUT (what comes may be that peer's); otherwise the
        reactor reads the monitor first, and the descriptor's handler
        reports what is ready, attaching the new peer's pipe if a message
        came (:meth:`sync`).
        """
        if self.arriving or self._get_monitor(_EVENTS) & _POLLIN:
            self.reactor.soon(self._on_fd)
            return True
        return False

    def sync(self, direct: bool) -> int:
        """Read EVENTS and set the pipes' flags; report what turned ready.

        *direct*: from the reactor, where the socket may be told at once;
        otherwise (inside a call the socket made) the report waits for the
        reactor's next poll.  Returns the events read.
        """
        ev = self.events_now()
        # A message while a new peer arrives and a gone pipe still reads:
        # libzmq delivers only from connections its socket has attached,
        # and the message may be the new peer's.  Read through the gone
        # pipe, a REP's answer would go to that pipe and be dropped.
        if self.arriving and (ev & _POLLOUT or (ev & _POLLIN and self.draining is not None)):
            if direct:
                self._attach()  # reads EVENTS again: it reports what it finds itself
            else:
                self.reactor.soon(self._on_fd)  # attaching reports: not from here
            return ev
        if ev & _POLLIN and self.upstream is not None and not self.arriving:
            ev = self.upstream.ready(self.reactor, direct) or ev & ~_POLLIN
        if ev & _POLLOUT and self.backlog is not None:
            ev = self._flush()
        reader = self.reader
        if ev & _POLLIN and reader is not None and not reader.readable and self.watch_recv:
            reader.readable = True
            self._report_recv = True
        pipe = self.pipe
        if ev & _POLLOUT and pipe is not None and not pipe.writable and self.backlog is None:
            if direct or self.room_is_ours():
                pipe.writable = True
                self._report_send = True
            else:
                # Another peer's room, or this one's, whose signal this very
                # read consumed: nothing tells which, so look again later.
                self._recheck_later()
        if self._report_recv or self._report_send:
            if direct:
                self._report()
            elif not self._reporting:
                self._reporting = True
                self.reactor.soon(self._report)
        return ev

    def _report(self) -> None:
        self._reporting = False
        recv, send = self._report_recv, self._report_send
        self._report_recv = self._report_send = False
        if self.closed:
            return
        if recv:
            reader = self.reader
            if reader is not None:
                self.events.ready(reader, True, False)
        if send:
            pipe = self.pipe
            if pipe is not None:
                self.events.ready(pipe, False, True)

    def after_call(self) -> None:
        """Rule 3: after a call, when a direction is marked not ready."""
        self.sync(direct=False)

    def room_is_ours(self) -> bool:
        """Whether POLLOUT means room for the message the socket sends next.

        A ROUTER's POLLOUT says that *some* peer has room (libzmq's
        ``xhas_out`` under ROUTER_MANDATORY), not the one a message is
        addressed to; with one peer, it is that peer's.  A lossless
        publisher's says nothing: libzmq's PUB and XPUB say POLLOUT always.
        """
        return not self.lossless and (not self.router or self.shaken <= 1)

    def _recheck_later(self) -> None:
        """POLLOUT that may not be this send's room (``room_is_ours``): look again later.

        A ROUTER with several peers, or a lossless publisher (whose POLLOUT
        is always up).  Its descriptor's handler takes POLLOUT as room (a
        command came),
        but a read made inside a call may have consumed the signal of the
        very room a parked sender waits for.  So the handler runs again
        after a delay that doubles, from 1 ms to 64 ms, while nothing is
        sent: a bounded wait, and no busy loop while another peer's room
        keeps POLLOUT up.
        """
        if self._recheck_pending or self.closed:
            return
        pipe = self.pipe
        sent = pipe.messages_sent if pipe is not None else 0
        if sent != self._recheck_sent:
            self._recheck_sent = sent
            self._recheck_delay = _RECHECK_FIRST
        else:
            self._recheck_delay = min(2 * self._recheck_delay, _RECHECK_LAST)
        self._recheck_pending = True
        self.events.call_later(self._recheck_delay, self._recheck)

    def _recheck(self) -> None:
        self._recheck_pending = False
        self._on_fd()

    def again_send(self, pipe: ZmqPipe) -> bool:
        """Rule 4, for a send that met Again: True if it should be tried again now.

        A lossless publisher's link is the exception: libzmq's PUB and XPUB
        say POLLOUT always, even when a subscriber has no room (their
        XPUB_NODROP's Again), and the room comes as a command that signals
        the descriptor.  EVENTS could take that command's signal and say
        nothing of it, so the send that met Again stays the last call: the
        descriptor then signals the room.  (An XPUB's subscription whose
        signal that send took is read at the descriptor's next signal.)
        """
        pipe.writable = False
        if self.lossless:
            return False
        ev = self.sync(direct=False)
        if ev & _POLLOUT and self.room_is_ours():
            pipe.writable = True
            return True
        return False

    def again_recv(self, pipe: ZmqPipe) -> bool:
        """Rule 4, for a receive that met Again: True if it should be tried again now."""
        pipe.readable = False
        ev = self.sync(direct=False)
        if ev & _POLLIN:
            pipe.readable = True
            return True
        if pipe is self.draining and pipe.took_since_gone:
            self.draining = None
            self.events.finished(pipe)  # gone and drained (the contract's rule 5)
        return False

    # -- a batch's rest (rule 6) ------------------------------------------------------

    def hold(self, data: memoryview, lens: list[int], pos: int) -> None:
        """Keep what an offer_batch could not hand over: *lens* from offset *pos*."""
        self.backlog = (data, lens, pos)

    def _flush(self) -> int:
        """Hand the backlog to libzmq while it has room; returns EVENTS as the sends left it.

        The sends may consume the descriptor's signal of anything (a message
        that came, room that came): EVENTS is read again after them (rule
        3), and the backlog handed over again while it says there is room,
        since no signal will say so again.
        """
        while True:
            left = self.backlog[1] if self.backlog is not None else ()
            self._flush_backlog()
            ev = self.events_now()
            if self.backlog is None or not ev & _POLLOUT:
                break
            if len(self.backlog[1]) == len(left):  # room it could not use: look again soon
                self.reactor.soon(self._on_fd)
                break
        if self.backlog is not None:
            ev &= ~_POLLOUT  # what room there was went to the backlog
        elif self.drain_waiting:
            self.drain_waiting = False
            self._report_send = True
        return ev

    def _flush_backlog(self) -> None:
        assert self.backlog is not None
        data, lens, pos = self.backlog
        batch = self.batch
        if batch is not None:
            rest = data[pos:]
            sent, err = batch.send(_calls.ffi.from_buffer(rest), _calls.lens_of(lens), len(lens))
            if sent < len(lens):
                if err != errno.EAGAIN:
                    raise zmq.ZMQError(err)
                self.backlog = (data, lens[sent:], pos + sum(lens[:sent]))
                return
            self.backlog = None
            return
        send = self._send
        for i, n in enumerate(lens):
            try:
                send(data[pos : pos + n], _DONTWAIT)
            except zmq.Again:
                self.backlog = (data, lens[i:], pos)
                return
            pos += n
        self.backlog = None

    def backlog_size(self) -> tuple[int, int]:
        """Messages and bytes the backlog holds."""
        if self.backlog is None:
            return 0, 0
        _data, lens, _pos = self.backlog
        return len(lens), sum(lens)

    # -- sessions (rule 8) ---------------------------------------------------------

    def _on_monitor(self) -> None:
        recv = self.monitor.recv_multipart
        while not self.closed:
            try:
                frames = recv(_DONTWAIT)
            except zmq.Again:
                return
            except zmq.ZMQError:  # pragma: no cover - closed under us
                return
            if len(frames) != 2 or len(frames[0]) != _EVENT.size:  # pragma: no cover
                continue
            event, value = _EVENT.unpack(frames[0])
            self._on_event(event, value)

    def _on_event(self, event: int, value: int) -> None:
        shaken = self.shaken
        self._count_event(event, value)
        if self.shaken != shaken and not self.closed:
            self.events.changed()  # the peers gauge moved (stats, and who waits on it)

    def _count_event(self, event: int, value: int) -> None:
        if event in (zmq.EVENT_CONNECTED, zmq.EVENT_ACCEPTED):
            self.conns.add(value)
            self.handshook = False
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshook = True
            self.shaken = min(self.shaken + 1, len(self.conns))
            if self.refused is not None:
                self.refused = None
            if self.shaken == 1 and self.pipe is None:
                self._arrive()
        elif event == zmq.EVENT_DISCONNECTED:
            if value in self.conns:
                self.conns.discard(value)
                self.shaken = min(self.shaken, len(self.conns))
                if not self.handshook and not self.bound and self.refused is None:
                    self._refuse(
                        IncompatiblePeer(
                            f"the socket at {self.endpoint} closed the connection during the"
                            " handshake without a reason: most likely its type cannot talk to"
                            f" a {self.spec.kind.name} (libzmq then stops reconnecting)"
                        )
                    )
                self.handshook = True  # one refusal per connection
                if self.shaken == 0 and not self.persistent:
                    self.arriving = False
                    if self.pipe is not None:
                        self._detach()
        elif not self.bound:  # a handshake failed: the server refused us, or we it
            self.handshook = True
            failure = _setup.failure(event, value, self.endpoint, self.spec.options)
            if failure is not None:
                self._refuse(failure)

    def _refuse(self, exc: Exception) -> None:
        """A connect that brought no peer, and why (check_usable raises it)."""
        if self.pipe is None or not self.pipe.alive:
            self.refused = exc
            self.events.changed()

    def _arrive(self) -> None:
        """A peer's handshake succeeded: attach once libzmq's socket can send to it.

        The monitor hears of the handshake before the socket has the
        connection's queue (a command in its mailbox), and a send made in
        between meets Again: the pipe would start refused, and round-robin
        would pass it over for the first messages after ``wait_peers``.  So
        a socket that sends waits for POLLOUT (the descriptor signals the
        queue's arrival), or for a message while a gone pipe still reads
        (:meth:`sync`); one that only receives attaches at once.
        """
        if not self.watch_send:
            self._attach()
            return
        self.arriving = True
        self.sync(direct=True)

    def _attach(self) -> None:
        self.arriving = False
        old = self.draining
        pipe = ZmqPipe(self)
        if old is not None:
            # Its peer is gone and a new one came: what libzmq still holds
            # from the old one is read through the new pipe, in order, and
            # so is what the old one had taken into its inbox.
            self.draining = None
            old.hand_over(pipe)
            old.readable = False
            self.events.finished(old)
        if self.backlog is not None:
            pipe.writable = False  # a batch's rest goes first: sync reports the room after it
        self.pipe = pipe
        self.pipes.append(pipe)
        if self.upstream is not None:
            self.upstream.adopt(pipe)
        self.events.attached(pipe)
        if self.upstream is not None:
            self.upstream.attached(pipe)
        if self.spec.kind == SocketType.PUB:
            # libzmq's PUB socket filters for its subscribers itself: ours
            # writes every message to it (rule 8's control, as if the link
            # subscribed to everything).
            self.events.control(pipe, [b"\x01"])
        self.sync(direct=True)

    def _detach(self) -> None:
        """The last peer went: the pipe is gone, and read while libzmq holds anything."""
        pipe = self.pipe
        assert pipe is not None
        self.pipe = None
        pipe.alive = False
        pipe.writable = False
        pipe.try_write = pipe.refuse
        if not self.watch_recv:
            pipe.readable = False
            self.events.gone(pipe)
            self.events.finished(pipe)
            return
        # libzmq reports the disconnect before it hands the socket the last
        # messages it read from the connection: what EVENTS says now may not
        # be all.  The gone pipe stays the reader (finished once a take finds
        # it empty after something came, or a new peer's pipe takes over, or
        # the link closes), and the descriptor says when more is there.
        pipe.readable = bool(pipe.inbox) or bool(self.events_now() & _POLLIN)
        self.draining = pipe
        self.events.gone(pipe)

    # -- the end ---------------------------------------------------------------------

    def set_linger(self, linger: float | None) -> None:
        if not self.closed:
            self.sock.setsockopt(zmq.LINGER, -1 if linger is None else _setup.ms(linger))
            if self.pipe is not None and not (self.pipe.readable and self.pipe.writable):
                self.after_call()

    def close(self) -> None:
        """Close the libzmq socket; libzmq sends what it holds for up to its LINGER.

        What the backlog still holds is handed over if there is room, and
        otherwise lost and counted in ``dropped``; what libzmq received
        that was not taken is lost uncounted (libzmq does not say).  The
        pipes end: the socket forgets them with the transport.
        """
        if self.closed:
            return
        if self.backlog is not None:
            try:
                self._flush_backlog()
            except zmq.ZMQError:  # pragma: no cover - the socket broke
                pass
            lost, _nbytes = self.backlog_size()
            self.retired.dropped += lost
            self.backlog = None
        self.closed = True
        self.reactor.unregister(self.fd)
        self.reactor.unregister(self.mfd)
        for pipe in (self.pipe, self.draining):
            if pipe is not None:
                pipe.alive = pipe.readable = pipe.writable = False
                pipe.try_write = pipe.refuse
                pipe.drop_inbox()
        if self._zap_domain:
            _context.forget_clients(self._zap_domain)
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:  # pragma: no cover
            pass
        self.monitor.close(0)
        if self.batch is not None:
            self.batch.close()
        self.sock.close()

    def disown(self) -> None:
        """A fork() child: forget the sockets without a call into libzmq."""
        self.closed = True
        for pipe in (self.pipe, self.draining):
            if pipe is not None:
                pipe.alive = pipe.readable = pipe.writable = False

    def count(self, st: EndpointStats) -> None:
        """Add this link's counters and gauges to *st*."""
        st.add_counters(self.retired)
        for pipe in list(self.pipes):  # the exporter's thread calls this too
            pipe.count(st)
        st.peers += self.shaken if not self.closed else 0
        st.used_out += self.backlog_size()[1]

    def retire(self, pipe: ZmqPipe) -> None:
        """The socket is done with *pipe*: its counts move to the link's."""
        if pipe in self.pipes:
            self.pipes.remove(pipe)
            pipe.count(self.retired)
