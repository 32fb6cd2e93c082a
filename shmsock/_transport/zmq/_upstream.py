"""XPUB and XSUB over libzmq: subscriptions as messages, against the data direction.

An XPUB's link is a libzmq XPUB socket; an XSUB's, a libzmq XSUB socket.
Both speak ZeroMQ's subscription messages (``b"\\x01" + prefix``,
``b"\\x00" + prefix``) with any ZeroMQ peer, as ours do on ``shm://``.
Rules (with the package's EVENTS rules, which every call here keeps):

1. **An XPUB's link reads what its peers send upstream itself.**  The
   socket reads no data from a publisher's pipes (``reads_data`` false),
   so the link takes every message libzmq's XPUB holds as soon as EVENTS
   says POLLIN, from the reactor (:meth:`Upstream.read`), and reports each
   through ``Events.control`` on the link's pipe, as a shm connection
   reports its subscriber's control records.  The pattern then counts the
   link's pipe as one subscriber: what it subscribed to is what libzmq's
   XPUB says its peers subscribed to.
2. **libzmq's XPUB is not verbose.**  It passes on the first subscription
   to a prefix among its peers and the last unsubscription (including the
   ones a departing peer's prefixes make), as our XPUB does among its
   pipes: so an XPUB that binds ``shm://`` and ``tcp://`` at once tells its
   user of each prefix once, whichever transport its subscribers use.
3. **What libzmq's XPUB subscribed to outlives the link's pipes.**  Its
   subscription table is the libzmq socket's, across peers coming and
   going, while the link's pipe is gone when the last peer goes (and its
   prefixes with it, in the pattern).  :attr:`Upstream.prefixes` mirrors
   libzmq's table from the messages read, and a new pipe starts with them
   (:meth:`Upstream.attached`), so a subscriber whose subscription libzmq
   merged with a departing peer's loses nothing.  What comes while the
   link shows no pipe (a peer whose handshake the monitor has not reported
   yet) is not lost either: subscriptions go into the mirror, and from the
   first other message on everything is held, in order, for the next pipe
   (:attr:`Upstream.held`, at most :data:`MAX_HELD`).
4. **An XSUB's subscriptions are messages sent on libzmq's XSUB**
   (:func:`send_upstream`), which counts them as ours does and passes on
   each subscription and the last unsubscription.  Our XSUB pattern
   counts first and sends an unsubscription only when its count falls to
   zero, so the link sends libzmq as many unsubscriptions as it sent
   subscriptions of that prefix: both counts reach zero together.
   libzmq's XSUB also sends its table to each peer that connects later
   (its own greeting).
5. **Control is not data.**  Subscriptions and other upstream messages
   are not counted in ``messages_received`` or ``messages_sent``, on
   every transport.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

import zmq

from .._reactor import Reactor

if TYPE_CHECKING:
    from ._link import Link
    from ._pipe import ZmqPipe

__all__ = ["Upstream", "send_upstream"]

_POLLIN: Final = int(zmq.POLLIN)
_DONTWAIT: Final = int(zmq.DONTWAIT)
_MORE: Final = int(zmq.DONTWAIT | zmq.SNDMORE)


class Upstream:
    """What an XPUB link's peers send upstream: read, mirrored, reported (rules 1-3)."""

    __slots__ = ("_link", "_scheduled", "held", "prefixes")

    def __init__(self, link: Link) -> None:
        self._link = link
        self._scheduled = False
        #: The prefixes libzmq's XPUB holds subscribers for (rule 3), in order.
        self.prefixes: dict[bytes, None] = {}
        #: Read while the link showed no pipe (a peer's handshake not yet
        #: heard of): from the first message that is not a subscription on,
        #: everything waits here, in order, for the next pipe.
        self.held: deque[list[bytes]] = deque()

    def adopt(self, pipe: ZmqPipe) -> None:
        """A new pipe of the link: never readable (the link reads for it), and so
        every send on it reads EVENTS after (the package's rule 3): a send may
        take the descriptor's signal of a subscription that came."""
        pipe.readable = False
        pipe._watch_recv = True

    def attached(self, pipe: ZmqPipe) -> None:
        """Tell the socket what libzmq's XPUB subscribed to before *pipe* was there,
        then what was held for it, in order."""
        events = self._link.events
        for prefix in list(self.prefixes):
            events.control(pipe, [b"\x01" + prefix])
        held = self.held
        while held:
            self._deliver(pipe, held.popleft())

    def _deliver(self, pipe: ZmqPipe | None, frames: list[bytes]) -> None:
        link = self._link
        if pipe is None:
            if not self.held and _mirror(self.prefixes, frames):
                return  # a subscription: the next pipe starts with it
            if len(self.held) >= MAX_HELD:
                link.retired.dropped += 1  # no pipe for a long time: the oldest goes
                self.held.popleft()
            self.held.append(frames)
            return
        _mirror(self.prefixes, frames)
        link.events.control(pipe, frames)

    def ready(self, reactor: Reactor, direct: bool) -> int:
        """EVENTS said POLLIN: read now (*direct*), or at the reactor's next poll.

        Returns the events read after the last call (0 when not read now).
        """
        if direct:
            return self.read()
        if not self._scheduled:
            self._scheduled = True
            reactor.soon(self._soon)
        return 0

    def _soon(self) -> None:
        self._scheduled = False
        link = self._link
        if not link.closed:
            link.sync(direct=True)

    def read(self) -> int:
        """Take every message libzmq's XPUB holds (rule 1); returns EVENTS after that.

        Reads until Again, then EVENTS again (the package's rule 4), and on
        while it says POLLIN: what it leaves is signalled by the descriptor.
        """
        link = self._link
        recv = link.sock.recv_multipart
        while True:
            while not link.closed:
                try:
                    frames = recv(_DONTWAIT)
                except zmq.Again:
                    break
                self._deliver(link.pipe, frames)
            if link.closed:
                return 0
            ev = link.events_now()
            if not ev & _POLLIN:
                return ev


#: The most upstream messages a link holds while it shows no pipe.
MAX_HELD: Final = 1024


def _mirror(prefixes: dict[bytes, None], frames: list[bytes]) -> bool:
    """Apply *frames* to the mirror of libzmq's table if a subscription; say whether."""
    if len(frames) != 1 or frames[0][:1] not in (b"\x00", b"\x01"):
        return False
    prefix = frames[0][1:]
    if frames[0][0]:
        prefixes[prefix] = None
    else:
        prefixes.pop(prefix, None)
    return True


def send_upstream(link: Link, counts: dict[bytes, int], frames: list[bytes]) -> None:
    """An XSUB's control message, sent on its libzmq XSUB socket (rule 4).

    *counts* is the link's: how many subscriptions of each prefix it sent
    libzmq.  Never waits: libzmq's XSUB takes every send (a peer without
    room misses it, as libzmq's does).
    """
    frame = frames[0]
    repeat = 1
    if len(frames) == 1 and frame[:1] == b"\x01":
        prefix = frame[1:]
        counts[prefix] = counts.get(prefix, 0) + 1
    elif len(frames) == 1 and frame[:1] == b"\x00":
        repeat = counts.pop(frame[1:], 1)
    send = link.sock.send
    last = len(frames) - 1
    for _ in range(repeat):
        for i, f in enumerate(frames):
            send(f, _MORE if i < last else _DONTWAIT)
    pipe = link.reader
    if pipe is not None and not pipe.readable:
        link.after_call()  # the package's rule 3: the sends may have taken a signal
