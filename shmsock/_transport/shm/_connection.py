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
does), ``bulk_in`` reads the peer's.
"""

from __future__ import annotations

import socket
import weakref
from array import array
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Protocol

import trio

from ... import _bulkring as B
from ... import _ring as R
from ..._errors import CorruptMessage, MessageTooLarge
from ..._types import SocketType
from .. import Message, Queued
from . import _wire
from ._assembly import SIMPLE, Assembler
from ._bulk import BulkIn, BulkOut
from ._control import ControlOut
from ._framing import Framing
from ._region import send_fds

if TYPE_CHECKING:
    from ._segment import Segment

__all__ = ["Connection", "Home", "Owner", "ShmLoan", "corrupt_reason", "pass_region"]


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


def _refuse(data: bytes, n: int) -> int:
    return -1


class Stream:
    """A message written fragment by fragment as the reader frees room (see ``_framing``)."""

    __slots__ = ("_aux", "_conn", "_next", "_records")

    def __init__(self, conn: Connection, frames: list[bytes], aux: int) -> None:
        self._conn = conn
        self._records = conn.home.framing.fragments(frames)
        self._aux = aux
        self._next = 0
        conn.streaming = True
        conn.try_write = _refuse

    def step(self) -> int:
        conn = self._conn
        records = self._records
        while self._next < len(records):
            if not conn.alive:
                return -1
            payload, flag = records[self._next]
            n = conn.write_records(payload, array("I", [len(payload)]), bytes([flag]), self._aux)
            if n:
                self._next += 1
                continue
            if not conn.alive:  # our ring to it was found corrupt and closed
                return -1
            conn.home.settle()  # before announcing: see _doorbell
            if conn.prepare_wait(len(payload)):
                conn.writable = False
                return 0
        return 1

    def close(self) -> None:
        conn = self._conn
        conn.streaming = False
        if conn.alive:
            conn.try_write = conn.tx.try_write


class ShmLoan:
    """Room for one message in our ring (inline) or its bulk region (a ``Loan``)."""

    __slots__ = ("_conn", "_desc", "_mark", "_private", "buffer", "size")

    def __init__(
        self,
        conn: Connection,
        buffer: memoryview,
        private: bytearray | None,
        desc: bytearray | None,
        mark: tuple[int, int],
    ) -> None:
        self._conn: Connection | None = conn
        self.buffer = buffer
        self._private = private
        self._desc = desc
        self._mark = mark
        self.size = buffer.nbytes
        conn.streaming = True
        conn.try_write = _refuse

    def commit(self) -> bool:
        conn = self._conn
        if conn is None or not conn.alive:
            return False
        desc, private = self._desc, self._private
        if desc is None:
            assert private is not None
            payload, flag = bytes(private), R.START
        else:
            assert conn.bulk_out is not None
            payload, flag = conn.bulk_out.seal(desc, conn.tx.checksum), R.START | R.DESC
        # The room was reserved by loan(), and nothing else writes meanwhile.
        if not conn.write_records(payload, array("I", [len(payload)]), bytes([flag]), 0):
            return False  # our ring was found corrupt: the pipe is gone
        if desc is not None:
            conn.bulk_out.published(self.size, 1)  # type: ignore[union-attr]
        self.buffer.release()
        self._end(conn)
        return True

    def abandon(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self.buffer.release()
        if self._desc is not None and conn.bulk_out is not None:
            conn.bulk_out.undo(self._mark)
        self._end(conn)

    def _end(self, conn: Connection) -> None:
        self._conn = None
        conn.streaming = False
        if conn.alive:
            conn.try_write = conn.tx.try_write


class Connection:
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
        self.try_write = _refuse

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

    def _bulk(self) -> BulkOut:
        bulk = self.bulk_out
        if bulk is None:  # a binder's first large frame
            sock = self.sock  # (not self: no cycle)
            bulk = self.bulk_out = BulkOut(self.tx, partial(pass_region, sock))
        return bulk

    def send_region(self, fd: int) -> None:
        """Pass a new bulk region of our ring to the peer (before any record names it).

        Raises OSError when it cannot go (the peer is gone, or does not read
        its doorbell at all): no record may name it then.
        """
        pass_region(self.sock, fd)

    def _offer_bulk(self, frames: list[bytes], aux: int, inline: int) -> bool:
        """Write a message with frames above *inline* bytes: each in the bulk region.

        All or nothing, as any offer: the frames are copied into the region
        first, privately, and become visible with the records that name
        them, written at once; if those cannot be written, the extents are
        taken back.  No room in the region announces a wait for it.
        """
        last = len(frames) - 1
        flags = [(R.START if i == 0 else 0) | (R.MORE if i < last else 0) for i in range(last + 1)]
        return self._write_bulk(frames, flags, aux, inline)

    def _write_bulk(
        self, frames: Sequence[bytes | memoryview], flags: list[int], aux: int, inline: int
    ) -> bool:
        """Records for *frames* (with *flags*), those above *inline* bytes in the region."""
        bulk = self._bulk()
        checksum = self.tx.checksum
        mark = bulk.mark()
        payloads: list[bytes | memoryview] = []
        kinds = bytearray()
        size = count = 0
        try:
            for frame, flag in zip(frames, flags, strict=True):
                if len(frame) <= inline:
                    payloads.append(frame)
                    kinds.append(flag)
                    continue
                desc = bulk.put(frame, checksum)
                if desc is None and not bulk.prepare_wait(len(frame)):
                    desc = bulk.put(frame, checksum)  # room appeared meanwhile
                if desc is None:
                    bulk.undo(mark)
                    self.writable = False  # the reader rings SPACE once it is there
                    return False
                payloads.append(desc)
                kinds.append(flag | R.DESC)
                size += len(frame)
                count += 1
        except CorruptMessage as exc:
            bulk.undo(mark)
            self._tx_corrupt(exc)
            return False
        except OSError as exc:
            bulk.undo(mark)
            self._tx_corrupt(CorruptMessage(f"cannot pass a bulk region to the peer: {exc}"))
            return False
        lens = array("I", map(len, payloads))
        if self.write_records(b"".join(payloads), lens, bytes(kinds), aux, announce=True) == 0:
            bulk.undo(mark)
            return False
        bulk.published(size, count)
        return True

    def loan(self, size: int) -> ShmLoan | None:
        """Room for a message of *size* bytes, filled in place (see ``Lends``).

        A frame above ``inline_max`` is an extent of the bulk region, the
        view the caller fills (no copy); a smaller one a private buffer,
        written into the ring at commit.  The ring's room for its record is
        checked now: the pipe takes no other message until the loan ends,
        so it is still there at commit.
        """
        if not self.alive:
            return None
        inline = self.home.framing.inline_max
        need = size if size <= inline else B.DESC_SIZE
        try:
            if not self.tx.can_write(need) and (
                self.tx.prepare_wait(need) or not self.tx.can_write(need)
            ):
                self.writable = False
                return None
            if size <= inline:
                private = bytearray(size)
                return ShmLoan(self, memoryview(private), private, None, (0, 0))
            bulk = self._bulk()
            mark = bulk.mark()
            got = bulk.alloc(size)
            if got is None and not bulk.prepare_wait(size):
                got = bulk.alloc(size)  # room appeared meanwhile
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return None
        except OSError as exc:
            self._tx_corrupt(CorruptMessage(f"cannot pass a bulk region to the peer: {exc}"))
            return None
        if got is None:
            self.writable = False
            return None
        view, desc = got
        return ShmLoan(self, view, None, desc, mark)

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

    def _offer_bulk_batch(self, data: bytes, lens: array[int], inline: int) -> bool:
        """A batch with messages above *inline* bytes: each of those in the bulk region.

        All or nothing, as :meth:`_offer_bulk`; raises MessageTooLarge when
        even the DESC records of the batch cannot be written at once.
        """
        big = [n for n in lens if n > inline]
        need = sum((n + B.ALIGN - 1) & ~(B.ALIGN - 1) for n in big)
        room = self._bulk().batch_room(max(big))
        if need > room:
            raise MessageTooLarge(
                f"a batch of {len(lens)} messages needs {need} bytes of bulk region for its"
                f" {len(big)} messages above {inline} bytes, more than one batch may take"
                f" ({room}): send smaller batches"
            )
        view = memoryview(data)
        frames: list[memoryview] = []
        at = 0
        for n in lens:
            frames.append(view[at : at + n])
            at += n
        try:
            return self._write_bulk(frames, [R.START] * len(lens), 0, inline)
        except MessageTooLarge:
            raise self.home.framing.batch_too_large(lens) from None

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

    def stream(self, frames: list[bytes], aux: int) -> Stream:
        return Stream(self, frames, aux)

    def prepare_wait(self, size: int) -> bool:
        """Announce a wait for room for *size* bytes (see Producer.prepare_wait).

        False (do not wait) also when our ring is found corrupt: the
        connection is then closed.
        """
        try:
            return self.tx.prepare_wait(size)
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return False

    def unread(self) -> bool:
        if not self.alive:
            return False
        try:
            return bool(self.tx.unread())
        except CorruptMessage:
            return False

    def prepare_drain(self) -> bool:
        try:
            return self.tx.prepare_drain()
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return False

    def send_control(self, frames: list[bytes]) -> bool:
        if not self.alive:
            return True
        try:
            wake = self.control.send(frames)
        except CorruptMessage as exc:
            self._tx_corrupt(exc)
            return True
        if wake:
            self.ring(_wire.DATA)
        return True

    def flush_control(self) -> None:
        """Write the control messages that waited for room (see ``_control``)."""
        if self.control.pending and self.alive:
            try:
                wake = self.control.flush()
            except CorruptMessage as exc:
                self._tx_corrupt(exc)
                return
            if wake:
                self.ring(_wire.DATA)

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


def pass_region(sock: socket.socket, fd: int) -> None:
    send_fds(sock, _wire.REGION, [fd])


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
