"""ROUTER: every peer has a routing id; messages come in behind it and go out by it.

Rules (libzmq's ROUTER, with ROUTER_MANDATORY on by default):

1. **Routing ids.**  Each connection gets one when it attaches: the
   ``routing_id`` its peer asked for, or else five bytes, ``b"\\x00"`` and a
   32-bit counter that starts at a random value (libzmq's shape).  The
   ids of live peers are unique: a transport asks :meth:`identity_in_use`
   before it accepts a peer, and refuses one whose id is taken
   (RoutingIdInUse on the peer that asked).  A peer's id is free again as
   soon as it departs, so a restarted peer gets its id back.
2. **Receiving** returns ``[routing_id, *frames]``, fair-queued over the
   peers.  From a REQ, libzmq's envelope: ``[routing_id, request_id,
   b"", *frames]``, the request id as 4 bytes (native order, as libzmq's
   REQ_CORRELATE writes it).  What a peer sent before it departed is still
   received, behind the id it had.
3. **Sending** takes ``[routing_id, *frames]`` and writes *frames* to that
   peer only.  To a REQ, the frames after the id are the envelope it came
   with, ``[request_id, b"", *reply]``, or libzmq's plain ``[b"",
   *reply]`` (the reply then answers that REQ's last request); the REQ
   receives the reply alone.  Anything else to a REQ raises ValueError.
4. **Unknown or departed ids** raise HostUnreachable (``router_mandatory``,
   the default); with it off, the message is dropped silently and counted
   in ``unroutable``, as plain libzmq drops it.
5. **A full peer** makes ``send`` wait for room in *that* peer's ring
   (other peers are not tried: the id says where the message goes), and
   ``send_nowait`` raise WouldBlock.  A peer that departs meanwhile is
   rule 4.
6. **Pipes that carry many peers** (``carries_ids``: a ``tcp://`` or
   ``ipc://`` link, one libzmq ROUTER) have no id of their own: their
   messages come with the peer's routing id in front already, given by
   libzmq (the peer's ``routing_id``, or five bytes libzmq makes up), and
   go out through the pipe a routing id last came from; an id never seen
   goes to the first such pipe, whose libzmq socket knows its peers.
   libzmq, not this pattern, decides there whether the id is known (rule 4
   then as above), and a duplicate id there is libzmq's rule: the newcomer
   is ignored, without an error on its side.  ``peer_ids()`` lists the
   peers of the other pipes only.
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Sequence
from typing import Final

from .._errors import HostUnreachable
from .._options import Options
from .._types import SocketType
from ._base import DROPPED, Pattern, Placement
from ._queues import PipeView

__all__ = ["RouterMethods", "RouterPattern"]

log = logging.getLogger("shmsock")

#: A REQ's request id in its envelope: 4 bytes, as libzmq's REQ_CORRELATE.
REQUEST_ID: Final = struct.Struct("=I")
_AUTO_ID: Final = struct.Struct(">BI")
#: Routing ids remembered for rule 6 (libzmq does not say when a peer departs).
_CAME_FROM_MAX: Final = 1 << 16


class RouterMethods:
    """The methods of a ROUTER socket alone (mixed in by ``shmsock.socket``)."""

    __slots__ = ()

    _pattern: RouterPattern

    @property
    def unroutable(self) -> int:
        """Messages dropped because their routing id named no peer (``router_mandatory`` off)."""
        return self._pattern.unroutable

    def peer_ids(self) -> list[bytes]:
        """The routing ids of the peers connected now, in the order they attached."""
        return list(self._pattern.by_id)


class RouterPattern(Pattern):
    kind = SocketType.ROUTER
    can_send = True
    can_recv = True
    writes_data = True
    reads_data = True
    compatible = frozenset({SocketType.REQ, SocketType.DEALER, SocketType.ROUTER})
    socket_methods = RouterMethods
    envelope = "routed"
    shapes_send = True
    shapes_recv = True

    def __init__(self) -> None:
        super().__init__()
        #: Live peers by routing id (rule 1).
        self.by_id: dict[bytes, PipeView] = {}
        self._id_of: dict[PipeView, bytes] = {}  # until retired (rule 2)
        self._last_request: dict[PipeView, int] = {}  # of REQ peers (rule 3)
        self._next = random.getrandbits(32)
        self._mandatory = True
        self._target: PipeView | None = None
        self._target_id = b""
        self.unroutable = 0
        #: Rule 6: the pipes that carry many peers, and where each id came from.
        self._carriers: list[PipeView] = []
        self._came_from: dict[bytes, PipeView] = {}

    def set_options(self, options: Options) -> None:
        self._mandatory = options.router_mandatory

    # -- peers ----------------------------------------------------------------------

    def identity_in_use(self, identity: bytes) -> bool:
        return identity in self.by_id

    def routing_id_of(self, pipe: PipeView) -> bytes | None:
        return self._id_of.get(pipe)

    def attached(self, pipe: PipeView) -> None:
        if pipe.carries_ids:
            self._carriers.append(pipe)
            return
        rid = pipe.peer_identity
        if rid and rid in self.by_id:
            # The transport asks before it accepts, so only a transport that
            # cannot refuse gets here: the newcomer gets an id of our own.
            log.warning(
                "shmsock: ROUTER: a second peer asked for routing id %r; it gets another", rid
            )
            rid = b""
        if not rid:
            rid = self._new_id()
        self.by_id[rid] = pipe
        self._id_of[pipe] = rid

    def _new_id(self) -> bytes:
        while True:
            self._next = (self._next + 1) & 0xFFFFFFFF
            rid = _AUTO_ID.pack(0, self._next)
            if rid not in self.by_id:
                return rid

    def gone(self, pipe: PipeView) -> None:
        rid = self._id_of.get(pipe)
        if rid is not None and self.by_id.get(rid) is pipe:
            del self.by_id[rid]

    def retired(self, pipe: PipeView) -> None:
        if pipe.carries_ids:
            if pipe in self._carriers:
                self._carriers.remove(pipe)
            for rid in [r for r, p in self._came_from.items() if p is pipe]:
                del self._came_from[rid]
            return
        self.gone(pipe)
        self._id_of.pop(pipe, None)
        self._last_request.pop(pipe, None)

    # -- sending ------------------------------------------------------------------

    def outgoing(self, frames: list[bytes]) -> tuple[list[bytes], int]:
        if len(frames) < 2:
            raise ValueError(
                "a ROUTER sends [routing_id, *frames]: at least two frames (use send_multipart)"
            )
        rid = frames[0]
        pipe = self.by_id.get(rid)
        self._target_id = rid
        if pipe is None:
            carriers = self._carriers
            if carriers:  # rule 6
                pipe = self._came_from.get(rid)
                if pipe is None or not pipe.alive:
                    pipe = next((p for p in carriers if p.alive), carriers[0])
                self._target = pipe
                return frames, 0
            self._target = None
            self._unroutable()
            return frames, 0
        self._target = pipe
        if pipe.peer_type is SocketType.REQ:
            return self._to_requester(pipe, frames)
        return frames[1:], 0

    def _to_requester(self, pipe: PipeView, frames: list[bytes]) -> tuple[list[bytes], int]:
        if len(frames) >= 4 and not frames[2] and len(frames[1]) == REQUEST_ID.size:
            return frames[3:], REQUEST_ID.unpack(frames[1])[0]
        if len(frames) >= 3 and not frames[1]:
            return frames[2:], self._last_request.get(pipe, 0)
        raise ValueError(
            f"the peer {frames[0]!r} is a REQ: send [routing_id, request_id, b'', *reply] as"
            " its request came, or [routing_id, b'', *reply]"
        )

    def _unroutable(self) -> None:
        """Rule 4: raise, or count the drop (route() then says DROPPED)."""
        if self._mandatory:
            rid = self._target_id
            raise HostUnreachable(
                f"no peer has routing id {rid!r}: it never connected, or it has departed"
                " (nothing was sent; set router_mandatory=False to drop such messages"
                " silently, as libzmq does by default)",
                rid,
            )
        self.unroutable += 1

    def route(self) -> Placement:
        pipe = self._target
        if pipe is None:
            return DROPPED
        if not pipe.alive:  # departed while the message waited for room
            self._target = None
            self._unroutable()
            return DROPPED
        if pipe.writable and not pipe.streaming:
            return pipe
        return None  # full: rule 5

    def targets(self, pipes: Sequence[PipeView]) -> Sequence[PipeView]:
        return [] if self._target is None else [self._target]

    def sent(self, pipe: PipeView) -> None:
        self._target = None

    def refused(self, pipe: PipeView) -> None:
        pass  # not in turn with others: route waits for its room

    def passed_over(self, pipe: PipeView) -> None:
        pass  # (check_peer_limits raised first: the id names one peer)

    # -- receiving ---------------------------------------------------------------------

    def incoming(self, pipe: PipeView, frames: list[bytes], aux: int) -> list[bytes] | None:
        if pipe.carries_ids:  # rule 6: libzmq put the id in front
            if len(self._carriers) > 1:  # (with one, every id goes there anyway)
                came_from = self._came_from
                came_from[frames[0]] = pipe
                if len(came_from) > _CAME_FROM_MAX:  # departures are not told: forget the oldest
                    del came_from[next(iter(came_from))]
            return frames
        rid = self._id_of.get(pipe)
        if rid is None:  # pragma: no cover - every attached pipe has one
            return None
        if pipe.peer_type is SocketType.REQ:
            return [rid, REQUEST_ID.pack(aux), b"", *frames]
        return [rid, *frames]

    def received(self, pipe: PipeView, aux: int) -> None:
        if aux and pipe.peer_type is SocketType.REQ:
            self._last_request[pipe] = aux
