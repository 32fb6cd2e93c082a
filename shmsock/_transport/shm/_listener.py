"""The binder's side: bind an endpoint, accept connectors, answer their HELLO.

bind(NAME)
    Take the flock on ``NAME@lock`` (held for the binder's life; a dead
    binder's lock is free, so its endpoint is taken over, and a live one's
    is not, so it raises AddressInUse).  Clear what a dead binder left,
    listen on a fresh Unix socket and rename it to ``NAME@sock``.
accept
    A connector sends HELLO with its slot number.  The binder checks it
    (version, socket type, room for another peer), maps the connector's
    ring ``NAME@<k>.c``, creates its own ``NAME@<k>.b.<token>`` (from the
    spare it made ahead of time, when it has one) and answers WELCOME with
    the token, or REFUSE with a reason.  The Unix socket stays open as the
    connection's doorbell.

Nothing here waits: the listening socket and each handshake in progress
are registered in the socket's reactor, and their handlers do the rest.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import partial
from typing import TYPE_CHECKING

from ..._errors import (
    AddressInUse,
    CorruptMessage,
    SharedMemoryFull,
    ShmsockError,
    VersionMismatch,
)
from ..._stats import EndpointStats
from ..._types import SocketType
from .. import Events, SocketSpec
from . import _handshake, _wire
from . import _segment as seg
from ._bulk import BulkIn
from ._connection import Connection
from ._connections import ConnectionSet
from ._control import ControlOut
from ._fs import LazyDir, lock_file
from ._handshake import PendingHandshake, hung_up
from ._layout import MAX_SLOTS, EndpointFiles, reclaim_dead_slot

if TYPE_CHECKING:
    from .._reactor import Reactor

__all__ = ["Binding", "Listener"]

log = logging.getLogger("shmsock")


class Binding:
    """An endpoint this socket is bound to; the owner of the connections it accepts."""

    __slots__ = ("endpoint", "files", "listener", "lock_fd", "lsock", "name", "spare")

    def __init__(self, listener: Listener, name: str, lock_fd: int, lsock: socket.socket) -> None:
        self.listener = listener
        self.name = name
        self.files = EndpointFiles(name)
        self.endpoint = self.files.endpoint
        self.lock_fd = lock_fd
        self.lsock = lsock
        # A ring made ahead of time for the next connector (NAME@spare.TOKEN),
        # so that creating and first touching it is off the connect path.
        self.spare: tuple[str, seg.Segment] | None = None

    def on_gone(self, conn: Connection) -> None:
        self.listener.dir.get().unlink(conn.tx_seg.name)  # the mapping stays until retired

    def on_corrupt(self, conn: Connection) -> None:
        pass  # our own ring is ours to trust; the connector replaces its own

    def on_retired(self, conn: Connection) -> None:
        self.listener.reclaim(self.name, conn.slot)


class Listener:
    """Every endpoint one socket binds."""

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
        self.bindings: dict[str, Binding] = {}
        # Handshakes in progress, by descriptor: the binding each came to.
        self._pending: dict[int, tuple[Binding, PendingHandshake]] = {}
        self.closed = False

    # -- bind ---------------------------------------------------------------------

    def bind(self, name: str) -> None:
        files = EndpointFiles(name)
        if name in self.bindings:
            raise AddressInUse(f"{files.endpoint} is already bound by this socket")
        d = self.dir.get()
        lock_fd = lock_file(d, files.lock, create=True)
        if lock_fd is None:
            raise AddressInUse(f"{files.endpoint} is bound by a live socket")
        tmpname = files.sock_temp(os.urandom(4).hex())
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            self.reclaim_stale_slots(name)
            for entry in d.listdir():  # a dead binder's spare ring
                if entry.startswith(files.spare_prefix):
                    d.unlink(entry)
            d.unlink(files.sock)  # a dead binder's
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, f"{os.getpid()} {self.spec.kind.name}\n".encode(), 0)
            # Listen first, then rename into place: a connector that sees
            # the name can connect at once.
            lsock.bind(d.sockpath(tmpname))
            os.chmod(d.sockpath(tmpname), 0o600)
            lsock.listen(socket.SOMAXCONN)
            os.rename(tmpname, files.sock, src_dir_fd=d.fd, dst_dir_fd=d.fd)
        except BaseException:
            lsock.close()
            d.unlink(tmpname)
            d.unlink(files.lock)
            os.close(lock_fd)
            raise
        b = self.bindings[name] = Binding(self, name, lock_fd, lsock)
        self.reactor.register(lsock.fileno(), partial(self._on_listen, b))
        self._make_spare(b)

    def _make_spare(self, b: Binding) -> None:
        """Create the binding's spare ring; without one, accept creates it."""
        if self.closed or b.spare is not None or self.bindings.get(b.name) is not b:
            return
        token = os.urandom(4).hex()
        try:
            sg = seg.create(
                self.dir.get(),
                b.files.spare(token),
                self.ring_size,
                self.spec.kind,
                seg.ROLE_BINDER,
            )
        except (OSError, ShmsockError) as exc:
            log.debug("shmsock: %s: no spare ring: %s", b.endpoint, exc)
            return
        b.spare = (token, sg)

    def _drop_spare(self, b: Binding) -> None:
        if b.spare is not None:
            _token, sg = b.spare
            b.spare = None
            sg.close()
            self.dir.get().unlink(sg.name)

    def reclaim_stale_slots(self, name: str) -> None:
        for k in EndpointFiles(name).slot_indices(self.dir.get().listdir()):
            self.reclaim(name, k)

    def reclaim(self, name: str, k: int) -> bool:
        """Remove slot k's files if no live connector holds it (see reclaim_slot)."""
        if self.closed:
            return False
        return reclaim_dead_slot(self.dir.get(), name, k)

    # -- accept -------------------------------------------------------------------

    def _on_listen(self, b: Binding) -> None:
        while True:
            try:
                conn, _ = b.lsock.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of descriptors, say: try on the next event
                log.warning("shmsock: accept on %s failed: %s", b.endpoint, exc)
                return
            conn.setblocking(False)
            if _handshake.peer_cred(conn)[1] != os.geteuid():
                conn.close()
                continue
            hs = PendingHandshake(conn)
            self._pending[conn.fileno()] = (b, hs)
            self.reactor.register(conn.fileno(), partial(self._on_hello, b, hs))
            # A connector sends its HELLO right after connecting, so it is
            # usually here already: handle it without another poller round.
            self._on_hello(b, hs)

    def _done(self, hs: PendingHandshake) -> None:
        """The handshake is over, one way or the other: forget its descriptor."""
        fd = hs.sock.fileno()
        self._pending.pop(fd, None)
        self.reactor.unregister(fd)

    def _drop(self, hs: PendingHandshake) -> None:
        self._done(hs)
        hs.close()

    def _refuse(
        self, hs: PendingHandshake, reason: _wire.Refusal, mismatch: VersionMismatch | None = None
    ) -> None:
        self._done(hs)
        refusal = _wire.Handshake(
            _wire.Kind.REFUSE,
            self.spec.kind,
            reason=reason,
            version_found=mismatch.found if mismatch else 0,
            version_expected=mismatch.expected if mismatch else 0,
        )
        try:
            hs.sock.send(refusal.pack())
        except OSError:
            pass
        hs.close()

    def _on_hello(self, b: Binding, hs: PendingHandshake) -> None:
        try:
            msg = hs.read()
        except VersionMismatch as exc:
            # Another shmsock version: say so in our handshake's format,
            # which it can tell from its own by the version field.
            log.warning(
                "shmsock: %s: refused pid %d: %s", b.endpoint, _handshake.peer_cred(hs.sock)[0], exc
            )
            self._refuse(hs, _wire.Refusal.VERSION, exc)
            return
        except (ConnectionError, ValueError, ShmsockError, OSError):
            self._drop(hs)
            return
        if msg is None:
            return
        if msg.kind != _wire.Kind.HELLO or not 0 <= msg.slot < MAX_SLOTS:
            self._drop(hs)
            return
        if msg.sock_type not in self.spec.compatible:
            self._refuse(hs, _wire.Refusal.INCOMPATIBLE)
            return
        if self.closed or self.bindings.get(b.name) is not b:
            self._refuse(hs, _wire.Refusal.SHUTTING_DOWN)
            return
        limit = self.spec.max_peers
        if (
            limit is not None
            and self.conns.live() >= limit
            and self.conns.live(fresh=True) >= limit
        ):
            self._refuse(hs, _wire.Refusal.BUSY)
            return
        if msg.identity and not self._identity_ok(b, hs, msg):
            return
        d = self.dir.get()
        try:
            rx_seg = seg.open_existing(d, b.files.connector_ring(msg.slot), seg.ROLE_CONNECTOR)
        except (OSError, ShmsockError) as exc:
            if hung_up(hs.sock.fileno()):
                # The connector sent its HELLO and went (it closed at once,
                # say, and removed its ring) before we read it.  Nothing to
                # refuse and nothing wrong; its dead slot is reclaimed if it
                # left anything.  A connector still waiting for our answer
                # is told, and the problem logged.
                log.debug(
                    "shmsock: %s: slot %d hung up before its HELLO was read: %s",
                    b.endpoint,
                    msg.slot,
                    exc,
                )
                self._drop(hs)
                self.reclaim(b.name, msg.slot)
                return
            log.warning(
                "shmsock: %s: cannot use the ring of slot %d: %s", b.endpoint, msg.slot, exc
            )
            if isinstance(exc, VersionMismatch):
                self._refuse(hs, _wire.Refusal.VERSION, exc)
                return
            self._refuse(hs, _wire.Refusal.BAD_SEGMENT)
            # An unfinished or broken ring whose connector has died (its
            # slot lock is free) is removed; a live connector's is not.
            self.reclaim(b.name, msg.slot)
            return
        options = self.spec.options
        try:
            rx = rx_seg.consumer(resync=True)
            # Its ring's bulk regions came with the HELLO: checked and mapped
            # before we answer, refused as a bad ring would be.
            bulk_in = BulkIn(rx, options.max_msg_size, resync=True)
            try:
                bulk_in.add(hs.take_fds())
            except BaseException:
                bulk_in.close()
                raise
        except CorruptMessage as exc:
            rx_seg.close()
            log.warning("shmsock: %s: ring of slot %d is corrupt: %s", b.endpoint, msg.slot, exc)
            self._refuse(hs, _wire.Refusal.BAD_SEGMENT)
            return
        try:
            token, tx_seg = self._binder_ring(b, msg.slot)
        except (OSError, ShmsockError) as exc:
            log.warning("shmsock: %s: cannot create a ring: %s", b.endpoint, exc)
            bulk_in.close()
            rx_seg.close()
            full = isinstance(exc, SharedMemoryFull)
            self._refuse(hs, _wire.Refusal.NO_MEMORY if full else _wire.Refusal.SHUTTING_DOWN)
            return
        tx = tx_seg.producer(checksum=options.checksum)
        control = ControlOut(tx)
        if self.spec.greeting is not None:
            # Before the WELCOME: the connector reads it as it attaches
            # (rule 8).  A fresh ring has room for it, or for what of it fits.
            control.greet(self.spec.greeting())
        self._done(hs)
        welcome = _wire.Handshake(
            _wire.Kind.WELCOME,
            self.spec.kind,
            msg.slot,
            os.getpid(),
            tx_seg.capacity,
            token,
            max_msg=options.max_msg_size,
            identity=(options.routing_id or b"") if msg.reads_identity else b"",
        )
        try:
            hs.sock.send(welcome.pack())
        except OSError:
            tx_seg.close()
            d.unlink(tx_seg.name)
            bulk_in.close()
            rx_seg.close()
            hs.close()
            return
        conn = Connection(
            home=self.conns,
            owner=b,
            bound=True,
            sock=hs.sock,
            tx=tx,
            tx_seg=tx_seg,
            rx=rx,
            rx_seg=rx_seg,
            pid=_handshake.peer_cred(hs.sock)[0],
            slot=msg.slot,
            token=token,
            peer_type=SocketType(msg.sock_type),
            peer_limit=msg.accepts,
            max_msg=options.max_msg_size,
            control=control,
            bulk_in=bulk_in,
            peer_identity=msg.identity,
        )
        self.conns.attach(conn)

    def _identity_ok(self, b: Binding, hs: PendingHandshake, msg: _wire.Handshake) -> bool:
        """Whether the routing id the connector stated may be had; else refuse it."""
        identity = msg.identity
        if _wire.bad_identity(identity):
            log.warning(
                "shmsock: %s: refused pid %d: its routing id %r starts with a zero byte",
                b.endpoint,
                _handshake.peer_cred(hs.sock)[0],
                identity,
            )
            self._refuse(hs, _wire.Refusal.BAD_ROUTING_ID)
            return False
        # A peer of that id that went a moment ago (to come back at once, as
        # a restarted worker does) may have an end-of-file not handled yet.
        if self.events.identity_in_use(identity):
            self.conns.live(fresh=True)
            if self.events.identity_in_use(identity):
                log.info(
                    "shmsock: %s: refused pid %d: routing id %r is in use",
                    b.endpoint,
                    _handshake.peer_cred(hs.sock)[0],
                    identity,
                )
                self._refuse(hs, _wire.Refusal.ROUTING_ID_IN_USE)
                return False
        return True

    def _binder_ring(self, b: Binding, k: int) -> tuple[str, seg.Segment]:
        d = self.dir.get()
        if b.spare is not None:
            token, sg = b.spare
            b.spare = None
            ring_name = b.files.binder_ring(k, token)
            try:
                os.rename(sg.name, ring_name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
            except OSError:
                sg.close()
                d.unlink(sg.name)
            else:
                sg.name = ring_name
                # Not in the round that accepted a connector: its first
                # message should not wait behind the next connector's ring.
                self.events.call_later(0.002, partial(self._make_spare, b))
                return token, sg
        for _ in range(8):
            token = os.urandom(4).hex()
            try:
                return token, seg.create(
                    d,
                    b.files.binder_ring(k, token),
                    self.ring_size,
                    self.spec.kind,
                    seg.ROLE_BINDER,
                )
            except FileExistsError:
                continue
        raise ShmsockError("could not name a ring segment")  # pragma: no cover

    # -- the end ------------------------------------------------------------------

    def unbind(self, name: str) -> None:
        """Stop accepting at *name*, end the connections accepted there, remove its files.

        What a live connector sent that we had not taken from its ring stays
        there, for the next socket bound at the endpoint (as when a binder
        dies); see ConnectionSet.end for the rest.
        """
        b = self.bindings.pop(name)
        d = self.dir.get()
        # First the listening socket and its name, so that a connector that
        # sees its connection end and dials again finds nobody, and waits
        # for the next binder.
        self.reactor.unregister(b.lsock.fileno())
        b.lsock.close()
        d.unlink(b.files.sock)
        self._drop_spare(b)
        for binding, hs in list(self._pending.values()):
            if binding is b:
                # Hang up: its connector dials again (and finds nobody)
                # rather than being refused.
                self._drop(hs)
        for conn in [c for c in self.conns.conns if c.owner is b]:
            # A gone connector's ring is read by nobody after this.
            self.conns.end(conn, drain=not conn.alive)
        try:
            self.reclaim_stale_slots(name)  # as close() does
        except OSError as exc:
            log.warning("shmsock: %s: leaving stale slots: %s", b.endpoint, exc)
        d.unlink(b.files.lock)
        os.close(b.lock_fd)
        self.events.changed()

    def close(self) -> None:
        """Stop listening everywhere and remove what this socket's bindings leave."""
        self.closed = True
        for _b, hs in list(self._pending.values()):
            self._drop(hs)  # and the descriptors its HELLO brought
        d = self.dir.get() if self.dir.is_open() else None
        for b in self.bindings.values():
            self.reactor.unregister(b.lsock.fileno())
            b.lsock.close()
            if d is not None:
                self._drop_spare(b)
                # Slots of connectors that died before we ever heard of them
                # (say, killed between claiming a slot and dialling) would
                # stay until the next bind: remove them now.
                try:
                    for k in b.files.slot_indices(d.listdir()):
                        reclaim_dead_slot(d, b.name, k)
                except OSError as exc:
                    log.warning("shmsock: %s: leaving stale slots: %s", b.endpoint, exc)
                d.unlink(b.files.sock)
                d.unlink(b.files.lock)
            os.close(b.lock_fd)
        self.bindings.clear()

    def stats(self, out: dict[str, EndpointStats]) -> None:
        for b in list(self.bindings.values()):
            out.setdefault(b.endpoint, EndpointStats())  # no peers yet: still shown
