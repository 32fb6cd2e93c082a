"""The wake-up protocol: who rings whose doorbell, and when.  The only file that keeps it.

Each connection has a doorbell, a Unix stream socket between the two
processes.  Messages never travel on it; single bytes do (``_wire``): DATA
"I published records", SPACE "I freed room", CORRUPT "your ring failed my
checks", REGION "here is a new bulk region" (with its descriptor attached).
Its end-of-file is the peer's death notice.  Rules:

1. **Announce, re-check, sleep.**  A reader that finds its ring empty
   *announces* (``Consumer.prepare_wait``: a flag in the ring header, then
   a second look), and sleeps only if the second look found nothing.  The
   writer rings DATA on its next publish only if it sees the flag.  A
   writer refused for room announces the same way (``prepare_wait(size)``)
   and the reader rings SPACE once it frees that much.  So a busy
   connection makes no system call per message, and no wake-up is lost
   (the C side fences the flag and the position; docs/protocol.md).
2. **One poller, many doorbells.**  Every doorbell is registered in the
   socket's reactor; :meth:`Doorbells.on_doorbell` reads it and reports
   ``ready``/``gone`` through the socket's Events.
3. **Direct wait.**  A task that waits while its socket has one connection
   waits on that doorbell itself, one scheduling round instead of two.  It
   *mutes* the doorbell first (the poller would wake too), and on waking
   the doorbell is *held*: left muted and unread, and the task assumes
   DATA (a wrong guess costs one look at the ring).  A muted doorbell
   still reports a hang-up to the poller (epoll always reports EPOLLHUP),
   so a death is seen as promptly as ever.  A receive that will wait on
   the doorbell directly if it finds nothing (:meth:`Doorbells.keeping`)
   reads a held doorbell but leaves it muted (*kept*), and its wait
   starts on it as it is: no unmute and mute again in between (two
   ``epoll_ctl`` a wait).  Every other outcome of that receive unmutes
   it before it returns, and so does any other wait or read
   (:meth:`Doorbells.release`): a kept doorbell never outlives the call
   that kept it, so the poller misses nothing.
4. **Settle before announcing.**  A held doorbell is read (``settle``)
   before anyone announces a wait on its connection, and before any wait
   that a doorbell byte must end: a byte on it is older than the next
   announcement and must not end the next wait.  Only a receiver holds:
   a sender that wrote after a wrong guess of SPACE could write to a peer
   that is gone.
5. **Quiet looks.**  A receiver about to spin looks at its rings *quietly*:
   an empty ring is not announced but listed in ``unannounced`` (the spin
   withdraws announcements anyway, and a writer would ring for nothing).
   The spin announces them when it ends, and so does any other outcome.
6. **Descriptors ride on bytes.**  A region's descriptor comes attached to
   a REGION byte, sent before any record names the region, so every read
   of a doorbell is a ``recvmsg`` that keeps it (``_region.recv_with_fds``).
   A reader that meets a record naming a region it has not seen reads the
   doorbell at once (:meth:`Doorbells.fetch`), in the middle of reading:
   that read acts on DATA, SPACE and CORRUPT as the poller would, but
   leaves an end-of-file to the poller, which sees it again.

The direct wait and the spin stay behind the methods here (``doorbell``,
``mute``, ``keeping``, ``release``, ``rang``, ``reopen``, ``settle``,
``spin``, ``look``), which the socket's waiter calls.  A parked
receiver's round trip costs it four system calls: the doorbell byte it
reads before announcing, Trio's re-arming of the doorbell, the wait, and
the byte it rings with its answer (docs/performance.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ... import _ring as R
from ..._errors import CorruptMessage
from ..._types import READS_NO_DATA
from .. import Events
from . import _wire
from ._connection import Connection
from ._region import recv_with_fds

if TYPE_CHECKING:
    import socket

    from .._reactor import Reactor

__all__ = ["Doorbells"]

log = logging.getLogger("shmsock")

_T = TypeVar("_T")


class Doorbells:
    """The doorbells of one socket's shm connections, and the state of rule 3-5."""

    __slots__ = (
        "_conns",
        "_events",
        "_gone",
        "_pump",
        "_reactor",
        "held",
        "keep",
        "kept",
        "quiet",
        "unannounced",
    )

    def __init__(
        self,
        events: Events,
        reactor: Reactor,
        conns: list[Connection],
        gone: Callable[[Connection], None],
        pump: Callable[[Connection], None] | None = None,
    ) -> None:
        self._events = events
        self._reactor = reactor
        self._conns = conns  # the connection set's own list
        self._gone = gone
        # For a socket that reads no data: read a ring that rang at once
        # (its control messages), instead of reporting it readable.
        self._pump = pump
        # The connection whose doorbell a woken waiter left muted and unread.
        self.held: Connection | None = None
        # Inside keeping(): a held doorbell read before announcing stays muted.
        self.keep = False
        # The connection whose doorbell was read and left muted for the
        # direct wait that follows (rule 3); None outside keeping()'s call.
        self.kept: Connection | None = None
        self.quiet = False
        self.unannounced: list[Connection] = []

    # -- rule 2: the poller ----------------------------------------------------------

    def on_doorbell(self, conn: Connection, assumed: bytes = b"") -> None:
        """Read *conn*'s doorbell and report what it says (but bytes of *assumed* alone)."""
        data = self._read(conn)
        if data is None:
            return
        if not data:
            conn.count_unread_as_lost()
            self._gone(conn)
            return
        if not assumed or data.strip(assumed):
            self._act(conn, data)

    def _read(self, conn: Connection, *, reading: bool = False) -> bytes | None:
        """What *conn*'s doorbell holds (b"": end-of-file; None: nothing now).

        Regions that came with it go to the connection's reader.  One it
        refuses (or more descriptors than anyone sends) makes the
        connection corrupt: its ring cannot be read on.  The poller rejects
        the connection; a read in progress (*reading*) gets the error, and
        the connection rejects itself as for any corrupt record.
        """
        try:
            data, fds = recv_with_fds(conn.sock, 4096)
            if fds:
                conn.bulk_in.add(fds)
        except BlockingIOError:
            return None
        except OSError:
            return b""
        except CorruptMessage:
            if reading:
                raise
            conn.reject()
            return None
        return data

    def fetch(self, conn: Connection) -> None:
        """Read *conn*'s doorbell now, in the middle of reading its ring (rule 6)."""
        held = conn is self.held
        if held:
            self.held = None
        try:
            while conn.sock.fileno() >= 0:
                data = self._read(conn, reading=True)
                if not data:
                    return  # nothing more, or end-of-file (left to the poller)
                self._act(conn, data)
        finally:
            if held:
                self.unmute(conn)

    def _act(self, conn: Connection, data: bytes) -> None:
        recv = send = False
        if _wire.DATA in data:
            if self._pump is not None:
                self._pump(conn)
            else:
                conn.readable = recv = True
        if _wire.SPACE in data:
            conn.writable = send = True
            conn.flush_control()
        if _wire.CORRUPT in data:
            conn.owner.on_corrupt(conn)  # only a binder sends it, about our ring
        if _wire.ID_REFUSED in data:
            # A connecting ROUTER that has a peer of our routing id hangs up.
            log.warning(
                "shmsock: %s: the ROUTER of pid %d has another peer of this socket's"
                " routing id, and hung up",
                conn.endpoint,
                conn.pid,
            )
        if recv or send:
            self._events.ready(conn, recv, send)

    # -- rule 1: a ring found empty -------------------------------------------------

    def empty(self, conn: Connection) -> None:
        """*conn*'s ring was found empty: announce the wait, or finish a dead one."""
        if conn is self.held:
            self.settle()  # rule 4
        if not conn.alive:
            conn.readable = False
            conn.asm.abandon()
            self._events.finished(conn)
        elif self.quiet:
            conn.readable = False
            self.unannounced.append(conn)
        elif conn.rx.prepare_wait():
            conn.readable = False
            # Going idle on this ring (never per message): for `shmsock stat`.
            conn.rx_seg.mark_caught_up()

    def announce(self, conns: list[Connection]) -> bool:
        """Announce a wait on each of *conns*' rings; True if one had data after all."""
        found = False
        for conn in conns:
            if conn.rx.prepare_wait():
                conn.rx_seg.mark_caught_up()
            else:
                conn.readable = found = True
                self._events.ready(conn, True, False)
        return found

    # -- rules 3 and 4: the direct wait ---------------------------------------------

    def doorbell(self, pipe: object) -> socket.socket | None:
        """The doorbell a task may wait on for *pipe*, if it is one of ours."""
        return pipe.sock if type(pipe) is Connection else None

    def mute(self, conn: Connection) -> None:
        """Stop the poller from watching *conn*'s doorbell (a task waits on it).

        A doorbell kept muted since :meth:`settle` costs nothing here.
        """
        kept = self.kept
        if kept is conn:
            self.kept = None
            return
        if kept is not None:
            self.release()
        self._reactor.mute(conn.fd)

    def release(self) -> None:
        """Hand a kept doorbell back to the poller: no direct wait follows."""
        conn = self.kept
        if conn is not None:
            self.kept = None
            if conn.alive:
                self.unmute(conn)

    def keeping(self, take: Callable[..., _T], *args: Any) -> _T:
        """``take(*args)`` for a receiver that waits on its one doorbell if it raises WouldBlock.

        A held doorbell read before announcing (rule 4) stays muted for
        that wait (``kept``).  Any other outcome, a message or another
        error, hands it back to the poller before returning.
        """
        self.keep = True
        try:
            got = take(*args)
        except trio.WouldBlock:
            self.keep = False
            raise
        except BaseException:
            self.keep = False
            self.release()
            raise
        self.keep = False
        if self.kept is not None:
            self.release()
        return got

    def unmute(self, conn: Connection) -> None:
        """Undo :meth:`mute`, unless the doorbell is gone meanwhile."""
        self._reactor.unmute(conn.fd)

    def rang(self, conn: Connection) -> None:
        """A receiver waiting on *conn*'s muted doorbell woke: act on it unread.

        Reading the doorbell would put a system call, and unmuting it a
        turn of the poller task, between the wake-up and the message.  So
        the doorbell is held (rule 3) until :meth:`settle`.  The socket
        holds it only while no other task is parked waiting for a byte on
        it (a SPACE, say), and settles it before any later wait.
        """
        if not conn.alive:
            return
        self.held = conn
        conn.readable = True
        self._events.ready(conn, True, False)

    def settle(self) -> None:
        """Read the held doorbell, if any, and hand it back to the poller.

        Inside :meth:`keeping`, it stays muted instead (``kept``).  Any
        doorbell kept before is handed back too: a wait or read other than
        the one it was kept for comes first.  Does not retire anything, so
        it is safe in the middle of reading.
        """
        conn = self.held
        if conn is not None:
            self.held = None
            if self.keep and conn.alive:
                # DATA alone was acted on already: rang() assumed it, and
                # the announcement that follows looks at the ring again.
                self.on_doorbell(conn, assumed=_wire.DATA)  # (an end-of-file unregisters it)
                if conn.alive:
                    self.kept = conn
                return
            self.reopen(conn)
        elif self.kept is not None and not self.keep:
            self.release()

    def reopen(self, conn: Connection) -> None:
        """Read *conn*'s muted doorbell, then hand it back to the poller."""
        try:
            if conn.alive:
                self.on_doorbell(conn)
        finally:
            self.unmute(conn)

    # -- rule 5: spinning -------------------------------------------------------------

    def spin(self, spin_us: float) -> bool:
        """Watch the idle rings for up to *spin_us*; True if data arrived.

        The loop is C with the GIL released (``R.spin``, shmsock/_spin.c):
        it pauses between looks and yields the CPU every few microseconds,
        so it never holds a CPU that the peer needs to answer, and it stops
        early when every peer has announced that it sleeps (no answer is
        coming) or a doorbell has news (a byte, or a hang-up: a peer that
        died is handled by the poller at once, not after the bound).
        While we watch, writers need not ring, so the announcements are
        withdrawn; they are made again when the spin ends, on every ring
        but the one where data appeared.
        """
        self.unannounced.clear()  # among the idle connections below
        idle = [c for c in self._conns if c.alive and not c.readable]
        if not idle:
            return False
        for conn in idle:
            conn.rx.cancel_wait()
        # A peer that reads no data (PUSH, PUB) waits on our ring for
        # control messages alone, so its announcement there is no sign that
        # it sleeps until we answer: such a peer never ends the spin early.
        tx = [None if c.peer_type in READS_NO_DATA else c.tx for c in idle]
        got = R.spin([c.rx for c in idle], tx, [c.fd for c in idle], int(spin_us * 1000))
        if got >= 0:
            conn = idle[got]
            conn.readable = True
            self._events.ready(conn, True, False)
            if len(idle) > 1:
                # Another task may be parked on this socket, waiting for
                # the doorbells of the rings we stopped watching.
                self.announce([c for c in idle if c is not conn])
            return True
        return self.announce(idle)

    def look(self, take: Callable[..., _T], *args: Any) -> _T:
        """``take(*args)`` quietly (rule 5), for a spinning receiver's first look.

        If it raises WouldBlock, the spin that follows announces what it
        found empty; any other outcome announces it here.
        """
        self.quiet = True
        try:
            got = take(*args)
        except trio.WouldBlock:
            raise
        except BaseException:
            self._announce_unannounced()
            raise
        finally:
            self.quiet = False
        self._announce_unannounced()
        return got

    def _announce_unannounced(self) -> None:
        if self.unannounced:
            conns, self.unannounced = self.unannounced, []
            self.announce([c for c in conns if c.alive and not c.readable])

    def forget(self) -> None:
        """The socket closes: nothing is held or owed any more."""
        self.held = None
        self.kept = None
        self.unannounced.clear()
