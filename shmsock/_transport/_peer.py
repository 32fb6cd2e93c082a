"""One connection: our ring to the peer, the peer's ring to us, a doorbell.

A Peer moves whole messages.  Outgoing, it turns a message into records
(see "Messages on a ring" in docs/protocol.md); incoming, it assembles
records into messages and queues only complete ones, so a message whose
writer died or gave up halfway is never delivered.

Queued messages are either ``bytes`` (one frame, aux 0: the common case,
kept cheap) or a :class:`Message`.
"""

from __future__ import annotations

import socket
from array import array
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .. import _ring as R
from .._errors import CorruptMessage
from .shm import _wire

if TYPE_CHECKING:
    from .shm._segment import Segment

_SIMPLE = R.START
_MORE_OR_CONT = R.MORE | R.CONT


class Message:
    """A message with several frames, or with a non-zero aux word."""

    __slots__ = ("aux", "frames")

    def __init__(self, frames: list[bytes], aux: int) -> None:
        self.frames = frames
        self.aux = aux


Queued = bytes | Message


class Peer:
    """An attached connection.  The engine creates and retires peers."""

    __slots__ = (
        "alive",
        "bound",
        "busy",
        "check_size",
        "corrupt",
        "discard",
        "drained",
        "dropped",
        "endpoint",
        "fd",
        "frame",
        "in_recv",
        "in_send",
        "inbox",
        "max_msg",
        "max_send",
        "on_tx_corrupt",
        "owns_tx",
        "partial",
        "partial_aux",
        "partial_size",
        "pid",
        "readable",
        "rx",
        "rx_seg",
        "skipping",
        "slot",
        "sock",
        "streaming",
        "take",
        "take_batch",
        "token",
        "tx",
        "tx_seg",
        "writable",
    )

    def __init__(
        self,
        *,
        endpoint: str,
        bound: bool,
        sock: socket.socket,
        tx: R.Producer,
        tx_seg: Segment,
        rx: R.Consumer,
        rx_seg: Segment,
        pid: int,
        slot: int,
        token: str,
        max_msg: int,
        owns_tx: bool,
        max_send: int = _wire.NO_LIMIT,
    ) -> None:
        self.endpoint = endpoint
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
        self.max_msg = max_msg  # the largest message we accept from the peer
        # The largest message the peer accepts from us, as it stated in its
        # handshake (NO_LIMIT if it did not): nothing larger is written.
        self.max_send = max_send
        # A connector's ring outlives each connection to a binder: the slot
        # owns it.  A binder's ring belongs to the connection.
        self.owns_tx = owns_tx
        # A single record can exceed max_msg only when max_msg is small.
        self.check_size = max_msg < rx.max_payload
        self.alive = True  # the doorbell is open
        self.readable = True  # the ring may hold records
        self.writable = True  # our ring may have room
        self.streaming = False  # a fragmented send is writing to tx
        self.in_send = False  # queued in the engine's send_ready
        self.in_recv = False  # queued in the engine's recv_ready
        self.busy = False  # ran dry in a long batch turn (Pattern.next_batch)
        self.discard = False  # its ring failed validation: read no more of it
        self.inbox: deque[Queued] = deque()
        self.partial: list[bytes] | None = None  # frames of an incomplete message
        self.frame: list[bytes] = []  # fragments of an incomplete frame
        self.partial_aux = 0
        self.partial_size = 0
        self.skipping = False  # dropping the rest of an oversized message
        # Messages lost: incomplete ones (writer gave up or died), oversized
        # ones from a peer that did not learn our limit, ones left unread in
        # our ring when the peer hung up, and, when we close, ones in the
        # inbox and ones a peer that went left unread in its ring.
        self.dropped = 0
        self.corrupt = 0  # records failing checks
        # Told when a write finds the peer's position in our ring impossible
        # (the engine closes the connection); None: the write raises.
        self.on_tx_corrupt: Callable[[Peer, CorruptMessage], None] | None = None
        # Reading, for the ready queues (the engine sets them on attach).
        self.take: Callable[[], Queued | None]
        self.take_batch: Callable[[int], tuple[list[Queued], bool] | None]
        self.drained: Callable[[], bool]

    def __repr__(self) -> str:
        state = "alive" if self.alive else "gone"
        return f"<Peer {self.endpoint} slot {self.slot} pid {self.pid} {state}>"

    # -- doorbell ------------------------------------------------------------

    def ring(self, what: bytes) -> None:
        """Wake the peer.  A full socket buffer means it has wake-ups pending."""
        try:
            self.sock.send(what)
        except OSError:
            pass  # gone: its end-of-file is on its way to the poller

    # -- sending ---------------------------------------------------------------
    #
    # A damaged ring header (the peer's consumer position, which it writes)
    # is the peer's fault, not the message's: the write methods report it
    # through tx_corrupt() and answer as for a full ring, so the message
    # can go to another peer.  Check ``alive`` before using ``tx`` again.

    def tx_corrupt(self, exc: CorruptMessage) -> None:
        """Our ring to the peer failed the producer's checks: report it.

        Marks the peer not writable and calls ``on_tx_corrupt``, which
        closes the connection; raises *exc* when nobody is told.
        """
        self.writable = False
        if self.on_tx_corrupt is None:
            raise exc
        self.on_tx_corrupt(self, exc)

    def offer_one(self, data: bytes, aux: int = 0) -> bool:
        """Write a one-frame message that fits a record, with *aux*.

        False when there is no room: this peer is then marked not writable,
        and its doorbell rings once space is freed.  False too when our
        ring to the peer is corrupt (see tx_corrupt).
        """
        try:
            rc = self.tx.write(data, R.START, aux)
            if rc < 0:
                if not self.tx.prepare_wait(len(data)):
                    rc = self.tx.write(data, R.START, aux)  # room appeared meanwhile
                if rc < 0:
                    self.writable = False
                    return False
        except CorruptMessage as exc:
            self.tx_corrupt(exc)
            return False
        if rc:
            self.ring(_wire.DATA)
        return True

    def send_records(
        self,
        data: bytes | memoryview,
        lens: array[int],
        flags: bytes | None,
        aux: int,
        *,
        atomic: bool,
        announce: bool = False,
    ) -> int:
        """Write records (see Producer.write_records); return how many.

        With *announce*, writing nothing marks this peer not writable: its
        doorbell will ring when space is freed.  Writes nothing when our
        ring to the peer is corrupt (see tx_corrupt).
        """
        try:
            n, wake = self.tx.write_records(
                data, lens, flags, aux, atomic=atomic, announce=announce
            )
        except CorruptMessage as exc:
            self.tx_corrupt(exc)
            return 0
        if wake:
            self.ring(_wire.DATA)
        elif n == 0 and announce:
            self.writable = False
        return n

    def send_many(self, messages: list[bytes]) -> int:
        try:
            n, wake = self.tx.write_many(messages)
        except CorruptMessage as exc:
            self.tx_corrupt(exc)
            return 0
        if wake:
            self.ring(_wire.DATA)
        return n

    def prepare_wait(self, size: int) -> bool:
        """Announce a wait for room for *size* bytes (see Producer.prepare_wait).

        False (do not wait) also when our ring is found corrupt: the
        connection is then closed (see tx_corrupt).
        """
        try:
            return self.tx.prepare_wait(size)
        except CorruptMessage as exc:
            self.tx_corrupt(exc)
            return False

    def prepare_drain(self) -> bool:
        """Announce a wait until the peer has read everything (see Producer).

        False (nothing to wait for) also when our ring is found corrupt.
        """
        try:
            return self.tx.prepare_drain()
        except CorruptMessage as exc:
            self.tx_corrupt(exc)
            return False

    # -- receiving -------------------------------------------------------------

    def read_batch(self, buf: R.ReadBuffer, max_count: int = 0) -> list[bytes] | None:
        """Read one batch of records.

        Returns the payloads when they are all plain one-frame messages (the
        fast path: they never touch the inbox), [] when the ring was empty,
        or None when the records went through assembly into the inbox.
        Raises CorruptMessage when the next record fails validation (the
        caller must retire this peer: the ring cannot move past it).
        """
        payloads, flags, aux, wake = self.rx.read(buf, max_count)
        if wake:
            self.ring(_wire.SPACE)
        if not payloads:
            return payloads
        if self.partial is None and not self.skipping and not self.check_size:
            if flags is None:
                return payloads
            if len(payloads) == 1 and flags[0] == _SIMPLE and aux is not None:
                # One whole message with an aux word: a REQ's request or a
                # REP's reply, the round trip's path.
                self.inbox.append(Message(payloads, aux[0]) if aux[0] else payloads[0])
                return None
        self._assemble(payloads, flags, aux)
        return None

    def fill(self, buf: R.ReadBuffer) -> bool:
        """Read one batch of records into the inbox; False if the ring was empty."""
        payloads = self.read_batch(buf)
        if payloads:
            self.inbox.extend(payloads)
            return True
        return payloads is None

    def _assemble(
        self, payloads: list[bytes], flags: list[int] | None, aux: list[int] | None
    ) -> None:
        n = len(payloads)
        flag_list = flags if flags is not None else [_SIMPLE] * n
        aux_list = aux if aux is not None else [0] * n
        for payload, fl, ax in zip(payloads, flag_list, aux_list, strict=True):
            if fl & R.START:
                if self.partial is not None:
                    self.dropped += 1  # the previous message was abandoned
                self.partial, self.frame = [], []
                self.partial_aux, self.partial_size = ax, 0
                self.skipping = False
            elif self.partial is None:
                # The tail of a message we did not see start (we took over
                # the ring mid-message), or of one we are dropping.
                if self.skipping and not fl & _MORE_OR_CONT:
                    self.skipping = False
                continue
            self.partial_size += len(payload)
            if self.partial_size > self.max_msg:
                # Lost, not damaged: a peer that knows our limit (it read
                # it in our handshake) never sends this; one that does not
                # (an older build) cannot tell.
                self.dropped += 1
                self.partial, self.frame = None, []
                self.skipping = bool(fl & _MORE_OR_CONT)
                continue
            self.frame.append(payload)
            if fl & R.CONT:
                continue
            frame = self.frame[0] if len(self.frame) == 1 else b"".join(self.frame)
            self.frame = []
            self.partial.append(frame)
            if fl & R.MORE:
                continue
            frames, self.partial = self.partial, None
            if len(frames) == 1 and self.partial_aux == 0:
                self.inbox.append(frames[0])
            else:
                self.inbox.append(Message(frames, self.partial_aux))

    def abandon_partial(self) -> None:
        """The writer is gone: an incomplete message will never complete."""
        if self.partial is not None:
            self.dropped += 1
            self.partial, self.frame = None, []

    # -- teardown ---------------------------------------------------------------

    def close_doorbell(self) -> None:
        """Close the doorbell socket, waking any task waiting on it."""
        if self.sock.fileno() >= 0:
            try:
                trio.lowlevel.notify_closing(self.sock)
            except RuntimeError:
                pass  # outside of Trio: nobody can be waiting on it
            self.sock.close()

    def release(self) -> None:
        """Unmap the rings this connection owns and close the doorbell.

        Idempotent.
        """
        self.close_doorbell()
        rings: list[tuple[R.Consumer | R.Producer, Segment]] = [(self.rx, self.rx_seg)]
        if self.owns_tx:
            rings.append((self.tx, self.tx_seg))
        for ring, seg in rings:
            if not seg.mm.closed:
                ring.release()
                seg.close()


def corrupt_reason(exc: CorruptMessage, peer: Peer) -> CorruptMessage:
    """The error a receiver raises for a peer whose ring failed validation."""
    err = CorruptMessage(f"{exc.reason} (from {peer.endpoint}, peer pid {peer.pid})", exc.code)
    err.__cause__ = exc
    return err
