"""The transport of one socket: endpoints, slots, connections, wake-ups.

How a connection comes to be (see also ``_fs`` for the file names):

bind(NAME)
    Take the flock on ``NAME@lock`` (held for the binder's life; a dead
    binder's lock is free, so its endpoint is taken over, and a live one's
    is not, so it raises AddressInUse).  Clear what a dead binder left,
    listen on a fresh Unix socket and rename it to ``NAME@sock``.
connect(NAME)
    Claim a free slot by creating ``NAME@<k>.lock`` with O_EXCL and taking
    its flock (the lock-file accept), create the ring this side writes
    (``NAME@<k>.c``), and dial ``NAME@sock``.  If nobody listens there yet,
    an inotify watch on the directory says when a binder renames its socket
    into place; dialling happens then.  Nothing here ever waits.
handshake
    The connector sends HELLO with its slot; the binder maps the
    connector's ring, creates its own (``NAME@<k>.b.<token>``) and answers
    WELCOME with the token; the connector maps that.  The Unix socket stays
    open as the connection's doorbell.

One background task, :meth:`Engine.run`, waits on one epoll descriptor that
holds every listening socket, every handshake in progress, every doorbell
and the inotify watch, however many peers there are.  Rings are read only
when a peer's doorbell says so or when the reader has not yet found them
empty, so no operation scans every ring.

A doorbell's end-of-file is the death notice: the kernel closes a dead
process's descriptors, so a SIGKILLed peer is noticed at once.  What it
had published is still read; then the connection is retired, its files
reclaimed under the slot lock.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import trio

from .. import _ring as R
from .. import _stats
from .._errors import (
    AddressInUse,
    CorruptMessage,
    SegmentError,
    SharedMemoryFull,
    ShmsockError,
    StateError,
    UnsafeFile,
    VersionMismatch,
)
from .._options import RING_SIZE_MIN, Options
from .._stats import EndpointStats
from .._types import SocketType
from ._peer import Peer, Queued, corrupt_reason
from .shm import _segment as seg
from .shm import _wire
from .shm._fs import UserDir, lock_file, try_lock
from .shm._inotify import DirWatch
from .shm._layout import reclaim_slot

log = logging.getLogger("shmsock")

MAX_SLOTS: Final = 4096
_CRED = struct.Struct("3i")
_EPOLL_IN: Final = select.EPOLLIN | select.EPOLLRDHUP


def _peer_cred(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, _gid = _CRED.unpack(raw)
    return pid, uid


def _add_peer_counts(st: EndpointStats, peer: Peer) -> None:
    # A connector's ring belongs to its slot, which counts it (see stats()).
    if peer.owns_tx:
        st.messages_sent += peer.tx.messages
        st.bytes_sent += peer.tx.bytes
    st.messages_received += peer.rx.messages
    st.bytes_received += peer.rx.bytes
    st.dropped += peer.dropped
    st.corrupt += peer.corrupt


class Binding:
    """An endpoint this socket is bound to."""

    __slots__ = ("endpoint", "lock_fd", "lsock", "name", "spare")

    def __init__(self, name: str, lock_fd: int, lsock: socket.socket) -> None:
        self.name = name
        self.endpoint = f"shm://{name}"
        self.lock_fd = lock_fd
        self.lsock = lsock
        # A ring made ahead of time for the next connector (NAME@spare.TOKEN),
        # so that creating and first touching it is off the connect path.
        self.spare: tuple[str, seg.Segment] | None = None


class Slot:
    """This socket's place at an endpoint it connected to.

    It lives from connect() to close, across any number of binders: the
    ring this side writes stays, so what was written while no binder was
    there, or before one died, is read by the next one.
    """

    __slots__ = (
        "dialing",
        "endpoint",
        "index",
        "lock_fd",
        "name",
        "peer",
        "redials",
        "refused",
        "replace_ring",
        "seg",
        "tx",
    )

    def __init__(
        self, name: str, index: int, lock_fd: int, sg: seg.Segment, tx: R.Producer
    ) -> None:
        self.name = name
        self.endpoint = f"shm://{name}"
        self.index = index
        self.lock_fd = lock_fd
        self.seg = sg
        self.tx = tx
        self.peer: Peer | None = None
        self.dialing: socket.socket | None = None
        self.refused: Exception | None = None
        self.replace_ring = False
        self.redials = 0  # dials in a row dropped after WELCOME (see Engine._redial)

    @property
    def file_prefix(self) -> str:
        return f"{self.name}@{self.index}."


class _Handshake:
    """A doorbell socket whose 64-byte handshake has not all arrived."""

    __slots__ = ("binding", "buf", "slot", "sock")

    def __init__(
        self, sock: socket.socket, binding: Binding | None = None, slot: Slot | None = None
    ) -> None:
        self.sock = sock
        self.binding = binding
        self.slot = slot
        self.buf = bytearray()


# The socket's public methods (shmsock._socket) and its background tasks
# here run with KeyboardInterrupt protection, as Trio's own channels do: a
# Ctrl-C that lands between a write and the doorbell that write claimed
# would leave the reader asleep over unread data, and one between taking
# records from a ring and returning them would lose them.  Trio raises it
# in the main task at its next checkpoint instead.
ki_protected = trio.lowlevel.enable_ki_protection


def _hung_up(fd: int) -> bool:
    """Whether the other end of the stream socket *fd* has closed, now."""
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP)
    return bool(poller.poll(0))


class Engine:
    """Everything below the socket API, for one socket.

    ``on_change(recv, send)`` is called after events that may let a waiting
    receiver or sender make progress.
    """

    def __init__(
        self,
        kind: SocketType,
        options: Options,
        queues: Any,  # the pattern's ReadyQueues (see _patterns._queues)
        *,
        writes_data: bool,
        reads_data: bool,
        compatible: frozenset[SocketType],
        max_peers: int | None,
        on_change: Callable[[bool, bool], None],
        on_attach: Callable[[Peer], None],
        on_gone: Callable[[Peer], None],
    ) -> None:
        self.kind = kind
        self.options = options
        # A socket that never sends (PULL) writes only positions and state
        # into its rings, so the smallest ring does.
        self._can_send = writes_data
        self.ring_size = options.ring_size if writes_data else RING_SIZE_MIN
        self.reads_data = reads_data
        self.compatible = compatible
        self.max_peers = max_peers
        self._on_change = on_change
        self._on_attach = on_attach
        self._on_gone = on_gone
        self.dir: UserDir | None = None
        self.epoll = select.epoll()
        self._handlers: dict[int, Callable[[], None]] = {}
        self.peers: list[Peer] = []
        # Peers that may take a message / may have one (see _patterns._queues).
        self.queues = queues
        self.send_ready = queues.send
        self.recv_ready = queues.recv
        self.bindings: dict[str, Binding] = {}
        self.slots: list[Slot] = []
        self._watch: DirWatch | None = None
        self.rbuf = R.ReadBuffer(R.MIN_CAPACITY)
        self._retire_queue: list[Peer] = []
        # The peer whose doorbell a woken waiter left muted and unread (see rang).
        self.held: Peer | None = None
        # While set, a read that finds a ring empty does not announce the
        # wait but lists the peer in `unannounced`, for the caller to
        # announce (a spinning receiver: see Socket._look).
        self.quiet = False
        self.unannounced: list[Peer] = []
        # Starts the background tasks other than run(): a nursery's
        # start_soon, or one that spawns Trio system tasks (see start).
        self._start_soon: Callable[..., object] | None = None
        self.closed = False
        # Totals of retired connections by endpoint, so counters never go
        # backwards (see shmsock._stats).
        self.retired_stats: dict[str, EndpointStats] = {}

    # -- lifecycle ---------------------------------------------------------

    def start(self, start_soon: Callable[..., object]) -> None:
        """Start later background tasks (dials, spare rings) with *start_soon*.

        ``start_soon(async_fn, *args)``: a nursery's, or one that spawns
        Trio system tasks.  The caller runs :meth:`run` itself.
        """
        self._start_soon = start_soon

    @ki_protected
    async def run(self) -> None:
        """Wait for events on every descriptor of this socket; dispatch them."""
        if self.closed:  # closed before this task first ran
            return
        fd = self.epoll.fileno()
        try:
            while not self.closed:
                await trio.lowlevel.wait_readable(fd)
                self.poll()
        except trio.ClosedResourceError:
            pass  # close() closed the epoll descriptor under us

    def poll(self) -> bool:
        """Handle whatever events are ready, without waiting.

        The socket also calls this itself before it reports WouldBlock, so
        a doorbell that already rang counts even if the poller task has not
        run since.  Returns whether there was anything to handle.
        """
        if self.closed:
            return False
        events = self.epoll.poll(0)
        for fd, _events in events:
            handler = self._handlers.get(fd)
            if handler is None:
                continue
            try:
                handler()
            except Exception:  # a bug must not take the whole socket down
                log.exception("shmsock: error handling an event on fd %d", fd)
        self.reap()
        return bool(events)

    def _register(self, fd: int, handler: Callable[[], None]) -> None:
        self._handlers[fd] = handler
        self.epoll.register(fd, _EPOLL_IN)

    def _unregister(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            try:
                self.epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def _dir(self) -> UserDir:
        if self.dir is None:
            self.dir = UserDir()
        return self.dir

    # -- bind --------------------------------------------------------------

    def bind(self, name: str) -> None:
        if name in self.bindings:
            raise AddressInUse(f"shm://{name} is already bound by this socket")
        d = self._dir()
        lock_fd = lock_file(d, f"{name}@lock", create=True)
        if lock_fd is None:
            raise AddressInUse(f"shm://{name} is bound by a live socket")
        sockname = f"{name}@sock"
        tmpname = f"{name}@sock.{os.urandom(4).hex()}"
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            self._reclaim_stale_slots(name)
            for entry in d.listdir():  # a dead binder's spare ring
                if entry.startswith(f"{name}@spare."):
                    d.unlink(entry)
            d.unlink(sockname)  # a dead binder's
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, f"{os.getpid()} {self.kind.name}\n".encode(), 0)
            # Listen first, then rename into place: a connector that sees
            # the name can connect at once.
            lsock.bind(d.sockpath(tmpname))
            os.chmod(d.sockpath(tmpname), 0o600)
            lsock.listen(socket.SOMAXCONN)
            os.rename(tmpname, sockname, src_dir_fd=d.fd, dst_dir_fd=d.fd)
        except BaseException:
            lsock.close()
            d.unlink(tmpname)
            d.unlink(f"{name}@lock")
            os.close(lock_fd)
            raise
        b = Binding(name, lock_fd, lsock)
        self.bindings[name] = b
        self._register(lsock.fileno(), partial(self._on_listen, b))
        self._make_spare(b)

    def _make_spare(self, b: Binding) -> None:
        """Create the binding's spare ring; without one, accept creates it."""
        if self.closed or b.spare is not None or self.bindings.get(b.name) is not b:
            return
        d = self._dir()
        token = os.urandom(4).hex()
        try:
            sg = seg.create(
                d, f"{b.name}@spare.{token}", self.ring_size, self.kind, seg.ROLE_BINDER
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
            self._dir().unlink(sg.name)

    @ki_protected
    async def _replenish_spare(self, b: Binding) -> None:
        # Not in the round that accepted a connector: its first message
        # should not wait behind the next connector's ring.
        await trio.sleep(0.002)
        self._make_spare(b)

    def _reclaim_stale_slots(self, name: str) -> None:
        prefix = f"{name}@"
        indices = set()
        for entry in self._dir().listdir():
            if entry.startswith(prefix):
                head = entry[len(prefix) :].split(".", 1)[0]
                if head.isdigit():
                    indices.add(int(head))
        for k in sorted(indices):
            self._reclaim_slot(name, k)

    def _reclaim_slot(self, name: str, k: int) -> bool:
        """Remove slot k's files if no live connector holds it (see reclaim_slot)."""
        d = self._dir()
        try:
            return bool(reclaim_slot(d, name, k))
        except UnsafeFile:
            log.warning("shmsock: not touching unsafe file %s/%s@%d.lock", d.path, name, k)
            return False

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
            if _peer_cred(conn)[1] != os.geteuid():
                conn.close()
                continue
            hs = _Handshake(conn, binding=b)
            self._register(conn.fileno(), partial(self._on_hello, hs))
            # A connector sends its HELLO right after connecting, so it is
            # usually here already: handle it without another poller round.
            self._on_hello(hs)

    def _read_handshake(self, hs: _Handshake) -> _wire.Handshake | None:
        """Read what has arrived; return the handshake once complete.

        Raises ConnectionError on end-of-file, ValueError on garbage.
        """
        try:
            data = hs.sock.recv(_wire.SIZE - len(hs.buf))
        except BlockingIOError:
            return None
        if not data:
            raise ConnectionError("closed during the handshake")
        hs.buf += data
        if len(hs.buf) < _wire.SIZE:
            return None
        return _wire.Handshake.unpack(bytes(hs.buf))

    def _refuse(
        self, hs: _Handshake, reason: _wire.Refusal, mismatch: VersionMismatch | None = None
    ) -> None:
        self._unregister(hs.sock.fileno())
        refusal = _wire.Handshake(
            _wire.Kind.REFUSE,
            self.kind,
            reason=reason,
            version_found=mismatch.found if mismatch else 0,
            version_expected=mismatch.expected if mismatch else 0,
        )
        try:
            hs.sock.send(refusal.pack())
        except OSError:
            pass
        hs.sock.close()

    def _on_hello(self, hs: _Handshake) -> None:
        b = hs.binding
        assert b is not None
        try:
            msg = self._read_handshake(hs)
        except VersionMismatch as exc:
            # Another shmsock version: say so in our handshake's format,
            # which it can tell from its own by the version field.
            log.warning("shmsock: %s: refused pid %d: %s", b.endpoint, _peer_cred(hs.sock)[0], exc)
            self._refuse(hs, _wire.Refusal.VERSION, exc)
            return
        except (ConnectionError, ValueError, ShmsockError, OSError):
            self._unregister(hs.sock.fileno())
            hs.sock.close()
            return
        if msg is None:
            return
        if msg.kind != _wire.Kind.HELLO or not 0 <= msg.slot < MAX_SLOTS:
            self._unregister(hs.sock.fileno())
            hs.sock.close()
            return
        if msg.sock_type not in self.compatible:
            self._refuse(hs, _wire.Refusal.INCOMPATIBLE)
            return
        if self.closed or b.name not in self.bindings:
            self._refuse(hs, _wire.Refusal.SHUTTING_DOWN)
            return
        if self.max_peers is not None and self._live_peers() >= self.max_peers:
            # A peer that closed a moment ago (to dial again at once, say)
            # may have an end-of-file we have not handled: look first.
            for p in self.peers:
                if p.alive:
                    self._on_doorbell(p)
            if self._live_peers() >= self.max_peers:
                self._refuse(hs, _wire.Refusal.BUSY)
                return
        d = self._dir()
        try:
            rx_seg = seg.open_existing(d, f"{b.name}@{msg.slot}.c", seg.ROLE_CONNECTOR)
        except (OSError, ShmsockError) as exc:
            if _hung_up(hs.sock.fileno()):
                # The connector sent its HELLO and went (it closed at once,
                # say, and removed its ring) before we read it.  Nothing to
                # refuse and nothing wrong; its dead slot is reclaimed below
                # if it left anything.  A connector still waiting for our
                # answer is told, and the problem logged, as before.
                log.debug(
                    "shmsock: %s: slot %d hung up before its HELLO was read: %s",
                    b.endpoint,
                    msg.slot,
                    exc,
                )
                self._unregister(hs.sock.fileno())
                hs.sock.close()
                self._reclaim_slot(b.name, msg.slot)
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
            self._reclaim_slot(b.name, msg.slot)
            return
        try:
            rx = R.Consumer(rx_seg.ring, rx_seg.capacity, resync=True)
        except CorruptMessage as exc:
            rx_seg.close()
            log.warning("shmsock: %s: ring of slot %d is corrupt: %s", b.endpoint, msg.slot, exc)
            self._refuse(hs, _wire.Refusal.BAD_SEGMENT)
            return
        try:
            token, tx_seg = self._create_binder_ring(b.name, msg.slot)
        except (OSError, ShmsockError) as exc:
            log.warning("shmsock: %s: cannot create a ring: %s", b.endpoint, exc)
            rx.release()
            rx_seg.close()
            full = isinstance(exc, SharedMemoryFull)
            self._refuse(hs, _wire.Refusal.NO_MEMORY if full else _wire.Refusal.SHUTTING_DOWN)
            return
        tx = R.Producer(tx_seg.ring, tx_seg.capacity, checksum=self.options.checksum)
        self._unregister(hs.sock.fileno())
        welcome = _wire.Handshake(
            _wire.Kind.WELCOME,
            self.kind,
            msg.slot,
            os.getpid(),
            tx_seg.capacity,
            token,
            max_msg=self.options.max_msg_size,
        )
        try:
            hs.sock.send(welcome.pack())
        except OSError:
            tx.release()
            tx_seg.close()
            d.unlink(tx_seg.name)
            rx.release()
            rx_seg.close()
            hs.sock.close()
            return
        peer = Peer(
            endpoint=b.endpoint,
            bound=True,
            sock=hs.sock,
            tx=tx,
            tx_seg=tx_seg,
            rx=rx,
            rx_seg=rx_seg,
            pid=_peer_cred(hs.sock)[0],
            slot=msg.slot,
            token=token,
            max_msg=self.options.max_msg_size,
            max_send=msg.accepts,
            owns_tx=True,
        )
        self._attach(peer)

    def _live_peers(self) -> int:
        return sum(p.alive for p in self.peers)

    def _create_binder_ring(self, name: str, k: int) -> tuple[str, seg.Segment]:
        d = self._dir()
        b = self.bindings.get(name)
        if b is not None and b.spare is not None:
            token, sg = b.spare
            b.spare = None
            ring_name = f"{name}@{k}.b.{token}"
            try:
                os.rename(sg.name, ring_name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
            except OSError:
                sg.close()
                d.unlink(sg.name)
            else:
                sg.name = ring_name
                if self._start_soon is not None:
                    self._start_soon(self._replenish_spare, b)
                return token, sg
        for _ in range(8):
            token = os.urandom(4).hex()
            try:
                return token, seg.create(
                    d, f"{name}@{k}.b.{token}", self.ring_size, self.kind, seg.ROLE_BINDER
                )
            except FileExistsError:
                continue
        raise ShmsockError("could not name a ring segment")  # pragma: no cover

    # -- connect -----------------------------------------------------------

    def connect(self, name: str) -> None:
        d = self._dir()
        k, lock_fd = self._claim_slot(name)
        try:
            # Our lock file is new: a dead holder's files went with its stale
            # lock (reclaim_slot).  No listing here, which would make every
            # connect pay for every file in the directory: a binder's old
            # ring for this slot has its own token, so it cannot clash with
            # the next one, and it goes when its binder sees the connection
            # end, when we close and find its binder gone, with the next
            # bind, or with `shmsock clean`.  A ring file left without its
            # lock (removed by hand) would make create fail.
            ring_name = f"{name}@{k}.c"
            d.unlink(ring_name)
            sg = seg.create(
                d, ring_name, self.ring_size, self.kind, seg.ROLE_CONNECTOR, deferred=True
            )
        except BaseException:
            d.unlink(f"{name}@{k}.lock")
            os.close(lock_fd)
            raise
        try:
            tx = R.Producer(sg.ring, sg.capacity, checksum=self.options.checksum)
            os.pwrite(lock_fd, f"{os.getpid()} {self.kind.name}\n".encode(), 0)
        except BaseException:
            sg.close()
            d.unlink(sg.name)
            d.unlink(f"{name}@{k}.lock")
            os.close(lock_fd)
            raise
        slot = Slot(name, k, lock_fd, sg, tx)
        self.slots.append(slot)
        try:
            self._dial(slot)
            # Allocating the ring is the slowest step of a connect, so it
            # overlaps the binder's answer to our HELLO.  Nothing can be
            # written to the ring before this returns: the connection exists
            # only once the poller has read the WELCOME.
            sg.reserve()
        except BaseException:
            # A binder that attached our ring already sees the connection
            # end, as when a connector dies, and drops its side.
            self.slots.remove(slot)
            self._release_slot(slot, d)
            raise

    def _release_slot(self, slot: Slot, d: UserDir | None) -> None:
        """End *slot*'s dial, unmap its ring, and remove its files from *d*."""
        dialing = slot.dialing is not None
        self._abort_dial(slot)
        if dialing and d is not None:
            # The binder may have made its ring for us and answered, then closed
            # or unbound while we had not read the answer: it leaves that ring to
            # us (see close and unbind), and only we know of it.
            self._drop_binder_rings(slot)
        slot.tx.release()
        slot.seg.close()
        if d is not None:
            d.unlink(slot.seg.name)
            d.unlink(f"{slot.name}@{slot.index}.lock")
        os.close(slot.lock_fd)

    def _watch_for_binders(self) -> bool:
        """Start watching the directory for binders; True if it just started.

        Only a connector that found no binder watches: an inotify watch
        wakes us on every file created in the directory, and closing one
        blocks for milliseconds (the kernel waits for an RCU grace period).
        """
        if self._watch is not None or self.closed:
            return False
        d = self._dir()
        self._watch = DirWatch(d.fd)
        self._register(self._watch.fd, self._on_watch)
        return True

    def _claim_slot(self, name: str) -> tuple[int, int]:
        d = self._dir()
        k = 0
        while k < MAX_SLOTS:
            lockname = f"{name}@{k}.lock"
            try:
                fd = d.create(lockname)
            except FileExistsError:
                if self._reclaim_slot(name, k):
                    continue  # it was stale and is free now: try it again
                k += 1
                continue
            # Between our create and our lock, a cleaner may have taken the
            # new file for a stale one and removed it: check.
            if try_lock(fd) and d.is_same(fd, lockname):
                return k, fd
            os.close(fd)
        raise ShmsockError(f"shm://{name} has no free slot ({MAX_SLOTS} in use)")

    def _dial(self, slot: Slot) -> None:
        """Try to reach the binder now; on failure wait for the next one."""
        if self.closed or slot.peer is not None or slot.dialing is not None:
            return
        if slot.replace_ring and not self._replace_slot_ring(slot):
            self._watch_for_binders()  # the next binder brings the next try
            return
        d = self._dir()
        sockname = f"{slot.name}@sock"
        try:
            d.check_socket(sockname)
        except FileNotFoundError:
            # Look once more after the watch starts, so that a binder that
            # appeared in between is not missed.
            if self._watch_for_binders():
                self._dial(slot)
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
                self._dial(slot)
            return
        except BlockingIOError:
            conn.close()  # its backlog is full: try again shortly
            if self._start_soon is not None:
                self._start_soon(self._dial_later, slot)
            return
        hello = _wire.Handshake(
            _wire.Kind.HELLO,
            self.kind,
            slot.index,
            os.getpid(),
            slot.seg.capacity,
            max_msg=self.options.max_msg_size,
        )
        binder_uid = _peer_cred(conn)[1]
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
        try:
            conn.send(hello.pack())
        except OSError:
            # The binder died between our connect and our HELLO (EPIPE,
            # ECONNRESET): as with a dead binder's socket above, the next
            # binder brings the next try.  This recurses at most once, since
            # the watch starts only once.
            conn.close()
            if self._watch_for_binders():
                self._dial(slot)
            return
        slot.dialing = conn
        slot.refused = None  # an earlier binder's refusal; this one may accept
        hs = _Handshake(conn, slot=slot)
        self._register(conn.fileno(), partial(self._on_welcome, hs))

    @ki_protected
    async def _dial_later(self, slot: Slot, delay: float = 0.001) -> None:
        # Only when a binder's listen backlog overflows, or it dropped us
        # after its WELCOME; never to find one.
        await trio.sleep(delay)
        self._dial(slot)
        self._on_change(True, True)

    def _redial(self, slot: Slot) -> None:
        """Abort this dial and dial again shortly (the binder dropped us after WELCOME).

        What the binder said after its WELCOME is read first: if it found
        our ring corrupt, the next dial brings a fresh one.  The delay
        doubles with each such failure in a row (1 ms up to 64 ms), so a
        binder that keeps dropping us cannot make us spin.
        """
        if slot.dialing is not None:
            try:
                said = slot.dialing.recv(4096)
            except OSError:
                said = b""
            if _wire.CORRUPT in said:
                slot.replace_ring = True
        self._abort_dial(slot)
        self._drop_binder_rings(slot)
        delay = 0.001 * (1 << min(slot.redials, 6))
        slot.redials += 1
        if self._start_soon is not None:
            self._start_soon(self._dial_later, slot, delay)
        else:  # not running yet (never in practice): the next binder will do
            self._watch_for_binders()

    def _on_watch(self) -> None:
        assert self._watch is not None
        appeared = {n[: -len("@sock")] for n in self._watch.read_names() if n.endswith("@sock")}
        for slot in self.slots:
            if slot.name in appeared:
                self._dial(slot)

    def _on_welcome(self, hs: _Handshake) -> None:
        slot = hs.slot
        assert slot is not None
        try:
            msg = self._read_handshake(hs)
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
            self._drop_binder_rings(slot)
            if isinstance(exc, ConnectionError):
                # A binder hangs up on a good HELLO only by dying or closing;
                # the next one may be there already (if not, this watches).
                self._dial(slot)
            return
        if msg is None:
            return
        self._unregister(hs.sock.fileno())
        if msg.kind == _wire.Kind.REFUSE:
            self._refused(slot, _wire.refusal_error(msg, slot.endpoint))
            return
        if msg.kind != _wire.Kind.WELCOME or not msg.token:
            self._abort_dial(slot)
            return
        try:
            rx_seg = seg.open_existing(
                self._dir(), f"{slot.name}@{slot.index}.b.{msg.token}", seg.ROLE_BINDER
            )
            try:
                rx = R.Consumer(rx_seg.ring, rx_seg.capacity)
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
        peer = Peer(
            endpoint=slot.endpoint,
            bound=False,
            sock=hs.sock,
            tx=slot.tx,
            tx_seg=slot.seg,
            rx=rx,
            rx_seg=rx_seg,
            pid=_peer_cred(hs.sock)[0],
            slot=slot.index,
            token=msg.token,
            max_msg=self.options.max_msg_size,
            max_send=msg.accepts,
            owns_tx=False,
        )
        slot.peer = peer
        self._attach(peer)

    def _refused(self, slot: Slot, exc: Exception) -> None:
        """The binder will not have us: say why, and wait for the next binder.

        Not again with this binder, which would refuse again, but with the
        next socket that binds the endpoint: the watch reports it.
        """
        slot.refused = exc
        self._abort_dial(slot)
        self._watch_for_binders()
        self._on_change(True, True)

    def _drop_binder_rings(self, slot: Slot) -> None:
        """Remove binders' rings for *slot* while it has no connection.

        Only this socket connects through the slot, so with no connection
        (and no handshake) in progress every ``NAME@<k>.b.*`` is orphaned.
        """
        if slot.peer is not None or slot.dialing is not None:
            return
        d = self._dir()
        prefix = f"{slot.file_prefix}b."
        for entry in d.listdir():
            if entry.startswith(prefix):
                d.unlink(entry)

    def _abort_dial(self, slot: Slot) -> None:
        if slot.dialing is not None:
            self._unregister(slot.dialing.fileno())
            slot.dialing.close()
            slot.dialing = None

    # -- connections --------------------------------------------------------

    def _attach(self, peer: Peer) -> None:
        if peer.rx.capacity > self.rbuf.size:
            self.rbuf = R.ReadBuffer(peer.rx.capacity)
        peer.on_tx_corrupt = self._tx_corrupt
        peer.take = partial(self.take, peer)
        peer.take_batch = partial(self.take_batch, peer)
        peer.drained = partial(self.drained, peer)
        self.peers.append(peer)
        self.want_send(peer)
        self.want_recv(peer)
        self._register(peer.fd, partial(self._on_doorbell, peer))
        self._on_attach(peer)
        self._on_change(True, True)

    def _on_doorbell(self, peer: Peer) -> None:
        try:
            data = peer.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost_with_reader(peer)
            self._gone(peer)
            return
        recv = send = False
        if _wire.DATA in data:
            peer.readable = recv = True
            self.want_recv(peer)
        if _wire.SPACE in data:
            peer.writable = send = True
            self.want_send(peer)
        if _wire.CORRUPT in data:
            # Only a binder sends this, about a connector's ring.
            for slot in self.slots:
                if slot.peer is peer:
                    slot.replace_ring = True
        if recv or send:
            self._on_change(recv, send)

    def want_send(self, peer: Peer) -> None:
        self.queues.want_send(peer)

    def want_recv(self, peer: Peer) -> None:
        self.queues.want_recv(peer)

    def _lost_with_reader(self, peer: Peer) -> None:
        """*peer* hung up: count what it left unread in a ring we own.

        It has stopped reading for good, and that ring goes with the
        connection.  A connector's ring is not lost with its binder: the
        slot keeps it for the next binder (see count_lost).
        """
        if peer.owns_tx:
            try:
                peer.dropped += peer.tx.unread_messages()
            except CorruptMessage:
                pass  # its position is impossible: how much it read is unknown

    def _gone(self, peer: Peer) -> None:
        """The connection ended: the peer closed or died, or we dropped it as broken."""
        if not peer.alive:
            return
        peer.alive = False
        peer.writable = False
        self._unregister(peer.fd)
        peer.close_doorbell()
        d = self._dir()
        if peer.bound:
            d.unlink(peer.tx_seg.name)  # our ring to it; the mapping stays until retired
        else:
            # The binder's ring: its binder is gone, and the slot is ours.
            d.unlink(peer.rx_seg.name)
            for slot in self.slots:
                if slot.peer is peer:
                    slot.peer = None
                    self._dial(slot)  # a new binder may already be there
        if peer.discard or not self.reads_data:
            peer.readable = False
            peer.inbox.clear()
        else:
            peer.readable = True  # read what it published before it went
            self.want_recv(peer)
        self._on_gone(peer)
        if not peer.readable and not peer.inbox:
            self._retire_queue.append(peer)
        self._on_change(True, True)

    def _replace_slot_ring(self, slot: Slot) -> bool:
        """Our ring is corrupt (the binder said so, or a write found it): start a fresh one.

        Only while the slot has no connection and no dial in progress.
        Returns False, with the reason in ``slot.refused``, when no new ring
        can be made (shared memory full, say); the next dial tries again.
        """
        d = self._dir()
        d.unlink(slot.seg.name)  # our mapping of it stays valid until released
        try:
            new_seg = seg.create(d, slot.seg.name, self.ring_size, self.kind, seg.ROLE_CONNECTOR)
        except (OSError, ShmsockError) as exc:
            log.warning("shmsock: %s: cannot replace the corrupt ring: %s", slot.endpoint, exc)
            slot.refused = (
                exc if isinstance(exc, ShmsockError) else SegmentError(f"cannot make a ring: {exc}")
            )
            return False
        new_tx = R.Producer(new_seg.ring, new_seg.capacity, checksum=self.options.checksum)
        slot.replace_ring = False
        old_seg, old_tx = slot.seg, slot.tx
        with _stats.LOCK:  # the old ring's counts move to the retired totals
            st = self._retired(slot.endpoint)
            st.messages_sent += old_tx.messages
            st.bytes_sent += old_tx.bytes
            slot.seg, slot.tx = new_seg, new_tx
        old_tx.release()
        old_seg.close()
        return True

    def take(self, peer: Peer) -> Queued | None:
        """The next complete message from *peer*, or None.

        A peer found empty is marked not readable after telling its
        producer to ring when it writes.  Raises CorruptMessage (once) when
        the peer's ring fails validation; that connection is then closed
        and retired.
        """
        if peer.inbox:
            return peer.inbox.popleft()
        while peer.readable:
            got = self._read(peer, 0)
            if got:
                if len(got) > 1:
                    peer.inbox.extend(got[1:])
                return got[0]
            if peer.inbox:
                return peer.inbox.popleft()
        return None

    def drained(self, peer: Peer) -> bool:
        """Whether *peer* had nothing more for us just now.

        A hint for fair queueing: a ring that fails validation counts as
        not drained, and the next read reports it.
        """
        if peer.inbox:
            return False
        try:
            return peer.rx.available() == 0
        except CorruptMessage:
            return False

    def take_batch(self, peer: Peer, max_count: int) -> tuple[list[Queued], bool] | None:
        """Up to *max_count* complete messages from *peer*, or None.

        The flag says the list holds only bytes (plain one-frame messages
        read straight from the ring), so the caller need not look at each.
        """
        inbox = peer.inbox
        if inbox:
            if len(inbox) <= max_count:
                items = list(inbox)
                inbox.clear()
            else:
                items = [inbox.popleft() for _ in range(max_count)]
            return items, False
        while peer.readable:
            got = self._read(peer, max_count)
            if got:
                return got, True  # type: ignore[return-value]
            if inbox:
                return self.take_batch(peer, max_count)
        return None

    def _read(self, peer: Peer, max_count: int) -> list[bytes] | None:
        """One batch from the ring: plain payloads, or None/[] (see Peer.read_batch).

        On an empty ring, announces the wait (or retires a dead peer).
        """
        try:
            got = peer.read_batch(self.rbuf, max_count)
        except CorruptMessage as exc:
            self._corrupt(peer)
            raise corrupt_reason(exc, peer) from None
        if got is None or got:
            return got
        if peer is self.held:
            # Read the doorbell before announcing again: any DATA on it is
            # older than the announcement, and must not end the next wait.
            self.settle()
        if not peer.alive:
            peer.readable = False
            peer.abandon_partial()
            self._retire_queue.append(peer)
        elif self.quiet:
            peer.readable = False
            self.unannounced.append(peer)
        elif peer.rx.prepare_wait():
            peer.readable = False
            # Going idle on this ring (never per message): for `shmsock stat`.
            peer.rx_seg.mark_caught_up()
        return got

    def _corrupt(self, peer: Peer) -> None:
        peer.corrupt += 1
        if peer.bound:
            peer.ring(_wire.CORRUPT)
        peer.discard = True
        self._gone(peer)

    def _tx_corrupt(self, peer: Peer, exc: CorruptMessage) -> None:
        """A write found the peer's position in our ring impossible.

        Closes the connection as broken, as if the peer had gone (what it
        sent us is still read: that ring is not in doubt), and counts it as
        corrupt.  The sender never sees the error: the message goes to
        another peer, or the pattern's "no peer" rule applies.  A connector
        starts a fresh ring for its slot before it dials again, since the
        next consumer would find the same impossible position in this one.
        """
        if not peer.alive:
            return
        log.warning(
            "shmsock: %s: closing the connection to pid %d: %s", peer.endpoint, peer.pid, exc.reason
        )
        peer.corrupt += 1
        if not peer.bound:
            for slot in self.slots:
                if slot.peer is peer:
                    slot.replace_ring = True
        self._gone(peer)

    def mute(self, peer: Peer) -> None:
        """Stop the poller task from watching *peer*'s doorbell.

        A task that waits on that doorbell itself mutes it first: otherwise
        a ring wakes the poller as well, and its scheduling round costs more
        than the two epoll_ctl calls that muting and unmuting take.
        """
        self.epoll.modify(peer.fd, 0)

    def unmute(self, peer: Peer) -> None:
        """Undo mute(), after handling what the doorbell said."""
        if not self.closed and peer.fd in self._handlers:  # not gone meanwhile
            self.epoll.modify(peer.fd, _EPOLL_IN)

    def rang(self, peer: Peer) -> None:
        """A receiver waiting on *peer*'s muted doorbell woke: act on it unread.

        Reading the doorbell would put a system call, and unmuting it a
        turn of the poller task, between the wake-up and the message.  So
        the receiver assumes DATA (a wrong guess costs one look at the
        ring) and the doorbell is *held*: left muted, its bytes unread,
        until settle().  Muted, it still reports a hang-up to the poller
        (epoll always reports EPOLLHUP), so a peer's death is seen as
        promptly as ever.  What it does not report is a DATA or SPACE byte,
        so the socket holds it only while no other task is parked waiting
        for one, and settles it before any later wait: a new DATA or SPACE
        byte comes only after a new announcement, which settles first
        (reading) or is followed by a wait that settles and looks again
        (writing).

        Only a receiver guesses: a sender that wrote after a wrong guess of
        SPACE could write to a peer that is gone.
        """
        if not peer.alive:
            return
        self.held = peer
        peer.readable = True
        self.want_recv(peer)
        self._on_change(True, False)

    def settle(self) -> None:
        """Read the held doorbell, if any, and hand it back to the poller.

        Call before announcing a wait on the held peer's rings, and before
        any wait that a doorbell byte must end.  Does not retire anything
        (see reap), so it is safe in the middle of reading.
        """
        peer = self.held
        if peer is not None:
            self.held = None
            self.reopen(peer)

    def reopen(self, peer: Peer) -> None:
        """Read *peer*'s muted doorbell, then hand it back to the poller."""
        try:
            if peer.alive:
                self._on_doorbell(peer)
        finally:
            self.unmute(peer)

    def only_peer(self) -> Peer | None:
        """The one live peer, if there is exactly one (and nobody draining)."""
        peers = self.peers
        if len(peers) == 1 and peers[0].alive:
            return peers[0]
        return None

    @property
    def retire_pending(self) -> bool:
        return bool(self._retire_queue)

    def reap(self) -> None:
        """Retire connections that are gone and fully read."""
        while self._retire_queue:
            peer = self._retire_queue.pop()
            if peer in self.peers:
                self._retire(peer)

    def _retire(self, peer: Peer) -> None:
        self.queues.remove(peer)
        peer.abandon_partial()
        with _stats.LOCK:  # a concurrent stats() sees the counts exactly once
            self.peers.remove(peer)
            _add_peer_counts(self._retired(peer.endpoint), peer)
        peer.release()
        if peer.bound and not self.closed:
            name = peer.endpoint[len("shm://") :]
            self._reclaim_slot(name, peer.slot)

    # -- statistics ----------------------------------------------------------

    def _retired(self, endpoint: str) -> EndpointStats:
        st = self.retired_stats.get(endpoint)
        if st is None:
            st = self.retired_stats[endpoint] = EndpointStats()
        return st

    def stats(self) -> dict[str, EndpointStats]:
        """Counters and gauges by endpoint, read now; see shmsock._stats.

        Costs nothing until called: it reads the counters the rings keep in
        private memory, the retired totals, and (for the gauges) the ring
        positions.  Safe from another thread while this one runs, provided
        the caller holds ``_stats.LOCK`` (which retiring takes).  After
        close() only the retired totals remain.
        """
        out: dict[str, EndpointStats] = {}

        def get(endpoint: str) -> EndpointStats:
            st = out.get(endpoint)
            if st is None:
                st = out[endpoint] = EndpointStats()
            return st

        for endpoint, retired in list(self.retired_stats.items()):
            get(endpoint).add_counters(retired)
        for peer in list(self.peers):
            st = get(peer.endpoint)
            _add_peer_counts(st, peer)
            st.peers += peer.alive
            st.used_in += peer.rx_seg.ring_used() or 0
            if peer.owns_tx:
                st.used_out += peer.tx_seg.ring_used() or 0
        for slot in list(self.slots):
            st = get(slot.endpoint)
            st.messages_sent += slot.tx.messages
            st.bytes_sent += slot.tx.bytes
            st.used_out += slot.seg.ring_used() or 0
        for b in list(self.bindings.values()):
            get(b.endpoint)  # a bound endpoint with no peers yet still shows
        return out

    # -- close -------------------------------------------------------------

    def unread_peers(self) -> list[Peer]:
        """Live peers that have not read everything we sent them."""
        out = []
        for peer in self.peers:
            if peer.alive:
                try:
                    if peer.tx.unread():
                        out.append(peer)
                except CorruptMessage:
                    pass
        return out

    def unattended(self, *, look: bool = False) -> list[tuple[Slot, int]]:
        """Slots whose ring holds unread messages and no binder to read them.

        Each with the count of those messages.  With *look*, a binder that
        has hung up counts as gone before its end-of-file is handled.
        """
        out = []
        for slot in self.slots:
            peer = slot.peer
            if peer is not None and peer.alive and not (look and _hung_up(peer.fd)):
                continue
            try:
                unread = slot.tx.unread_messages()
            except CorruptMessage:
                continue  # the reader's position is impossible: nothing to count on
            if unread:
                out.append((slot, unread))
        return out

    def count_lost(self) -> None:
        """Count in ``dropped`` what closing this socket now loses.

        Called just before close(), while the counts are still this
        socket's.  What a live reader can still read is not lost: the rings
        this socket wrote stay mapped by their readers, who read them to
        the end.  Lost are the unread messages of a slot's ring with no
        binder attached (the ring goes with the slot), those of a ring we
        own whose reader has hung up (its end-of-file not handled yet),
        those a peer that has gone left in its ring to us (nobody else
        maps it, or will), and the messages this socket took from rings
        but never handed out.
        """
        with _stats.LOCK:
            for slot, unread in self.unattended(look=True):
                self._retired(slot.endpoint).dropped += unread
            for peer in self.peers:
                peer.dropped += len(peer.inbox)
                if not peer.alive or _hung_up(peer.fd):
                    if peer.alive and peer.owns_tx:
                        self._lost_with_reader(peer)
                    if not peer.discard:
                        try:
                            peer.dropped += peer.rx.unread_messages()
                        except CorruptMessage:
                            pass

    def close(self) -> None:
        """Tear everything down: connections, slots, bindings, descriptors.

        Every ring this socket writes is marked closed; nothing in them is
        taken back.  A reader that is attached reads them to the end after
        it sees the connection end, so the rings a binder made stay on file
        until their connector, if it is alive, has seen that: it may not
        have mapped its ring yet.
        """
        if self.closed:
            return
        self.closed = True
        self.held = None
        d = self.dir
        for peer in self.peers:
            if peer.owns_tx:
                peer.tx.close()
        for slot in self.slots:
            slot.tx.close()
        for peer in list(self.peers):
            if peer.alive:
                peer.alive = False
                self._unregister(peer.fd)
                if d is not None and not peer.bound:
                    # The binder's ring to us: we mapped it, so we are done
                    # with it whatever the binder does.  Leaving it to a
                    # binder that is alive now would leak it when the binder
                    # closes at the same moment (it then sees us alive, and
                    # leaves it to us) or dies before it hears of us.
                    d.unlink(peer.rx_seg.name)
                elif d is not None and _hung_up(peer.fd):
                    # Our ring to a connector that has gone and had not told
                    # us yet.  A live connector may not have mapped it yet
                    # (our WELCOME unread): it removes the ring itself.
                    d.unlink(peer.tx_seg.name)
            peer.release()
        self.peers.clear()
        self.queues.clear()
        self._retire_queue.clear()
        for slot in self.slots:
            self._release_slot(slot, d)
        self.slots.clear()
        for b in self.bindings.values():
            self._unregister(b.lsock.fileno())
            b.lsock.close()
            if d is not None:
                self._drop_spare(b)
            if d is not None:
                # Slots of connectors that died before we ever heard of them
                # (say, killed between claiming a slot and dialling) would
                # stay until the next bind: remove them now.
                try:
                    self._reclaim_stale_slots(b.name)
                except OSError as exc:
                    log.warning("shmsock: %s: leaving stale slots: %s", b.endpoint, exc)
                d.unlink(f"{b.name}@sock")
                d.unlink(f"{b.name}@lock")
            os.close(b.lock_fd)
        self.bindings.clear()
        for fd in list(self._handlers):
            self._unregister(fd)  # handshakes in progress
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        try:
            trio.lowlevel.notify_closing(self.epoll.fileno())
        except RuntimeError:
            pass  # outside of Trio: nobody can be waiting on it
        self.epoll.close()
        if d is not None:
            d.close()
            self.dir = None

    # -- options ---------------------------------------------------------------

    def set_options(self, options: Options) -> None:
        """Use *options* from now on.

        ``ring_size`` and ``max_msg_size`` apply to the connections made
        after this (the socket lets them change only before its first bind
        or connect); ``checksum`` applies at once to every ring this socket
        writes, from its next record.
        """
        self.options = options
        self.ring_size = options.ring_size if self._can_send else RING_SIZE_MIN
        for peer in self.peers:
            if peer.owns_tx:
                peer.tx.checksum = options.checksum
        for slot in self.slots:
            slot.tx.checksum = options.checksum

    # -- unbind and disconnect ----------------------------------------------------
    #
    # Each ends the connections of one endpoint the way close() ends every
    # connection, and leaves the socket's other endpoints alone.

    def unbind(self, name: str) -> None:
        """Stop accepting at *name*, end the connections accepted there, remove its files.

        What a live connector sent that we had not taken from its ring stays
        there, for the next socket bound at the endpoint (as when a binder
        dies); see _end for the rest.  Raises KeyError unless bound here.
        """
        b = self.bindings.pop(name)
        d = self._dir()
        # First the listening socket and its name, so that a connector that
        # sees its connection end and dials again finds nobody, and waits
        # for the next binder.
        self._unregister(b.lsock.fileno())
        b.lsock.close()
        d.unlink(f"{name}@sock")
        self._drop_spare(b)
        for fd, handler in list(self._handlers.items()):
            # A handshake in progress here: hang up, and its connector dials
            # again (it finds nobody) rather than being refused.
            hs = handler.args[0] if isinstance(handler, partial) else None
            if isinstance(hs, _Handshake) and hs.binding is b:
                self._unregister(fd)
                hs.sock.close()
        for peer in [p for p in self.peers if p.bound and p.endpoint == b.endpoint]:
            # A gone connector's ring is read by nobody after this.
            self._end(peer, drain=not peer.alive)
        try:
            self._reclaim_stale_slots(name)  # as close() does
        except OSError as exc:
            log.warning("shmsock: %s: leaving stale slots: %s", b.endpoint, exc)
        d.unlink(f"{name}@lock")
        os.close(b.lock_fd)
        self._on_change(True, True)

    def disconnect(self, name: str) -> int:
        """End this socket's connections to *name*; release its slots there and their files.

        Undoes every connect() to *name*; returns how many (0: none, and
        nothing was done).  What the binder sent that we had not received
        is dropped and counted; see _end.
        """
        slots = [slot for slot in self.slots if slot.name == name]
        if not slots:
            return 0
        endpoint = f"shm://{name}"
        for slot in slots:
            slot.tx.close()  # the binder reads what we sent, then sees us go
        for peer in [p for p in self.peers if not p.bound and p.endpoint == endpoint]:
            self._end(peer, drain=True)
        d = self._dir()
        for slot in slots:
            with _stats.LOCK:  # the ring's counts move to the retired totals
                self.slots.remove(slot)
                st = self._retired(slot.endpoint)
                st.messages_sent += slot.tx.messages
                st.bytes_sent += slot.tx.bytes
            self._release_slot(slot, d)
        self._on_change(True, True)
        return len(slots)

    def _end(self, peer: Peer, *, drain: bool) -> None:
        """End one connection now, as close() does, and retire it.

        The ring we write to the peer is marked closed, never withdrawn: the
        peer still reads what we sent, then sees the connection end.  What
        the peer sent that we had taken from its ring and not handed out is
        dropped and counted in ``dropped``; with *drain*, so is what is in
        its ring now (a ring nobody will read after us).
        """
        was_alive = peer.alive
        d = self._dir()
        if was_alive:
            if peer.owns_tx:
                peer.tx.close()
            peer.alive = False
            peer.writable = False
            self._unregister(peer.fd)
            # Our ring to a connector stays in place: the connector removes
            # it once it sees us go (Engine._gone), and one that has not yet
            # read our WELCOME opens it first, so what we sent reaches it.
            # The binder's ring to us we mapped: we are done with it (see
            # close()).
            if not peer.bound:
                d.unlink(peer.rx_seg.name)
        if drain:
            self._drop_unread(peer)
        peer.dropped += len(peer.inbox)
        peer.inbox.clear()
        peer.readable = False
        if self.held is peer:
            self.held = None
        if peer in self._retire_queue:
            self._retire_queue.remove(peer)
        self._retire(peer)
        if was_alive:
            self._on_gone(peer)

    def _drop_unread(self, peer: Peer) -> None:
        """Read what *peer*'s ring holds now and drop it, counting the messages.

        A few reads at most: a writer that is still writing is not followed.
        """
        for _ in range(4):
            try:
                got = peer.read_batch(self.rbuf)
            except CorruptMessage:
                return
            if got == []:
                return
            if got:
                peer.dropped += len(got)

    # -- fork ----------------------------------------------------------------

    def disown(self) -> None:
        """Let go of a socket that belongs to the parent: this process is a fork() child.

        Runs in the child, from the at-fork hook (shmsock._socket).  Every
        descriptor open at the fork is shared with the parent, and so is
        what it leads to: a byte sent on a doorbell reaches the parent's
        peer, a read takes the parent's byte, LOCK_UN releases the parent's
        flock, epoll_ctl edits the parent's epoll set and a read of the
        inotify descriptor takes the parent's events.  The rings and files
        are shared too.  So the child touches none of it:

        - the engine counts as closed, so nothing here runs again (the
          poller's loop ends, ``close`` returns at once): no file removed,
          no ring header written, no doorbell byte sent;
        - each descriptor becomes a descriptor of ``/dev/null`` (dup2).
          That drops the child's hold on the parent's open files, as
          closing would (a dead parent's locks and doorbells are then
          released at once, even while the child lives on), without
          freeing the number: whatever closes it later, or an epoll_ctl
          on it by the child's copy of the parent's Trio loop, meets only
          ``/dev/null``, which epoll refuses;
        - the rings are let go of and unmapped, which is private to the
          child.  Left to the garbage collector (nothing else closes them
          here), a ring's memoryview and the C buffer over it can be
          freed in an order that crashed CPython 3.11 in the tests: the
          memoryview cleared while still exported;
        - the peers count as gone and are forgotten, so nothing reports
          the parent's connections, and a woken copy of a parent's task
          finds nothing to act on.

        Never raises.
        """
        if self.closed:
            return
        self.closed = True
        self.held = None
        fds = set(self._handlers)
        fds.add(self.epoll.fileno())
        if self.dir is not None:
            fds.add(self.dir.fd)
        if self._watch is not None:
            fds.add(self._watch.fd)
        segments: list[tuple[R.Producer | R.Consumer | None, seg.Segment]] = []
        for b in self.bindings.values():
            fds.update((b.lock_fd, b.lsock.fileno()))
            if b.spare is not None:
                segments.append((None, b.spare[1]))
        for slot in self.slots:
            fds.add(slot.lock_fd)
            if slot.dialing is not None:
                fds.add(slot.dialing.fileno())
            segments.append((slot.tx, slot.seg))
        for peer in self.peers:
            fds.add(peer.sock.fileno())
            peer.alive = peer.readable = peer.writable = False
            segments.append((peer.rx, peer.rx_seg))
            if peer.owns_tx:
                segments.append((peer.tx, peer.tx_seg))
        fds.discard(-1)
        self.peers.clear()
        self.send_ready.clear()
        self.recv_ready.clear()
        self._retire_queue.clear()
        for side, sg in segments:
            try:
                if not sg.mm.closed:
                    if side is not None:
                        side.release()
                    sg.close()
            except Exception:  # a buffer still exported: the collector will do
                pass
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # out of descriptors: closing is the next safest
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            return
        try:
            for fd in fds:
                try:
                    os.dup2(null, fd, inheritable=False)
                except OSError:
                    pass
        finally:
            os.close(null)

    def check_usable(self) -> None:
        """Raise the reason a connect can not succeed, if one is known."""
        for slot in self.slots:
            if slot.refused is not None and slot.peer is None:
                raise slot.refused


__all__ = ["Binding", "Engine", "Slot", "StateError"]
