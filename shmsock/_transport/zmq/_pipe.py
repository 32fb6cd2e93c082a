"""A link's pipe: what the socket reads from and writes to while the link has a peer.

A pipe is what a link shows its socket while it has a peer (``_link.py``).
Every call it makes into libzmq keeps the package's rules: DONTWAIT, then
``Link.after_call`` when the other direction is marked not ready (rule 3),
and ``Link.again_send`` / ``Link.again_recv`` on Again (rule 4).  Plain
messages move in batches through libzmq's C API (``_calls.py``); the
others, frame by frame, through pyzmq, wrapped by the socket type's
envelope (``_envelope.py``).
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import zmq

from ..._errors import HostUnreachable
from ..._stats import EndpointStats
from .. import NO_LIMIT, Queued, WholeStream
from . import _calls
from ._envelope import size_of

if TYPE_CHECKING:
    from array import array

    from ._link import Link

__all__ = ["ZmqPipe"]

_DONTWAIT: Final = int(zmq.DONTWAIT)  # (plain ints: see _link.py)
_MORE: Final = int(zmq.DONTWAIT | zmq.SNDMORE)
# Every send copies the frame into libzmq's own message (zmq_send, or
# pyzmq's copy=True), whatever its size.  A zero-copy frame lends libzmq a
# Python buffer that pyzmq's garbage-collector thread keeps alive, and
# pyzmq's atexit handler forgets those buffers before shmsock's closes the
# context: libzmq's I/O thread, still sending what a lingering socket holds,
# then read freed memory and the process died (SIGSEGV, or "Bad address").
#: How often one offer or take calls libzmq again at once (rules 4 and 6).
_TRIES: Final = 4
#: Messages a take() brings from libzmq into the inbox at once, for the
#: receive fast path (which pops the inbox) to find: as many as the batch
#: call takes at once (``_calls.Batch.max_count``), so that recv_nowait
#: goes the general way once per 256 messages rather than once per 64.
_PREFETCH: Final = 256


class ZmqPipe:
    """What a link shows its socket while it has a peer: one pipe of the contract."""

    __slots__ = (
        "_batch",
        "_drained",
        "_envelope",
        "_max",
        "_mixed",
        "_recv",
        "_send",
        "_send1",
        "_send1_args",
        "_watch_recv",
        "_watch_send",
        "alive",
        "busy",
        "bytes_received",
        "bytes_sent",
        "carries_ids",
        "corrupt",
        "dropped",
        "endpoint",
        "fan_missed",
        "in_recv",
        "in_send",
        "inbox",
        "link",
        "messages_received",
        "messages_sent",
        "peer_identity",
        "peer_limit",
        "peer_type",
        "readable",
        "streaming",
        "took_since_gone",
        "try_write",
        "writable",
    )

    def __init__(self, link: Link) -> None:
        spec = link.spec
        self.link = link
        self.endpoint = link.endpoint
        self.peer_type = min(spec.compatible) if spec.compatible else spec.kind
        self.peer_limit = NO_LIMIT  # libzmq peers do not say; they drop what is too big
        self.peer_identity = b""
        self.carries_ids = link.envelope.routed
        self.alive = self.readable = self.writable = True
        self.streaming = self.in_send = self.in_recv = self.busy = False
        self.inbox: deque[Queued] = deque()
        self._envelope = link.envelope
        self._send = link.sock.send
        self._recv = link.sock.recv
        # The C calls move plain messages (one frame, no envelope) in
        # batches; the rest goes through pyzmq, frame by frame.
        batch = link.batch if link.envelope.plain else None
        self._batch = batch
        # try_write calls libzmq's zmq_send through the C module directly:
        # no Python frame between the socket's fast path and libzmq.
        self._send1 = _calls.lib.zb_send1 if batch is not None else None
        self._send1_args: tuple[Any, Any] = batch.send1_args if batch is not None else (None, None)
        self._max = spec.options.max_msg_size
        self._watch_recv = link.watch_recv
        self._watch_send = link.watch_send
        self._drained = False
        #: The inbox may hold something that is not bytes (a Message): only
        #: then does take_batch look at each item.
        self._mixed = False
        #: Gone, and something taken from libzmq since (see Link._detach).
        self.took_since_gone = False
        self.try_write: Callable[[bytes, int], int] = (
            self._try_write if link.envelope.plain else self.refuse
        )
        self.messages_sent = self.bytes_sent = 0
        self.messages_received = self.bytes_received = 0
        self.dropped = self.corrupt = 0
        #: Messages a PUB's fan-out could not hand libzmq (also in dropped).
        #: What libzmq's own PUB drops at its sndhwm it does not report.
        self.fan_missed = 0

    def __repr__(self) -> str:
        return f"<ZmqPipe {self.endpoint} {'alive' if self.alive else 'gone'}>"

    @property
    def peer_pid(self) -> int:
        """0: a libzmq peer's process is not known (it may be on another host)."""
        return 0

    # -- writing ---------------------------------------------------------------

    @staticmethod
    def refuse(data: bytes, n: int) -> int:
        """``try_write`` of a pipe with no fast path, or gone: take the general path."""
        return -1

    def _try_write(self, data: bytes, n: int) -> int:
        if not self.writable:
            # Full, or a batch's rest waits in the link (rule 6): nothing
            # may pass it, though libzmq may have learnt of room already.
            return -1
        send1 = self._send1
        if send1 is not None:
            api, handle = self._send1_args
            if send1(api, handle, data, n):
                return -1  # offer() then meets it again, and keeps rule 4
        else:
            try:
                self._send(data, _DONTWAIT)
            except zmq.Again:
                return -1
        self.messages_sent += 1
        self.bytes_sent += n
        if self._watch_recv and not self.readable:
            self.link.after_call()
        return 0

    def wake(self) -> None:
        """libzmq wakes its peers itself."""

    def _send_frames(self, wire: list[bytes]) -> int:
        """Send one message: 1 sent, 0 Again before anything went, -1 unreachable."""
        send1 = self._send1
        if send1 is not None and len(wire) == 1:
            api, handle = self._send1_args
            err = send1(api, handle, wire[0], len(wire[0]))
            if not err:
                return 1
            if err == errno.EAGAIN:
                return 0
            raise zmq.ZMQError(err)
        send = self._send
        last = len(wire) - 1
        for _ in range(_TRIES):
            i = 0
            try:
                for i, frame in enumerate(wire):
                    flags = _MORE if i < last else _DONTWAIT
                    send(frame, flags)
                return 1
            except zmq.Again:
                if i == 0:
                    return 0
                # A connection ended mid-message (rule 6): libzmq drops the
                # rest of it, and the whole message goes again.
                if self._envelope.ends_dropping:
                    for j in range(i + 1, len(wire)):
                        try:
                            send(wire[j], _MORE if j < last else _DONTWAIT)
                        except zmq.ZMQError:
                            break
            except zmq.ZMQError as exc:
                if exc.errno == errno.EHOSTUNREACH and i == 0:
                    return -1
                raise
        return 0

    def offer(self, frames: list[bytes], aux: int) -> bool:
        if not self.alive:
            return False
        link = self.link
        if link.backlog is not None:  # a batch's rest goes first (rule 6)
            self.writable = False
            return False
        envelope = self._envelope
        wire = envelope.encode(frames, aux)
        if wire is None:
            self.dropped += 1  # a reply whose request did not come through this pipe
            return True
        for _ in range(_TRIES):
            sent = self._send_frames(wire)
            if sent:
                break
            if not link.again_send(self):
                return False
        else:
            return False
        envelope.sent(aux)
        if sent < 0:
            if self._watch_recv and not self.readable:
                link.after_call()  # rule 3, before a raise too: the call may have taken a signal
            if envelope.routed and link.spec.options.router_mandatory:
                rid = frames[0]
                raise HostUnreachable(
                    f"no peer of {self.endpoint} has routing id {rid!r}: it never connected,"
                    " or it has departed (nothing was sent; set router_mandatory=False to"
                    " drop such messages silently, as libzmq does by default)",
                    rid,
                )
            self.dropped += 1  # the requester has gone: its reply is dropped, as REP does
            return True
        self.messages_sent += 1
        self.bytes_sent += sum(map(len, frames))
        if self._watch_recv and not self.readable:
            link.after_call()
        return True

    def offer_batch(self, data: bytes, lens: array[int]) -> bool:
        """Hand a batch to libzmq, all of it: what has no room yet waits in the link."""
        link = self.link
        if not self.alive or link.backlog is not None:
            return False
        batch = self._batch
        count = len(lens)
        for _ in range(_TRIES):
            if batch is not None:
                sent, err = batch.send(data, _calls.lens_of(lens), count)
                if sent == count:
                    return self._sent_batch(data, lens)
                if err != errno.EAGAIN:
                    raise zmq.ZMQError(err)
            else:
                sent = self._send_each(data, lens)
                if sent == count:
                    return self._sent_batch(data, lens)
            if sent:
                link.hold(memoryview(data), list(lens[sent:]), sum(lens[:sent]))
                self.writable = False
                link.after_call()  # rule 4: arms the descriptor, may flush at once
                return self._sent_batch(data, lens)
            if not link.again_send(self):
                return False
        return False

    def _send_each(self, data: bytes, lens: array[int]) -> int:
        """pyzmq's way: one call per message; returns how many went before Again."""
        view = memoryview(data)
        send = self._send
        pos = 0
        for i, n in enumerate(lens):
            try:
                send(view[pos : pos + n], _DONTWAIT)
            except zmq.Again:
                return i
            pos += n
        return len(lens)

    def _sent_batch(self, data: bytes, lens: array[int]) -> bool:
        self.messages_sent += len(lens)
        self.bytes_sent += len(data)
        if self._watch_recv and not self.readable:
            self.link.after_call()
        return True

    def stream(self, frames: list[bytes], aux: int) -> WholeStream:
        return WholeStream(self, frames, aux)

    def fan_put(self, frames: list[bytes], aux: int) -> None:
        """A PUB's message: handed to libzmq, or missed and counted."""
        if not self.alive:
            return
        if not self.offer(frames, aux):
            self.fan_missed += 1
            self.dropped += 1

    def send_control(self, frames: list[bytes]) -> bool:
        return True  # libzmq's own socket types carry their control (subscriptions)

    def unread(self) -> bool:
        """Whether the link still holds some of what was sent (libzmq's queue is unknown)."""
        return self.alive and self.link.backlog is not None

    def prepare_drain(self) -> bool:
        if not self.unread():
            return False
        self.link.drain_waiting = True
        return True

    # -- reading ---------------------------------------------------------------

    def _finish(self, frames: list[bytes]) -> Queued | None:
        """A whole message received: checked, counted and decoded (None: dropped)."""
        size = sum(map(len, frames))
        if size > self._max:
            self.corrupt += 1
            return None
        item = self._envelope.decode(frames)
        if item is None:
            self.dropped += 1
            return None
        self.messages_received += 1
        self.bytes_received += size
        return item

    def _rest(self, frames: list[bytes], more: bool) -> Queued | None:
        """The message that starts with *frames*: the frames still in libzmq too."""
        recv = self._recv
        while more:
            frame = recv(_DONTWAIT, copy=False)  # libzmq delivers whole messages
            frames.append(frame.bytes)
            more = frame.more
        return self._finish(frames)

    def _fill(self, want: int) -> int:
        """Move up to *want* messages from libzmq into the inbox (rule 4 on Again).

        Returns the flags of the last try: ZB_AGAIN when libzmq had no more.
        """
        link = self.link
        if not self.alive and link.arrival_pending():
            self.readable = False
            return _calls.ZB_AGAIN
        inbox = self.inbox
        batch = self._batch
        flags = 0
        for _ in range(_TRIES):
            if batch is not None:
                got, flags, nbytes = batch.recv(want)
                if got:
                    if not self.alive:
                        self.took_since_gone = True
                    inbox.extend(got)
                    self.messages_received += len(got)
                    self.bytes_received += nbytes
                if flags & _calls.ZB_HELD:
                    if not self.alive:
                        self.took_since_gone = True
                    data, more = batch.take_held()
                    item = self._rest([data], more)
                    if item is not None:
                        inbox.append(item)
                        self._mixed = True
            else:
                try:
                    frame = self._recv(_DONTWAIT, copy=False)
                except zmq.Again:
                    flags = _calls.ZB_AGAIN
                else:
                    flags = 0
                    if not self.alive:
                        self.took_since_gone = True
                    item = self._rest([frame.bytes], frame.more)
                    if item is not None:
                        inbox.append(item)
                        self._mixed = True
            if inbox or not flags & _calls.ZB_AGAIN:
                if inbox:
                    break
                continue  # what came was dropped: look again
            if not link.again_recv(self):
                return flags
        if self._watch_send:
            pipe = link.pipe
            if pipe is not None and not pipe.writable:
                link.after_call()
        return flags

    def _can_read(self) -> bool:
        link = self.link
        if link.reader is not self or link.closed:
            self.readable = False
            return False
        return True

    def take(self) -> Queued | None:
        inbox = self.inbox
        if not inbox:
            if not self._can_read():
                return None
            self._drained = bool(self._fill(_PREFETCH) & _calls.ZB_AGAIN)
            if not inbox:
                return None
        return inbox.popleft()

    def take_batch(self, max_count: int) -> tuple[list[Queued], bool] | None:
        inbox = self.inbox
        if len(inbox) < max_count and self._can_read():
            self._drained = bool(self._fill(max_count - len(inbox)) & _calls.ZB_AGAIN)
        if not inbox:
            return None
        if len(inbox) <= max_count:
            items = list(inbox)
            inbox.clear()
        else:
            popleft = inbox.popleft
            items = [popleft() for _ in range(max_count)]
        if not self._mixed:
            return items, True  # all bytes, from libzmq's batch call
        if not inbox:
            self._mixed = False
        return items, all(type(item) is bytes for item in items)

    def drained(self) -> bool:
        return self._drained and not self.inbox

    def push_back(self, items: Sequence[Queued]) -> None:
        self.inbox.extendleft(reversed(items))
        self._mixed = True  # (rare: not worth looking)

    def hand_over(self, successor: ZmqPipe) -> None:
        """What this gone pipe took into its inbox goes first in *successor*'s."""
        inbox = self.inbox
        if inbox:
            n, nbytes = len(inbox), sum(map(size_of, inbox))
            successor.inbox.extendleft(reversed(inbox))
            successor._mixed = True
            inbox.clear()
            self.messages_received -= n
            self.bytes_received -= nbytes
            successor.messages_received += n
            successor.bytes_received += nbytes

    def drop_inbox(self) -> None:
        """The link closes: what the inbox holds is lost, and counted in ``dropped``."""
        inbox = self.inbox
        if inbox:
            n, nbytes = len(inbox), sum(map(size_of, inbox))
            inbox.clear()
            self.messages_received -= n
            self.bytes_received -= nbytes
            self.dropped += n

    # -- ending ----------------------------------------------------------------

    def retire(self) -> None:
        self.link.retire(self)

    def count(self, st: EndpointStats) -> None:
        """Add this pipe's counters to *st*; what waits in its inbox is not received yet.

        The exporter's thread calls this too: the inbox is copied (under the
        GIL) before it is looked at.
        """
        inbox = list(self.inbox)
        st.messages_sent += self.messages_sent
        st.bytes_sent += self.bytes_sent
        st.messages_received += self.messages_received - len(inbox)
        st.bytes_received += self.bytes_received - sum(map(size_of, inbox))
        st.used_in += sum(map(size_of, inbox))
        st.dropped += self.dropped
        st.corrupt += self.corrupt
