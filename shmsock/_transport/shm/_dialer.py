"""The connector's side: a slot at each endpoint, dialled and dialled again.

connect(NAME)
    Claim a free slot (``_slot``: its lock file and the ring this side
    writes), and dial ``NAME@sock`` with a HELLO.  If nobody
    listens there yet, an inotify watch on the directory says when a binder
    renames its socket into place; dialling happens then.
the slot's life
    A slot lives from connect() to close, across any number of binders:
    the ring it writes stays, so what was written while no binder was
    there, or before one died, is read by the next one.  When the binder
    goes, the slot dials again; when a binder refuses, the slot keeps the
    reason (``check_usable`` raises it) and waits for the next binder.
    When the binder says our ring is corrupt, the next dial brings a fresh
    one.

Nothing here waits: dials that must be retried later go through
``Events.call_later``.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import partial
from typing import TYPE_CHECKING

from ... import _stats
from ..._errors import CorruptMessage, ShmsockError, UnsafeFile, VersionMismatch
from ..._stats import EndpointStats
from ..._types import SocketType
from .. import Events, SocketSpec
from . import _handshake, _wire
from . import _segment as seg
from ._bulk import bulk_bytes
from ._bulksend import pass_region
from ._connection import Connection
from ._connections import ConnectionSet
from ._fs import LazyDir
from ._handshake import PendingHandshake, hung_up
from ._inotify import DirWatch
from ._region import recv_with_fds, send_fds
from ._slot import Slot, claim

if TYPE_CHECKING:
    from .._reactor import Reactor

__all__ = ["Dialer"]

log = logging.getLogger("shmsock")


class Dialer:
    """Every endpoint one socket connects to."""

    def __init__(
        self,
        spec: SocketSpec,
        events: Events,
        reactor: Reactor,
        conns: ConnectionSet,
        d: LazyDir,
        ring_size: int,
    ) -> None:
        self.spec = spec
        self.events = events
        self.reactor = reactor
        self.conns = conns
        self.dir = d
        self.ring_size = ring_size
        self.slots: list[Slot] = []
        self._watch: DirWatch | None = None
        self.closed = False

    # -- connect ------------------------------------------------------------------

    def connect(self, name: str) -> None:
        slot = claim(self.dir, name, self.spec, self.ring_size, self.dial)
        self.slots.append(slot)
        try:
            if self.spec.greeting is not None:
                slot.seg.reserve()  # the greeting is written before the HELLO
            self.dial(slot)
            # Allocating the ring is the slowest step of a connect, so it
            # overlaps the binder's answer to our HELLO.  Nothing can be
            # written to the ring before this returns: the connection exists
            # only once the poller has read the WELCOME.
            slot.seg.reserve()
        except BaseException:
            # A binder that attached our ring already sees the connection
            # end, as when a connector dies, and drops its side.
            self.slots.remove(slot)
            self.release(slot)
            raise

    def release(self, slot: Slot) -> None:
        """End *slot*'s dial, unmap its ring, and remove its files."""
        dialing = slot.dialing is not None
        self._abort_dial(slot)
        if dialing and self.dir.is_open():
            # The binder may have made its ring for us and answered, then
            # closed or unbound while we had not read the answer: it leaves
            # that ring to us, and only we know of it.
            slot.drop_binder_rings()
        slot.close()

    def _watch_for_binders(self) -> bool:
        """Start watching the directory for binders; True if it just started.

        Only a connector that found no binder watches: an inotify watch
        wakes us on every file created in the directory, and closing one
        blocks for milliseconds (the kernel waits for an RCU grace period).
        """
        if self._watch is not None or self.closed:
            return False
        self._watch = DirWatch(self.dir.get().fd)
        self.reactor.register(self._watch.fd, self._on_watch)
        return True

    def _on_watch(self) -> None:
        assert self._watch is not None
        appeared = {n[: -len("@sock")] for n in self._watch.read_names() if n.endswith("@sock")}
        for slot in self.slots:
            if slot.name in appeared:
                self.dial(slot)

    # -- dial ---------------------------------------------------------------------

    def dial(self, slot: Slot) -> None:
        """Try to reach the binder now; on failure wait for the next one."""
        if self.closed or slot.peer is not None or slot.dialing is not None:
            return
        if slot.replace_ring and not slot.new_ring(self.spec, self.ring_size, self.conns.retired):
            self._watch_for_binders()  # the next binder brings the next try
            return
        d = self.dir.get()
        sockname = slot.files.sock
        try:
            d.check_socket(sockname)
        except FileNotFoundError:
            # Look once more after the watch starts, so that a binder that
            # appeared in between is not missed.
            if self._watch_for_binders():
                self.dial(slot)
            return
        except UnsafeFile as exc:
            self._refused(slot, exc)  # a sound socket bound later brings the next try
            return
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            conn.connect(d.sockpath(sockname))
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()  # a dead binder's socket: the next binder replaces it
            if self._watch_for_binders():
                self.dial(slot)
            return
        except BlockingIOError:
            conn.close()  # its backlog is full: try again shortly
            self.events.call_later(0.001, partial(self._dial_later, slot))
            return
        hello = _wire.Handshake(
            _wire.Kind.HELLO,
            self.spec.kind,
            slot.index,
            os.getpid(),
            slot.seg.capacity,
            max_msg=self.spec.options.max_msg_size,
            identity=self.spec.options.routing_id or b"",
        )
        binder_uid = _handshake.peer_cred(conn)[1]
        if binder_uid != os.geteuid():
            # The socket file is ours (checked above), but SO_PEERCRED names
            # whoever listens on it: another user's process is never talked
            # to.  Say why, and wait for the next binder as for a refusal.
            conn.close()
            self._refused(
                slot,
                ConnectionRefusedError(
                    f"not connecting to {slot.endpoint}: the socket bound there runs as"
                    f" another user (uid {binder_uid}, not {os.geteuid()})"
                ),
            )
            return
        if self.spec.greeting is not None and not self._greet(slot):
            conn.close()
            self.dial(slot)  # with a fresh ring (at most once: it takes the greeting)
            return
        try:
            # The regions of our ring go with the HELLO, before the binder
            # can read a record naming one.
            send_fds(conn, hello.pack(), slot.bulk.fds())
        except OSError:
            # The binder died between our connect and our HELLO (EPIPE,
            # ECONNRESET): as with a dead binder's socket above, the next
            # binder brings the next try.  This recurses at most once, since
            # the watch starts only once.
            conn.close()
            if self._watch_for_binders():
                self.dial(slot)
            return
        slot.dialing = conn
        slot.refused = None  # an earlier binder's refusal; this one may accept
        hs = PendingHandshake(conn)
        self.reactor.register(conn.fileno(), partial(self._on_welcome, slot, hs))

    def _greet(self, slot: Slot) -> bool:
        """Write the socket's greeting into the slot's ring, before its HELLO.

        False when the ring turns out corrupt (the binder we had moved its
        position impossibly): the next dial brings a fresh one.
        """
        assert self.spec.greeting is not None
        try:
            slot.control.greet(self.spec.greeting())
        except CorruptMessage:
            slot.replace_ring = True
            return False
        return True

    def send_control(self, frames: list[bytes]) -> None:
        """A control message into the ring of every slot dialling or connected (rule 8)."""
        for slot in self.slots:
            peer = slot.peer
            if peer is not None:
                peer.send_control(frames)
            elif slot.dialing is not None:
                try:
                    # Its binder reads it after our greeting; it may have
                    # read the greeting and gone to sleep already.
                    if slot.control.send(frames):
                        slot.control.owed = True
                except CorruptMessage:
                    slot.replace_ring = True

    def _dial_later(self, slot: Slot) -> None:
        # Only when a binder's listen backlog overflows, or it dropped us
        # after its WELCOME; never to find one.
        self.dial(slot)
        self.events.changed()

    def _redial(self, slot: Slot) -> None:
        """Abort this dial and dial again shortly (the binder dropped us after WELCOME).

        What the binder said after its WELCOME is read first: if it found
        our ring corrupt, the next dial brings a fresh one.  The delay
        doubles with each such failure in a row (1 ms up to 64 ms), so a
        binder that keeps dropping us cannot make us spin.
        """
        if slot.dialing is not None:
            try:
                said, fds = recv_with_fds(slot.dialing, 4096)
                for fd in fds:  # a binder passes none: nothing of ours to map
                    os.close(fd)
            except (OSError, CorruptMessage):
                said = b""
            if _wire.CORRUPT in said:
                slot.replace_ring = True
        self._abort_dial(slot)
        slot.drop_binder_rings()
        delay = 0.001 * (1 << min(slot.redials, 6))
        slot.redials += 1
        self.events.call_later(delay, partial(self._dial_later, slot))

    def _on_welcome(self, slot: Slot, hs: PendingHandshake) -> None:
        try:
            msg = hs.read()
        except VersionMismatch as exc:
            self._refused(
                slot,
                VersionMismatch(exc.found, exc.expected, f"the socket bound at {slot.endpoint}"),
            )
            return
        except (ConnectionError, ValueError, ShmsockError, OSError) as exc:
            self._abort_dial(slot)
            # The binder died, or garbled its answer, before we attached: a
            # ring it was making for this slot (finished or not) is orphaned,
            # and this slot's holder is the only one who knows it.
            slot.drop_binder_rings()
            if isinstance(exc, ConnectionError):
                # A binder hangs up on a good HELLO only by dying or closing;
                # the next one may be there already (if not, this watches).
                self.dial(slot)
            return
        if msg is None:
            return
        for fd in hs.take_fds():  # a binder passes none: nothing of ours to map
            os.close(fd)
        self.reactor.unregister(hs.sock.fileno())
        if msg.kind == _wire.Kind.REFUSE:
            self._refused(slot, _wire.refusal_error(msg, slot.endpoint))
            return
        if msg.kind != _wire.Kind.WELCOME or not msg.token:
            self._abort_dial(slot)
            return
        if msg.identity and not self._identity_ok(slot, msg):
            return
        try:
            rx_seg = seg.open_existing(
                self.dir.get(), slot.files.binder_ring(slot.index, msg.token), seg.ROLE_BINDER
            )
            try:
                rx = rx_seg.consumer()
            except BaseException:
                rx_seg.close()
                raise
        except OSError as exc:
            # Gone already, most likely: the binder dropped the connection
            # right after its WELCOME (it closed, or found our ring corrupt).
            # Not a refusal: the binder may still be there, so dial again.
            log.info("shmsock: %s: cannot open the binder's ring: %s", slot.endpoint, exc)
            self._redial(slot)
            return
        except ShmsockError as exc:
            log.warning("shmsock: %s: cannot use the binder's ring: %s", slot.endpoint, exc)
            self._refused(slot, exc)  # never trusted: senders and receivers see why
            return
        slot.dialing = None
        slot.redials = 0
        slot.refused = None
        options = self.spec.options
        conn = Connection(
            home=self.conns,
            owner=slot,
            bound=False,
            sock=hs.sock,
            tx=slot.tx,
            tx_seg=slot.seg,
            rx=rx,
            rx_seg=rx_seg,
            pid=_handshake.peer_cred(hs.sock)[0],
            slot=slot.index,
            token=msg.token,
            peer_type=SocketType(msg.sock_type),
            peer_limit=msg.accepts,
            max_msg=options.max_msg_size,
            control=slot.control,
            bulk_out=slot.bulk,
            peer_identity=msg.identity,
        )
        slot.peer = conn
        slot.bulk.send_region = partial(pass_region, conn.sock)  # (not conn: no cycle)
        self.conns.attach(conn)

    def _identity_ok(self, slot: Slot, msg: _wire.Handshake) -> bool:
        """Whether the binder's routing id may be had; else hang up on it.

        Only a ROUTER says no: it has a live peer of that id.  The binder
        asked for the id, so the binder is told (the doorbell byte
        ID_REFUSED, then end-of-file) and logs it; this side waits for the
        next binder, as after a refusal, without an error of its own.
        """
        identity = msg.identity
        refuse = _wire.bad_identity(identity)
        if not refuse and self.events.identity_in_use(identity):
            self.conns.live(fresh=True)  # a peer of that id may have just gone
            refuse = self.events.identity_in_use(identity)
        if not refuse:
            return True
        log.warning(
            "shmsock: %s: not connecting: the binder's routing id %r %s",
            slot.endpoint,
            identity,
            "starts with a zero byte"
            if _wire.bad_identity(identity)
            else "is that of another peer of this ROUTER",
        )
        if slot.dialing is not None:
            try:
                slot.dialing.send(_wire.ID_REFUSED)
            except OSError:
                pass
        self._abort_dial(slot)
        slot.drop_binder_rings()
        self._watch_for_binders()
        return False

    def _refused(self, slot: Slot, exc: Exception) -> None:
        """The binder will not have us: say why, and wait for the next binder.

        Not again with this binder, which would refuse again, but with the
        next socket that binds the endpoint: the watch reports it.
        """
        slot.refused = exc
        self._abort_dial(slot)
        self._watch_for_binders()
        self.events.changed()

    def _abort_dial(self, slot: Slot) -> None:
        if slot.dialing is not None:
            self.reactor.unregister(slot.dialing.fileno())
            slot.dialing.close()
            slot.dialing = None

    def disconnect(self, name: str) -> int:
        """End this socket's connections to *name*; release its slots there and their files.

        Undoes every connect() to *name*; returns how many (0: none, and
        nothing was done).  The binder reads what we sent, then sees us go;
        what it sent that we had not received is dropped and counted.
        """
        slots = [slot for slot in self.slots if slot.name == name]
        for slot in slots:
            slot.tx.close()
        for slot in slots:
            if slot.peer is not None:
                peer, slot.peer = slot.peer, None
                self.conns.end(peer, drain=True)
        for slot in slots:
            with _stats.LOCK:  # the ring's counts move to the retired totals
                self.slots.remove(slot)
                slot.retire_counts(self.conns.retired)
            self.release(slot)
        if slots:
            self.events.changed()
        return len(slots)

    def unattended(self, *, look: bool = False) -> list[tuple[Slot, int]]:
        """Slots whose ring holds unread messages and no binder to read them.

        Each with the count of those messages.  With *look*, a binder that
        has hung up counts as gone before its end-of-file is handled.
        """
        out = []
        for slot in self.slots:
            peer = slot.peer
            if peer is not None and peer.alive and not (look and hung_up(peer.fd)):
                continue
            try:
                unread = slot.tx.unread_messages()
            except CorruptMessage:
                continue  # the reader's position is impossible: nothing to count on
            if unread:
                out.append((slot, unread))
        return out

    def set_checksum(self, on: bool) -> None:
        for slot in self.slots:
            slot.tx.checksum = on

    def close(self) -> None:
        """Let go of every slot: its dial, its ring (marked closed first), its files."""
        self.closed = True
        for slot in self.slots:
            slot.tx.close()
        for slot in self.slots:
            self.release(slot)
        self.slots.clear()
        if self._watch is not None:
            self.reactor.unregister(self._watch.fd)
            self._watch.close()
            self._watch = None

    def descriptors(self) -> set[int]:
        """Its own descriptors (the directory watch), for a fork() child to let go."""
        return set() if self._watch is None else {self._watch.fd}

    def check_usable(self) -> None:
        """Raise the reason a connect can not succeed, if one is known."""
        for slot in self.slots:
            if slot.refused is not None and slot.peer is None:
                raise slot.refused

    def stats(self, out: dict[str, EndpointStats]) -> None:
        for slot in list(self.slots):
            st = out.setdefault(slot.endpoint, EndpointStats())
            st.messages_sent += slot.tx.messages
            st.bytes_sent += slot.tx.bytes + bulk_bytes(slot.bulk)
            st.used_out += slot.seg.ring_used() or 0
