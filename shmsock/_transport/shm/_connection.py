"""One shared-memory connection: our ring to the peer, its ring to us, a doorbell.

A :class:`Connection` is the shm transport's pipe (the contract is in
``shmsock._transport``).  Outgoing, it writes whole messages as records
(``_framing`` decides how); incoming, it reads records and assembles them
(``_assembly``), so only complete messages reach the inbox.  It knows the
rest of the transport through two narrow interfaces it is handed:

- its *home* (:class:`Home`, the connection set): the shared read buffer,
  the wake-up protocol's "the ring is empty" step, and what to do when the
  connection ends;
- its *owner* (:class:`Owner`): the binding or the slot it came through,
  told when it goes, when our ring to the peer is found corrupt, and when
  it is retired (a binder reclaims the slot, a connector dials again).

Neither is imported: the connection never reaches up a layer.

A damaged ring header (the peer's consumer position, which the peer
writes) is the peer's fault, not the message's: writing reports it to the
home, which closes the connection, and answers as for a full ring, so the
message can go to another pipe.  Check ``alive`` before writing again.

Frames larger than ``Framing.inline_max`` go through the ring's bulk
region (``_bulk``): ``bulk_out`` writes ours (the binder's own, made at
its first large frame; a connector's belongs to its slot, as its ring
does), ``bulk_in`` reads the peer's.  Writing them, loans, streams and
the linger's questions are :class:`~._bulksend.BulkSend`'s, a mixin of
:class:`Connection` kept in ``_bulksend``; the hot paths (``offer``,
``offer_batch``, ``try_write``, ``take``, ``take_batch``, the reads) stay
here.
"""

from __future__ import annotations

import socket
import weakref
from array import array
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Protocol

import trio

from ... import _ring as R
from ..._errors import CorruptMessage, MessageTooLarge
from ..._types import SocketType
from .. import Message, Queued
from . import _wire
from ._assembly import SIMPLE, Assembler
from ._bulk import BulkIn, BulkOut
from ._bulksend import BulkSend, refuse
from ._control import ControlOut
from ._framing import Framing

if TYPE_CHECKING:
    from ._segment import Segment

__all__ = ["Connection", "Home", "Owner", "corrupt_reason"]


class Home(Protocol):
    """What a connection needs from the set that keeps it (``_connections``)."""

    rbuf: R.ReadBuffer
    framing: Framing

    def empty(self, conn: Connection) -> None:
        """*conn*'s ring was found empty: ask to be woken, or finish it if gone."""

    def fetch(self, conn: Connection) -> None:
        """Read *conn*'s doorbell now for the regions it carries (see ``_doorbell``)."""

    def gone(self, conn: Connection) -> None:
        """*conn* has ended (its peer hung up, or its rings are not to be trusted)."""

    def tx_corrupt(self, conn: Connection, exc: CorruptMessage) -> None:
        """A write found the peer's position in our ring impossible."""

    def settle(self) -> None:
        """Read a held doorbell before announcing a wait (see ``_doorbell``)."""

    def retire(self, conn: Connection) -> None:
        """The socket is done with *conn*: release it and count it."""

    def control(self, conn: Connection, messages: list[list[bytes]]) -> None:
        """Control messages arrived from *conn*'s peer: hand them to the socket."""


class Owner(Protocol):
    """The binding or the slot a connection came through."""

    endpoint: str

    def on_gone(self, conn: Connection) -> None: ...

    def on_corrupt(self, conn: Connection) -> None: ...

    def on_retired(self, conn: Connection) -> None: ...


