"""The attached connections of one socket: attach, end, retire, count.

A connection lives from the handshake that made it (``_listener`` or
``_dialer`` calls :meth:`ConnectionSet.attach`) until the socket retires
it.  In between it may *end* (:meth:`ConnectionSet.gone`: the peer hung up,
or one of its rings failed validation), and then stays readable until what
the peer published is read (rule 5 of the transport contract), when it
reports ``finished``.  The socket retires it at its next safe point, never
in the middle of a read.

Statistics: a connection's counters are read from its rings' private state
when asked, and move into ``retired`` when it is retired, under
``_stats.LOCK``, so that a concurrent :meth:`ConnectionSet.stats` sees
them exactly once.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from ... import _bulkring as B
from ... import _ring as R
from ... import _stats
from ..._errors import CorruptMessage
from ..._stats import EndpointStats
from .. import Events, SocketSpec
from . import _wire
from ._bulk import bulk_bytes
from ._connection import Connection
from ._doorbell import Doorbells
from ._framing import Framing
from ._fs import LazyDir
from ._handshake import hung_up

if TYPE_CHECKING:
    from .._reactor import Reactor

__all__ = ["ConnectionSet", "add_counts"]

log = logging.getLogger("shmsock")


def add_counts(st: EndpointStats, conn: Connection) -> None:
    """Add *conn*'s counters to *st*."""
    # A connector's ring belongs to its slot, which counts it.
    if conn.owns_tx:
        st.messages_sent += conn.tx.messages
        st.bytes_sent += conn.tx.bytes + bulk_bytes(conn.bulk_out)
        st.dropped += conn.tx.dropped
    st.messages_received += conn.rx.messages
    bulk = conn.bulk_in
    st.bytes_received += conn.rx.bytes + bulk.bytes - bulk.descs * B.DESC_SIZE
    st.dropped += conn.dropped
    st.corrupt += conn.corrupt


