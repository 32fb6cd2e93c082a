"""The shm transport of one socket: its parts, put together and closed in order.

How a connection comes to be (docs/layout.md tells it with the files):
``_listener`` binds and accepts, ``_dialer`` connects and dials again,
``_handshake`` reads the 64-byte HELLO/WELCOME/REFUSE, and both hand the
:class:`~._connection.Connection` they made to ``_connections``, whose
``_doorbell`` keeps the wake-up protocol.  ``_framing`` decides how a
message becomes records and ``_assembly`` how records become messages
again.  ``_layout`` names every file.  Nothing here waits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ... import _stats
from ..._errors import InvalidEndpoint
from ..._options import RING_SIZE_MIN, Options
from ..._stats import EndpointStats
from .. import Events, Pipe, SocketSpec, parse_name
from .._reactor import blank_descriptors
from ._bulk import BulkIn, BulkOut
from ._connections import ConnectionSet
from ._dialer import Dialer
from ._doorbell import Wakes
from ._fanout import ShmFanWriter
from ._fs import LazyDir
from ._listener import Listener
from ._segment import Segment

if TYPE_CHECKING:
    from .._reactor import Reactor

__all__ = ["ShmTransport"]


class ShmTransport:
    """The ``shm://`` endpoints and connections of one socket."""

    def __init__(self, spec: SocketSpec, events: Events, reactor: Reactor) -> None:
        # A socket that never sends (PULL) writes only positions and state
        # into its rings, so the smallest ring does.
        ring_size = spec.options.ring_size if spec.writes_data else RING_SIZE_MIN
        self.spec = spec
        self.dir = LazyDir()
        self.conns = ConnectionSet(spec, events, reactor, self.dir, ring_size)
        self.listener = Listener(spec, events, reactor, self.conns, self.dir, ring_size)
        self.dialer = Dialer(spec, events, reactor, self.conns, self.dir, ring_size)
        #: The wake-up protocol, for the socket's waiter (direct waits, spin).
        self.bells = self.conns.bells
        #: The wakes its fan-outs owe (rule 7 of _doorbell).
        self.wakes = Wakes(events.call_later)
        # A frame of at most inline_max bytes is a record of the ring (a
        # larger one goes through a bulk region: the general path), and
        # frames whose sizes plus FRAME_ALLOWANCE each add up to at most
        # that take at most that much of the ring (a record takes 24 bytes
        # and padding to 8 more than its payload), less than the half
        # check_atomic allows.
        self.max_simple = self.conns.framing.inline_max
        self.closed = False

    def bind(self, endpoint: str) -> None:
        self.listener.bind(parse_name(endpoint))

    def connect(self, endpoint: str) -> None:
        self.dialer.connect(parse_name(endpoint))

    def unbind(self, endpoint: str) -> None:
        name = parse_name(endpoint)
        if name not in self.listener.bindings:
            connected = any(slot.name == name for slot in self.dialer.slots)
            hint = " (it connected there: use disconnect)" if connected else ""
            raise InvalidEndpoint(f"this socket is not bound to {endpoint}{hint}")
        self.listener.unbind(name)

    def disconnect(self, endpoint: str) -> int:
        name = parse_name(endpoint)
        undone = self.dialer.disconnect(name)
        if not undone:
            bound = name in self.listener.bindings
            hint = " (it is bound there: use unbind)" if bound else ""
            raise InvalidEndpoint(f"this socket is not connected to {endpoint}{hint}")
        return undone

    def set_options(self, options: Options) -> None:
        """Use *options* from now on (ring_size and max_msg_size: for later connections).

        ``checksum`` applies at once to every ring this socket writes, from
        its next record.
        """
        self.spec = dataclasses.replace(self.spec, options=options)
        for part in (self.conns, self.listener, self.dialer):
            part.spec = self.spec
        self.conns.set_checksum(options.checksum)
        self.dialer.set_checksum(options.checksum)

    def send_control(self, frames: list[bytes]) -> None:
        """A control message to every connection, and to every dial in progress (rule 8)."""
        for conn in list(self.conns.conns):
            if conn.bound and conn.alive:
                conn.send_control(frames)
        self.dialer.send_control(frames)

    def fan_out(self, pipes: Sequence[Pipe]) -> ShmFanWriter:
        return ShmFanWriter(pipes, self.wakes)  # type: ignore[arg-type]

    def undelivered(self) -> bool:
        """Whether a connecting slot holds unread messages and has no binder to read them."""
        return bool(self.dialer.unattended())

    def count_lost(self) -> None:
        """Count what closing now loses (see ConnectionSet.count_lost and Dialer.unattended)."""
        with _stats.LOCK:
            for slot, unread in self.dialer.unattended(look=True):
                self.conns.retired.setdefault(slot.endpoint, EndpointStats()).dropped += unread
            self.conns.count_lost()

    def check_atomic(self, frames: list[bytes], size: int) -> None:
        self.conns.framing.check_atomic(frames, size)

    def check_usable(self) -> None:
        self.dialer.check_usable()

    def close(self) -> None:
        """Tear everything down: connections, slots, bindings, the directory.

        Nothing sent is taken back (rule 5): every ring this socket writes
        is only marked closed, and the readers attached now read it to the
        end.
        """
        if self.closed:
            return
        self.closed = True
        self.wakes.pay()
        self.wakes.closed = True
        self.conns.close()
        self.dialer.close()
        self.listener.close()
        self.dir.close()

    def disown(self) -> None:
        """Let go of a socket that belongs to the parent: this process is a fork() child.

        Every descriptor open at the fork is shared with the parent, and so
        is what it leads to: a byte sent on a doorbell reaches the parent's
        peer, a read takes the parent's byte, LOCK_UN releases the parent's
        flock.  The rings and files are shared too.  So the child touches
        none of it: the transport counts as closed (nothing here runs
        again, no file is removed, no ring header written, no doorbell
        rung); its descriptors become /dev/null (the reactor's are done by
        the reactor); its rings are unmapped, which is private to the child
        (and in the safe order: see Segment); its connections count as gone
        and are forgotten.  Never raises.
        """
        if self.closed:
            return
        self.closed = self.conns.closed = self.listener.closed = self.dialer.closed = True
        self.bells.forget()
        self.wakes.forget()
        fds: set[int] = set()
        segments: list[Segment] = []
        if self.dir.is_open():
            fds.add(self.dir.get().fd)
        fds.update(self.dialer.descriptors())
        for b in self.listener.bindings.values():
            fds.update((b.lock_fd, b.lsock.fileno()))
            if b.spare is not None:
                segments.append(b.spare[1])
        bulks: list[BulkIn | BulkOut] = []
        for slot in self.dialer.slots:
            fds.add(slot.lock_fd)
            if slot.dialing is not None:
                fds.add(slot.dialing.fileno())
            segments.append(slot.seg)
            bulks.append(slot.bulk)
        for conn in self.conns.conns:
            fds.add(conn.sock.fileno())
            conn.alive = conn.readable = conn.writable = False
            segments.append(conn.rx_seg)
            bulks.append(conn.bulk_in)
            if conn.owns_tx:
                segments.append(conn.tx_seg)
                if conn.bulk_out is not None:
                    bulks.append(conn.bulk_out)
        self.conns.conns.clear()
        # Bulk regions are the child's own mappings and memfd descriptors:
        # letting go of them changes nothing for the parent.
        for bulk in bulks:
            try:
                bulk.close()
            except Exception:
                pass
        for sg in segments:
            try:
                sg.close()
            except Exception:  # a buffer still exported: the finalizer will do
                pass
        blank_descriptors(fds)

    def stats(self) -> dict[str, EndpointStats]:
        """Counters and gauges by endpoint, read now; see shmsock._stats.

        Costs nothing until called: it reads the counters the rings keep in
        private memory, the retired totals, and (for the gauges) the ring
        positions.  Safe from another thread while this one runs, provided
        the caller holds ``_stats.LOCK`` (which retiring takes).  After
        close() only the retired totals remain.
        """
        out: dict[str, EndpointStats] = {}
        self.conns.stats(out)
        self.dialer.stats(out)
        self.listener.stats(out)
        return out