class Connection(BulkSend):
    """An attached connection.  The connection set makes and retires them."""

    __slots__ = (
        "__weakref__",
        "alive",
        "asm",
        "bad_records",
        "bound",
        "bulk_in",
        "bulk_out",
        "busy",
        "control",
        "discard",
        "endpoint",
        "fan_over",
        "fd",
        "home",
        "in_recv",
        "in_send",
        "inbox",
        "lost",
        "owner",
        "owns_tx",
        "peer_identity",
        "peer_limit",
        "peer_type",
        "pid",
        "plain_ok",
        "readable",
        "rx",
        "rx_seg",
        "slot",
        "sock",
        "streaming",
        "token",
        "try_write",
        "tx",
        "tx_seg",
        "writable",
    )

    #: One peer per pipe (the contract's ``carries_ids``).
    carries_ids = False

    home: Home  # (BulkSend declares only what the sending side uses of it)

    def __init__(
        self,
        *,
        home: Home,
        owner: Owner,
        bound: bool,
        sock: socket.socket,
        tx: R.Producer,
        tx_seg: Segment,
        rx: R.Consumer,
        rx_seg: Segment,
        pid: int,
        slot: int,
        token: str,
        peer_type: SocketType,
        peer_limit: int,
        max_msg: int,
        control: ControlOut,
        bulk_in: BulkIn | None = None,
        bulk_out: BulkOut | None = None,
        peer_identity: bytes = b"",
    ) -> None:
        self.home = home
        self.control = control  # the control messages of tx (a slot's, for a connector)
        self.owner = owner
        self.endpoint = owner.endpoint
        self.bound = bound  # True on the binder's side of the connection
        self.sock = sock
        self.fd = sock.fileno()
        self.tx = tx
        self.tx_seg = tx_seg
        self.rx = rx
        self.rx_seg = rx_seg
        self.pid = pid
        self.slot = slot
        self.token = token
        self.peer_type = peer_type
        self.peer_limit = peer_limit
        self.peer_identity = peer_identity
        # A connector's ring outlives each connection to a binder: the slot
        # owns it.  A binder's ring belongs to the connection.
        self.owns_tx = bound
        self.asm = Assembler(max_msg)
        self.inbox = self.asm.inbox
        self.alive = True  # the doorbell is open
        self.readable = True  # the ring may hold records
        self.writable = True  # our ring may have room
        self.streaming = False  # a Stream is writing to tx
        self.in_send = self.in_recv = self.busy = False  # the ready queues'
        self.discard = False  # its ring failed validation: read no more of it
        self.bad_records = 0  # records that failed validation
        # Whole messages lost: left unread in our ring when the peer hung up,
        # taken from its ring and never handed out, left in its ring when
        # this socket let go of the connection.
        self.lost = 0
        self.fan_over = 0  # messages a fan-out passed over: above peer_limit
        # Whole records may skip assembly unless one can exceed max_msg.
        self.plain_ok = max_msg >= rx.max_payload
        # The send fast path: C with no Python frame in between.
        self.try_write = tx.try_write
        # The bulk regions: theirs (passed with the HELLO, or over the
        # doorbell), and ours (made at our first large frame).  What they
        # call back holds the connection weakly: no cycle, so a connection
        # and its segments are freed by reference counting, in the order
        # Segment keeps, never by the garbage collector's (see Segment).
        me = weakref.ref(self)
        self.bulk_in = bulk_in if bulk_in is not None else BulkIn(rx, max_msg, resync=bound)
        self.bulk_in.fetch = partial(_call, me, _fetch)
        self.bulk_in.wake = partial(_call, me, _wake)
        self.bulk_in.corrupt = partial(_call, me, Connection.reject)
        self.asm.hold = self.bulk_in.hold
        self.bulk_out = bulk_out

    def __repr__(self) -> str:
        state = "alive" if self.alive else "gone"
        return f"<Connection {self.endpoint} slot {self.slot} pid {self.pid} {state}>"

    @property
    def dropped(self) -> int:
        """Messages lost: incomplete ones (the writer gave up or died), and ``lost``."""
        return self.asm.dropped + self.lost + self.fan_over

    @property
    def fan_missed(self) -> int:
        """Messages a PUB's fan-out dropped for this peer (no room, or over its limit).

        A connector's ring outlives its binders: its count runs over them all.
        """
        return self.tx.dropped + self.fan_over

    def count_unread_as_lost(self) -> None:
        """The peer hung up: what it left unread in a ring we own is lost.

        It has stopped reading for good, and that ring goes with the
        connection.  A connector's ring is not lost with its binder: the
        slot keeps it for the next binder.
        """
        if self.owns_tx:
            try:
                self.lost += self.tx.unread_messages()
            except CorruptMessage:
                pass  # its position is impossible: how much it read is unknown

    def reject(self) -> None:
        """The peer's ring failed validation: read no more of it, end the connection.

        A binder tells the connector, whose next dial brings a fresh ring.
        """
        self.bad_records += 1
        if self.bound:
            self.ring(_wire.CORRUPT)
        self.discard = True
        self.home.gone(self)

    def drop_unread(self) -> None:
        """Read what the peer's ring holds now and drop it, counting the messages.

        For a ring nobody will read after us.  A few reads at most: a writer
        that is still writing is not followed.
        """
        for _ in range(4):
            try:
                got = self.read_batch(self.home.rbuf)
            except CorruptMessage:
                return
            if got == []:
                return
            if got:
                self.lost += len(got)

    @property
    def corrupt(self) -> int:
        """Records that failed validation."""
        return self.bad_records

    @property
    def peer_pid(self) -> int:
        return self.pid

    # -- doorbell ------------------------------------------------------------

    def ring(self, what: bytes) -> None:
        """Ring the peer's doorbell.  A full socket buffer means wake-ups are pending."""
        try:
            self.sock.send(what)
        except OSError:
            pass  # gone: its end-of-file is on its way to our poller

    def wake(self) -> None:
        """Tell the peer that records arrived (``try_write`` returned 1)."""
        try:
            self.sock.send(_wire.DATA)
        except OSError:
            pass

    def close_doorbell(self) -> None:
        """Close the doorbell socket, waking any task waiting on it."""
        if self.sock.fileno() >= 0:
            try:
                trio.lowlevel.notify_closing(self.sock)
            except RuntimeError:
                pass  # outside of Trio: nobody can be waiting on it
            self.sock.close()

    # -- writing -----------------------------------------------------------------

    def gone_for_writing(self) -> None:
        """The connection ended: the send fast path and every offer refuse."""
        self.writable = False
        self.try_write = refuse

    def _tx_corrupt(self, exc: CorruptMessage) -> None:
        self.writable = False
        self.home.tx_corrupt(self, exc)

    def offer(self, frames: list[bytes], aux: int) -> bool:
        inline = self.home.framing.inline_max
        if len(frames) != 1:
            if max(map(len, frames)) > inline:
                return self._offer_bulk(frames, aux, inline)
            joined, lens, flags = Framing.encode(frames)
            return self.write_records(joined, lens, flags, aux, announce=True) > 0
        # One frame, one record (the round trip's path: no other call).
        data = frames[0]
        if len(data) > inline:
            return self._offer_bulk(frames, aux, inline)
        try:
            rc = self.tx.write(data, R.START, aux)
            if rc < 0:
                if not self.tx.prepare_wait(len(data)):
                    rc = self.tx.write(data, R.START, aux)  # room appeared meanwhile
                if rc < 0:
                    self.writable = False
                    return False
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return False
        if rc:
            self.ring(_wire.DATA)
        return True

    def offer_batch(self, data: bytes, lens: array[int]) -> bool:
        try:
            return self.write_records(data, lens, None, 0, announce=True) == len(lens)
        except MessageTooLarge:
            # Only now (never on the fast path) look for frames that belong
            # in the bulk region: a message above max_record, or a batch
            # whose large messages would take more than half the ring.
            inline = self.home.framing.inline_max
            if max(lens) <= inline:
                raise self.home.framing.batch_too_large(lens) from None
        return self._offer_bulk_batch(data, lens, inline)

    def write_records(
        self,
        data: bytes | memoryview,
        lens: array[int],
        flags: bytes | None,
        aux: int,
        *,
        announce: bool = False,
    ) -> int:
        """Write records, all or none (see Producer.write_records); return how many.

        With *announce*, writing nothing marks this connection not writable:
        its doorbell will ring when space is freed.  Writes nothing when
        our ring to the peer is corrupt (it is then closed).
        """
        try:
            n, wake = self.tx.write_records(data, lens, flags, aux, atomic=True, announce=announce)
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return 0
        if wake:
            self.ring(_wire.DATA)
        elif n == 0 and announce:
            self.writable = False
        return n

    # -- reading ---------------------------------------------------------------

    def take(self) -> Queued | None:
        inbox = self.inbox
        if inbox:
            return inbox.popleft()
        while self.readable:
            got = self._read(0)
            if got:
                if len(got) > 1:
                    inbox.extend(got[1:])
                return got[0]
            if inbox:
                return inbox.popleft()
        return None

    def take_batch(self, max_count: int) -> tuple[list[Queued], bool] | None:
        inbox = self.inbox
        if inbox:
            if len(inbox) <= max_count:
                items = list(inbox)
                inbox.clear()
            else:
                items = [inbox.popleft() for _ in range(max_count)]
            return items, False
        while self.readable:
            got = self._read(max_count)
            if got:
                return got, True  # type: ignore[return-value]
            if inbox:
                return self.take_batch(max_count)
        return None

    def drained(self) -> bool:
        if self.inbox:
            return False
        try:
            return self.rx.available() == 0
        except CorruptMessage:
            return False  # the next read reports it

    def push_back(self, items: Sequence[Queued]) -> None:
        self.inbox.extendleft(reversed(items))

    def _read(self, max_count: int) -> list[bytes] | None:
        """One batch from the ring: plain payloads, or None/[] (see read_batch).

        On an empty ring, tells the home (which announces the wait, or
        finishes a connection whose peer is gone).
        """
        try:
            got = self.read_batch(self.home.rbuf, max_count)
        except CorruptMessage as exc:
            self.reject()
            raise corrupt_reason(exc, self) from None
        if got is None or got:
            return got
        self.home.empty(self)
        return got

    def read_batch(self, buf: R.ReadBuffer, max_count: int = 0) -> list[bytes] | None:
        """Read one batch of records.

        Returns the payloads when they are all plain one-frame messages (the
        fast path: they never touch the inbox), [] when the ring was empty,
        or None when the records went through assembly into the inbox.
        Raises CorruptMessage when the next record fails validation (the
        caller must end this connection: the ring cannot move past it).
        """
        payloads, flags, aux, wake = self.rx.read(buf, max_count)
        if wake:
            self.ring(_wire.SPACE)
        if not payloads:
            return payloads
        asm = self.asm
        if self.plain_ok and asm.partial is None and not asm.skipping:
            if flags is None:
                return payloads
            if len(payloads) == 1 and flags[0] == SIMPLE and aux is not None:
                # One whole message with an aux word: a REQ's request or a
                # REP's reply, the round trip's path.
                asm.inbox.append(Message(payloads, aux[0]) if aux[0] else payloads[0])
                return None
        asm.add(payloads, flags, aux)
        if asm.controls:
            controls, asm.controls = asm.controls, []
            self.home.control(self, controls)
        return None

    # -- ending ----------------------------------------------------------------

    def retire(self) -> None:
        self.home.retire(self)

    def release(self) -> None:
        """Unmap the rings and regions this connection owns and close the doorbell.

        Idempotent.  A region that a lease still views is unmapped with
        the lease's last view.
        """
        self.close_doorbell()
        self.bulk_in.close()
        self.rx_seg.close()  # and the consumer over it, first (see Segment)
        if self.owns_tx:
            if self.bulk_out is not None:
                self.bulk_out.close()
            self.tx_seg.close()


def _call(ref: weakref.ref[Connection], fn: Callable[[Connection], None]) -> None:
    conn = ref()
    if conn is not None:
        fn(conn)


def _fetch(conn: Connection) -> None:
    conn.home.fetch(conn)


def _wake(conn: Connection) -> None:
    conn.ring(_wire.SPACE)


def corrupt_reason(exc: CorruptMessage, conn: Connection) -> CorruptMessage:
    """The error a receiver raises for a connection whose ring failed validation."""
    err = CorruptMessage(f"{exc.reason} (from {conn.endpoint}, peer pid {conn.pid})", exc.code)
    err.__cause__ = exc
    return err