class ConnectionSet:
    """The connections of one socket's shm transport (the ``Home`` of each)."""

    def __init__(
        self, spec: SocketSpec, events: Events, reactor: Reactor, d: LazyDir, ring_size: int
    ) -> None:
        self.spec = spec
        self.events = events
        self.reactor = reactor
        self.dir = d
        self.conns: list[Connection] = []
        self.rbuf = R.ReadBuffer(R.MIN_CAPACITY)  # one for all: one read at a time
        self.framing = Framing(ring_size)
        # A socket that reads no data (PUB) reads its peers' rings as soon
        # as they ring, for their control messages (rule 8 of the contract).
        self.bells = Doorbells(
            events, reactor, self.conns, self.gone, None if spec.reads_data else self.pump
        )
        # The wake-up protocol's steps, called by every connection.
        self.empty = self.bells.empty
        self.settle = self.bells.settle
        self.fetch = self.bells.fetch
        self.closed = False
        # Totals of retired connections by endpoint: counters never go back.
        self.retired: dict[str, EndpointStats] = {}

    def attach(self, conn: Connection) -> None:
        """A handshake made *conn*: it joins the set and the socket hears of it."""
        if conn.rx.capacity > self.rbuf.size:
            self.rbuf = R.ReadBuffer(conn.rx.capacity)
            if self.spec.reads_data:
                # Each message read becomes new bytes, up to a ring's worth
                # per read: let the allocator keep that much in its heap.
                # Without this, glibc gives the heap top back to the kernel
                # whenever more than 128 KiB of it is free, so a 64 KiB
                # frame's bytes were faulted in afresh each time (13 page
                # faults, more system time than the copies' user time).
                B.keep_in_heap(conn.rx.capacity)
        self.conns.append(conn)
        self.reactor.register(conn.fd, partial(self.bells.on_doorbell, conn))
        self.events.attached(conn)
        if not self.spec.reads_data:
            # Its greeting, before the socket can write to it (rule 8).
            self.pump(conn)
        conn.flush_control()
        if conn.control.owed:
            conn.control.owed = False
            conn.ring(_wire.DATA)

    def control(self, conn: Connection, messages: list[list[bytes]]) -> None:
        """Hand control messages from *conn*'s peer to the socket."""
        for frames in messages:
            if not conn.alive:
                return
            self.events.control(conn, frames)

    def pump(self, conn: Connection) -> None:
        """Read what *conn*'s peer wrote, for a socket that reads no data.

        Its control messages go to the socket at once.  A peer of such a
        socket never writes data (a SUB writes only subscriptions): data,
        or a record that fails validation, ends the connection as corrupt,
        and is logged; the socket's other connections go on.
        """
        while conn.alive and not conn.discard:
            try:
                got = conn.read_batch(self.rbuf)
            except CorruptMessage as exc:
                self._refuse_input(conn, exc.reason)
                return
            if got or conn.inbox:
                conn.inbox.clear()
                self._refuse_input(conn, "it sent data where only control messages may come")
                return
            if got is not None and conn.rx.prepare_wait():
                return  # empty, and announced: its next write rings
        return

    def _refuse_input(self, conn: Connection, reason: str) -> None:
        log.warning(
            "shmsock: %s: closing the connection to pid %d: %s", conn.endpoint, conn.pid, reason
        )
        conn.reject()

    def live(self, *, fresh: bool = False) -> int:
        """How many connections are alive; with *fresh*, read their doorbells first.

        A peer that closed a moment ago (to dial again at once, say) may
        have an end-of-file we have not handled yet.
        """
        if fresh:
            for conn in self.conns:
                if conn.alive:
                    self.bells.on_doorbell(conn)
        return sum(c.alive for c in self.conns)

    def gone(self, conn: Connection) -> None:
        """*conn* has ended: its doorbell hit end-of-file, or a ring failed checks."""
        if not conn.alive:
            return
        conn.alive = False
        conn.gone_for_writing()
        self.reactor.unregister(conn.fd)
        conn.close_doorbell()
        conn.owner.on_gone(conn)
        if conn.discard or not self.spec.reads_data:
            conn.readable = False
            conn.inbox.clear()
        else:
            conn.readable = True  # read what it published before it went
        self.events.gone(conn)
        if not conn.readable and not conn.inbox:
            self.events.finished(conn)

    def tx_corrupt(self, conn: Connection, exc: CorruptMessage) -> None:
        """A write found the peer's position in our ring impossible.

        Ends the connection as broken, as if the peer had gone (what it
        sent us is still read: that ring is not in doubt), and counts it as
        corrupt.  The sender never sees the error: the message goes to
        another pipe, or the pattern's "nowhere" rule applies.  The owner
        learns it (a connector's slot starts a fresh ring before it dials
        again: the next reader would find the same impossible position).
        """
        if not conn.alive:
            return
        log.warning(
            "shmsock: %s: closing the connection to pid %d: %s", conn.endpoint, conn.pid, exc.reason
        )
        conn.bad_records += 1
        conn.owner.on_corrupt(conn)
        self.gone(conn)

    def retire(self, conn: Connection) -> None:
        """The socket is done with finished *conn*: count it, release it."""
        if conn not in self.conns:
            return
        conn.asm.abandon()
        with _stats.LOCK:  # a concurrent stats() sees the counts exactly once
            self.conns.remove(conn)
            add_counts(self.retired.setdefault(conn.endpoint, EndpointStats()), conn)
        conn.release()
        if not self.closed:
            conn.owner.on_retired(conn)

    def stats(self, out: dict[str, EndpointStats]) -> None:
        """Add the connections' counters and gauges, and the retired totals, to *out*."""
        for endpoint, retired in list(self.retired.items()):
            out.setdefault(endpoint, EndpointStats()).add_counters(retired)
        for conn in list(self.conns):
            st = out.setdefault(conn.endpoint, EndpointStats())
            add_counts(st, conn)
            st.peers += conn.alive
            st.used_in += conn.rx_seg.ring_used() or 0
            if conn.owns_tx:
                st.used_out += conn.tx_seg.ring_used() or 0

    def end(self, conn: Connection, *, drain: bool) -> None:
        """End *conn* now, as closing the socket would, for unbind or disconnect.

        The ring we write to the peer is marked closed, never withdrawn: the
        peer still reads what we sent, then sees the connection end.  What
        the peer sent that we had taken and not handed out is dropped and
        counted; with *drain*, so is what is in its ring now (a ring nobody
        reads after us).  The socket hears ``gone`` and ``finished``.
        """
        was_alive = conn.alive
        if was_alive:
            if conn.owns_tx:
                conn.tx.close()
            conn.alive = False
            conn.gone_for_writing()
            self.reactor.unregister(conn.fd)
            # Our ring to a connector stays in place: the connector removes
            # it once it sees us go, and one that has not yet read our
            # WELCOME opens it first, so what we sent reaches it.  The
            # binder's ring to us we mapped: we are done with it (see close).
            if not conn.bound:
                self.dir.get().unlink(conn.rx_seg.name)
        if drain:
            conn.drop_unread()
        conn.lost += len(conn.inbox)
        conn.inbox.clear()
        conn.readable = False
        if self.bells.held is conn:
            self.bells.held = None
        if self.bells.kept is conn:
            self.bells.kept = None
        if was_alive:
            self.events.gone(conn)
        self.events.finished(conn)

    def count_lost(self) -> None:
        """Count what closing the socket now loses on its connections.

        Called just before :meth:`close`, with ``_stats.LOCK`` held.  What a
        live reader can still read is not lost: it maps our rings, and reads
        them to the end.  Lost are the messages we took and never handed
        out, those of a ring we own whose reader has hung up (its end-of-file
        not handled yet), and those a peer that has gone left in its ring to
        us (nobody else maps it, or will).
        """
        for conn in self.conns:
            conn.lost += len(conn.inbox)
            if not conn.alive or hung_up(conn.fd):
                if conn.alive:
                    conn.count_unread_as_lost()
                if not conn.discard:
                    try:
                        conn.lost += conn.rx.unread_messages()
                    except CorruptMessage:
                        pass

    def set_checksum(self, on: bool) -> None:
        for conn in self.conns:
            if conn.owns_tx:
                conn.tx.checksum = on

    def close(self) -> None:
        """End every connection: the socket is closing.

        Every ring this socket writes is marked closed; nothing in them is
        taken back (rule 5).  A reader that is attached reads them to the
        end after it sees the connection end, so the rings stay on file
        until the peer, if it is alive, has seen that (it may not have
        mapped its ring yet).
        """
        self.closed = True
        self.bells.forget()
        for conn in self.conns:
            if conn.owns_tx:
                conn.tx.close()
        for conn in list(self.conns):
            if conn.alive:
                conn.alive = False
                conn.gone_for_writing()
                self.reactor.unregister(conn.fd)
                if self.dir.is_open() and not conn.bound:
                    # The binder's ring to us: we mapped it, so we are done
                    # with it whatever the binder does.  Leaving it to a
                    # binder that is alive now would leak it when the binder
                    # closes at the same moment (it then sees us alive, and
                    # leaves it to us) or dies before it hears of us.
                    self.dir.get().unlink(conn.rx_seg.name)
                elif self.dir.is_open() and hung_up(conn.fd):
                    # Our ring to a connector that has gone and had not told
                    # us yet.  A live connector may not have mapped it yet
                    # (our WELCOME unread): it removes the ring itself.
                    self.dir.get().unlink(conn.tx_seg.name)
            conn.release()
        self.conns.clear()
