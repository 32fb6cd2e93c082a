"""``tcp://`` and ``ipc://`` through libzmq (pyzmq): ZeroMQ itself, between hosts.

One libzmq socket per endpoint of a shmsock socket: a *link* (``_link.py``).
``bind("tcp://*:5555")``, ``bind("ipc:///run/x")`` and ``connect("tcp://h:1")``
each make one, of the libzmq type that speaks to the peers a ZeroMQ program
would use: PUSH, PULL, PAIR, DEALER, ROUTER, PUB, SUB, XPUB and XSUB as
themselves, REQ as a DEALER and REP as a ROUTER, with libzmq's envelopes
(``_envelope.py``); subscriptions travel as libzmq's own (``_upstream.py``).
While a link has a peer, it shows the socket one pipe, which round-robin
and fair-queueing treat like any other peer: one socket may bind
``shm://jobs`` and ``tcp://*:5555`` at once.  The remote peers of one
bound link share that pipe, and so one turn among the socket's pipes;
libzmq fair-queues and round-robins among them inside it.

The EVENTS discipline
---------------------

libzmq's descriptor (``zmq.FD``) is not a readiness descriptor.  It is the
signal of the socket's command mailbox: it turns readable when commands
arrive (a message came into an empty queue, room came into a full one, a
connection attached) and stops being readable when *any* call into the
socket processes them, whoever made the call: ``send``, ``recv`` and
``getsockopt(EVENTS)`` all may.  What the socket can do is only in
``EVENTS`` (POLLIN: a whole message can be taken; POLLOUT: one can be sent).
A send can therefore consume the "a message arrived" signal that a task
parked in recv was waiting for, and that task then sleeps forever (pyzmq
#1203).  Every link keeps these rules, and every call into a libzmq socket
is in this package:

1. **Every call is DONTWAIT.**  Waiting is Trio's: the socket's tasks park
   and the socket's reactor watches ``zmq.FD`` (level-triggered: readable
   while commands wait) and each link's monitor socket.
2. **Read EVENTS when a pipe appears** (``Link.sync``): the descriptor never
   signals what was already there.
3. **Read EVENTS after every call, when a direction is marked not ready**
   (``readable`` or ``writable`` false: a task may be waiting for it).  What
   it finds ready is reported at the reactor's next poll (``Reactor.soon``),
   because the transport may not call the socket from inside a call the
   socket made (the contract's rule 1), and because no descriptor will say
   it again.  When both flags are true nobody can be waiting, and the
   EVENTS call (about 1 us) is skipped: a sender that never fills never
   pays it.  A direction the socket never uses (a PUSH receives nothing) is
   never looked at.  A ROUTER's POLLOUT says that *some* peer has room, not
   the one addressed: with one peer it is that peer's room, as for the
   other types; with several, a read made inside a call that finds POLLOUT
   while a send waits cannot tell whether it consumed the signal of the
   addressed peer's room, so rule 5's handler runs again after a delay
   (1 ms, doubling to 64 ms while nothing is sent).  The same holds for a
   ``nodrop`` publisher, whose POLLOUT is always up (rule 4).
4. **On Again, mark the direction not ready and read EVENTS before giving
   up**: it may find the room or the message after all (then the call is
   tried again), and it leaves the descriptor armed for the next change.
   One exception: a ``nodrop`` publisher's Again (libzmq's XPUB_NODROP),
   whose EVENTS says POLLOUT whatever the room: the send stays the last
   call, and the descriptor signals the room (``Link.again_send``).
5. **The descriptor's handler reads EVENTS** and reports every direction
   that turned ready.  A wake-up with nothing ready is normal: ignore it.

Further rules:

6. **All of a message or nothing.**  A send goes frame by frame with
   SNDMORE.  Again on the first frame: nothing was sent.  Again on a later
   frame (only when a connection ended mid-message; libzmq then drops the
   rest of it): the remaining frames are sent to end libzmq's dropping, and
   the whole message is sent again from its first frame.  A receive takes
   the first frame DONTWAIT; libzmq delivers messages whole, so the other
   frames are there.  A batch (``offer_batch``) is taken whole too: what
   libzmq's high-water mark has no room for waits in the link, which sends
   it as room comes (rule 5's handler, and rule 3's reads) and counts as not
   writable until it has; EVENTS is read again after those sends, since they
   may consume the signal of a message that came meanwhile.
7. **A message handed to libzmq counts as sent**, as one written to a ring
   does.  libzmq sends it in its own thread; nothing tells us when the peer
   has it, so ``aclose`` waits only for what the link itself still holds,
   and libzmq goes on sending for ``linger`` after the close (as long as the
   process lives; at exit the process waits for that, see ``_context.py``).
8. **Peers come and go through the monitor** (``zmq_socket_monitor``):
   a link shows a pipe while it has a connection whose handshake succeeded
   (a sending socket's, once libzmq's socket can send to it: POLLOUT, or
   a message comes while a gone pipe still reads), and reports ``gone``
   when the last one ends.  libzmq reports the end before it hands the
   socket the last messages it read, so the gone pipe stays the reader
   until a take finds it empty after something came, a new peer's pipe
   takes over (with what the old one held), or the link closes.  A gone
   pipe reads only once the monitor is read: the monitor tells of a new
   peer's handshake before that peer's first message arrives, and that
   message must not pass for the departed peer's.  libzmq's IMMEDIATE
   stays off: with it, libzmq throws away what the socket received and
   did not read yet when a connection drops.  A connecting link whose
   ``immediate`` option is off shows its pipe from ``connect()`` to
   ``disconnect()`` instead (libzmq queues meanwhile).
9. **One thread.**  libzmq sockets are touched only from the socket's Trio
   thread; ``stats`` (called from the exporter's thread) reads Python
   counters only.

Importing this package imports pyzmq; without it, the error names the
extra to install.  ``shm://`` and ``inproc://`` never import it.
"""

from __future__ import annotations

try:
    import zmq as _zmq
except ImportError as exc:  # pragma: no cover - tested in a subprocess without pyzmq
    raise ImportError(
        "tcp:// and ipc:// endpoints go through libzmq, which comes with pyzmq:"
        " pip install 'shmsock[zmq]' (or pip install pyzmq)",
        name="zmq",
    ) from exc

if _zmq.zmq_version_info() < (4, 3):  # pragma: no cover - pyzmq wheels bundle 4.3.5
    raise ImportError(
        f"tcp:// and ipc:// need libzmq 4.3 or later; pyzmq uses libzmq {_zmq.zmq_version()}",
        name="zmq",
    )

from ._transport import ZmqTransport

__all__ = ["ZmqTransport"]
