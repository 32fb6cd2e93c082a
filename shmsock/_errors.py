"""The exceptions shmsock raises.

Everything shmsock raises of its own derives from :class:`ShmsockError`.
Where Trio already has a word for the situation, shmsock uses Trio's:
:class:`trio.ClosedResourceError` (this socket was closed),
:class:`trio.BrokenResourceError` (the peer is gone),
:class:`trio.BusyResourceError` (another task is already doing this) and
:class:`trio.WouldBlock` (a ``*_nowait`` call could not complete at once).
"""

from __future__ import annotations

__all__ = [
    "AddressInUse",
    "CorruptMessage",
    "HostUnreachable",
    "IncompatiblePeer",
    "InvalidEndpoint",
    "MessageTooLarge",
    "MultipartMessage",
    "NotInTrio",
    "RoutingIdInUse",
    "SecurityError",
    "SegmentError",
    "SharedMemoryFull",
    "ShmsockError",
    "StateError",
    "UnsafeFile",
    "VersionMismatch",
]


class ShmsockError(Exception):
    """Root of every exception defined by shmsock."""


class AddressInUse(ShmsockError):
    """``bind`` found a live socket already bound to the endpoint.

    shmsock never takes an endpoint away from a live binder.  An endpoint
    whose binder has died is taken over silently.
    """


class InvalidEndpoint(ShmsockError, ValueError):
    """The endpoint string is not of the form ``shm://NAME``.

    Also raised by ``unbind`` and ``disconnect`` for an endpoint this
    socket is not bound or connected to.
    """


class NotInTrio(ShmsockError, RuntimeError):
    """A socket was used outside ``trio.run``: under asyncio, say, or in a thread.

    shmsock's sockets are Trio objects.  Creating one is harmless anywhere;
    entering ``async with``, ``bind``, ``connect``, ``wait_peers`` and
    ``aclose`` raise this outside Trio, before they do anything, and the
    message names the async library that is running, if any.
    """


class CorruptMessage(ShmsockError):
    """A record in shared memory failed validation.

    The record is never delivered.  ``reason`` names the check that failed.
    """

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class MessageTooLarge(ShmsockError, ValueError):
    """The message exceeds ``max_msg_size`` (or what a ring can ever hold).

    The limit is this socket's own, or the receiving peer's: each peer
    states its ``max_msg_size`` when it connects, and the message names the
    limit it broke.  Raised before anything is written.
    """


class MultipartMessage(ShmsockError):
    """``recv`` found a multipart message; use ``recv_multipart``.

    The message stays queued, so the next ``recv_multipart`` returns it.
    """


class StateError(ShmsockError):
    """The operation is not allowed in the socket's current state.

    This is libzmq's EFSM: for example a REQ socket sending twice without
    receiving.  The socket's state is unchanged.  Also raised by every use,
    in a ``fork()`` child, of a socket its parent created: sockets do not
    survive fork.
    """


class IncompatiblePeer(ShmsockError):
    """The peer's socket type cannot talk to this one (PUSH to PUSH, say)."""


class HostUnreachable(ShmsockError):
    """A ROUTER was given a routing id that names no connected peer.

    libzmq's EHOSTUNREACH with ``ROUTER_MANDATORY``, which shmsock's ROUTER
    has on by default (option ``router_mandatory``): the peer never
    connected, or it has departed.  Nothing was sent.  ``routing_id`` is
    the id it was given.
    """

    def __init__(self, message: str, routing_id: bytes = b"") -> None:
        super().__init__(message)
        self.routing_id = routing_id


class RoutingIdInUse(ShmsockError):
    """A ROUTER refused this socket: another of its peers has the same ``routing_id``.

    Raised on the socket that asked for the id (the connecting DEALER or
    REQ), as every refusal is: by ``send`` and ``recv`` while it has no
    other peer.  It tries again when a socket next binds the endpoint.
    """


class SecurityError(ShmsockError):
    """A CURVE handshake failed, so a ``tcp://`` or ``ipc://`` connect brought no peer.

    The server's public key given as ``curve_serverkey`` is not its key, the
    server does not let this client in (its ``curve_clients``), or one side
    speaks CURVE and the other does not.  Raised by the calls that would
    otherwise wait for the peer (``send``, ``recv``), while no connection is
    up; libzmq keeps trying, and a later success ends it.
    """


class SegmentError(ShmsockError):
    """A file or shared-memory segment of an endpoint cannot be used."""


class UnsafeFile(SegmentError):
    """A file where shmsock expected its own is not safe to use.

    It is a symlink, a file of another kind or owner, or has permissions
    wider than the owner's.  shmsock never follows or trusts such a file.
    """


class VersionMismatch(SegmentError):
    """A peer, a segment or a ring is of another protocol version.

    Raised when connecting or accepting, never later.  ``found`` is the
    other side's version, ``expected`` this side's; the message names both.
    """

    def __init__(self, found: int, expected: int, what: str = "segment") -> None:
        super().__init__(
            f"{what} has protocol version {found}, this shmsock speaks version {expected}"
        )
        self.found = found
        self.expected = expected


class SharedMemoryFull(SegmentError, MemoryError):
    """The filesystem holding the shared memory has no room for a segment.

    Raised by ``bind`` or ``connect`` when the segment is created, never
    later: segments are allocated in full up front.
    """
