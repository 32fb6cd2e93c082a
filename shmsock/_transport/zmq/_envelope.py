"""How REQ and REP (and the aux word) travel over libzmq: libzmq's own envelopes.

So that any ZeroMQ peer understands them:

- plain (PUSH, PULL, PAIR): a message is its frames;
- request (our REQ, a DEALER in libzmq): ``[id, b"", *frames]``, where *id*
  is 4 bytes, the request id of the aux word plus a random offset per link
  (libzmq's REQ_CORRELATE form; a plain REP, a ROUTER broker and our REP
  all send it back).  A reply is accepted with its id only when its second
  frame is empty; anything else is dropped and counted.
- reply (our REP, a ROUTER): a request is everything up to and including
  the first empty frame (the routing id first: libzmq's "traceback
  stack"), then the body.  The stack is kept under a token, the message's
  aux word, which REP hands back with its reply; the reply goes out as
  ``stack + frames``.  This serves libzmq's REQ with or without
  REQ_CORRELATE, DEALER clients and brokers alike.  A requester that has
  gone (EHOSTUNREACH, ROUTER_MANDATORY) loses its reply, as REP does on
  ``shm://``.
- routed (our ROUTER, a ROUTER in libzmq): a message is its frames, the
  peer's routing id first, both ways; the ROUTER pattern routes by it
  (the pipe ``carries_ids``).  Any ZeroMQ peer's envelope passes through
  untouched: a libzmq REQ's ``[id, b"", body]``, our REQ's ``[id,
  request_id, b"", body]``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

import zmq

from .. import Message, Queued

if TYPE_CHECKING:
    from .. import SocketSpec

__all__ = ["Envelope", "envelope_for", "size_of"]

_ID: Final = struct.Struct("=I")
_MASK: Final = 0xFFFFFFFF


def size_of(item: Queued) -> int:
    """Payload bytes of a message, whatever its form."""
    return sum(map(len, item.frames)) if isinstance(item, Message) else len(item)


class Envelope:
    """How one socket type's messages, and their aux word, travel over libzmq."""

    #: The libzmq socket type.
    zmq_type: int = 0
    #: Messages are their frames: the fast paths apply.
    plain = True
    #: A ROUTER: its POLLOUT is not a given requester's room, and a send may
    #: meet a requester that has gone.
    router = False
    #: After Again on a later frame, send the rest so that libzmq stops
    #: dropping (its load balancer does; PAIR and ROUTER need not).
    ends_dropping = False
    #: Each message is behind its peer's routing id (a ROUTER's link).
    routed = False

    def encode(self, frames: list[bytes], aux: int) -> list[bytes] | None:
        """The frames to send; None drops the message (nowhere to send it)."""
        return frames

    def sent(self, aux: int) -> None:
        """The message of *aux* went, or was dropped for good."""

    def decode(self, frames: list[bytes]) -> Queued | None:
        """The message to deliver, or None to drop what came (malformed)."""
        if len(frames) == 1:
            return frames[0]
        return Message(frames, 0)


class _Plain(Envelope):
    def __init__(self, zmq_type: int) -> None:
        self.zmq_type = zmq_type
        self.ends_dropping = zmq_type == zmq.PUSH


class _Request(Envelope):
    zmq_type = zmq.DEALER
    plain = False
    ends_dropping = True

    def __init__(self, salt: int) -> None:
        # Ids on the wire start at a random point, as libzmq's do, so that a
        # late reply to an earlier socket's request is not taken for ours.
        self._salt = salt

    def encode(self, frames: list[bytes], aux: int) -> list[bytes] | None:
        return [_ID.pack((aux + self._salt) & _MASK), b"", *frames]

    def decode(self, frames: list[bytes]) -> Queued | None:
        if len(frames) < 3 or frames[1] or len(frames[0]) != 4:
            return None
        aux = (_ID.unpack(frames[0])[0] - self._salt) & _MASK
        return Message(frames[2:], aux)


class _Reply(Envelope):
    zmq_type = zmq.ROUTER
    plain = False
    router = True

    def __init__(self) -> None:
        self._stacks: dict[int, list[bytes]] = {}
        self._token = 0

    def encode(self, frames: list[bytes], aux: int) -> list[bytes] | None:
        stack = self._stacks.get(aux)
        if stack is None:
            return None
        return stack + frames

    def sent(self, aux: int) -> None:
        self._stacks.pop(aux, None)

    def decode(self, frames: list[bytes]) -> Queued | None:
        for i in range(1, len(frames) - 1):
            if not frames[i]:
                break
        else:
            return None  # no delimiter, or no body: not a request
        token = self._token = self._token % _MASK + 1
        self._stacks[token] = frames[: i + 1]
        return Message(frames[i + 1 :], token)


class _Routed(Envelope):
    zmq_type = zmq.ROUTER
    plain = False
    router = True
    routed = True

    def decode(self, frames: list[bytes]) -> Queued | None:
        if len(frames) < 2:
            return None  # (libzmq's ROUTER always puts the id in front)
        return Message(frames, 0)


def envelope_for(spec: SocketSpec, salt: int) -> Envelope:
    """The envelope of a socket of *spec* (its pattern's ``envelope`` capability)."""
    if spec.envelope == "request":
        return _Request(salt)
    if spec.envelope == "reply":
        return _Reply()
    if spec.envelope == "routed":
        return _Routed()
    # Other types are the libzmq type of the same number (shmsock._types).
    return _Plain(int(spec.kind))
