"""shmsock: ZeroMQ-style sockets for Trio over lock-free shared-memory rings.

::

    async with shmsock.socket(shmsock.PULL) as pull:
        pull.bind("shm://jobs")
        async for msg in pull:
            ...

or, without the block, ``pull = shmsock.socket(shmsock.PULL)`` and, once
done, ``await pull.aclose()``.
"""

# The C core loads now, or the import fails saying what to run (a source
# tree without it built, say), rather than at the first shm:// bind.
# Importing metrics registers shmsock's Prometheus collector in the default
# registry, unless SHMSOCK_METRICS=0 (see shmsock.metrics).
from . import _ring, metrics, testing  # noqa: F401
from ._curve import curve_keypair
from ._errors import (
    AddressInUse,
    CorruptMessage,
    HostUnreachable,
    IncompatiblePeer,
    InvalidEndpoint,
    MessageTooLarge,
    MultipartMessage,
    NotInTrio,
    RoutingIdInUse,
    SecurityError,
    SegmentError,
    SharedMemoryFull,
    ShmsockError,
    StateError,
    UnsafeFile,
    VersionMismatch,
)
from ._options import Options, SocketOption
from ._patterns.pub import Subscriber
from ._peerevents import PeerEvent, PeerEventKind, PeerEvents
from ._proxy import proxy
from ._socket import Socket, socket
from ._stats import EndpointStats
from ._transport import Lease
from ._types import SocketType

PAIR = SocketType.PAIR
PUSH = SocketType.PUSH
PULL = SocketType.PULL
REQ = SocketType.REQ
REP = SocketType.REP
PUB = SocketType.PUB
SUB = SocketType.SUB
XPUB = SocketType.XPUB
XSUB = SocketType.XSUB
DEALER = SocketType.DEALER
ROUTER = SocketType.ROUTER

# Option names, as pyzmq's zmq.LINGER and the like (pyzmq's others do not
# exist here: setsockopt says what to use instead).
RING_SIZE = SocketOption.RING_SIZE
MAX_MSG_SIZE = SocketOption.MAX_MSG_SIZE
SPIN_US = SocketOption.SPIN_US
CHECKSUM = SocketOption.CHECKSUM
LINGER = SocketOption.LINGER
NODROP = SocketOption.NODROP
CONFLATE = SocketOption.CONFLATE
# A SUB's subscriptions through setsockopt, as pyzmq's zmq.SUBSCRIBE.
SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
SCHEDULE_EVERY_US = SocketOption.SCHEDULE_EVERY_US
ROUTING_ID = SocketOption.ROUTING_ID
ROUTER_MANDATORY = SocketOption.ROUTER_MANDATORY

# The one place the version is written: pyproject.toml reads it from here
# (as a literal, without importing), so keep it a plain string.
__version__ = "0.1.0"

__all__ = [
    "CHECKSUM",
    "CONFLATE",
    "DEALER",
    "LINGER",
    "MAX_MSG_SIZE",
    "NODROP",
    "PAIR",
    "PUB",
    "PULL",
    "PUSH",
    "REP",
    "REQ",
    "RING_SIZE",
    "ROUTER",
    "ROUTER_MANDATORY",
    "ROUTING_ID",
    "SCHEDULE_EVERY_US",
    "SPIN_US",
    "SUB",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "XPUB",
    "XSUB",
    "AddressInUse",
    "CorruptMessage",
    "EndpointStats",
    "HostUnreachable",
    "IncompatiblePeer",
    "InvalidEndpoint",
    "Lease",
    "MessageTooLarge",
    "MultipartMessage",
    "NotInTrio",
    "Options",
    "PeerEvent",
    "PeerEventKind",
    "PeerEvents",
    "RoutingIdInUse",
    "SecurityError",
    "SegmentError",
    "SharedMemoryFull",
    "ShmsockError",
    "Socket",
    "SocketOption",
    "SocketType",
    "StateError",
    "Subscriber",
    "UnsafeFile",
    "VersionMismatch",
    "curve_keypair",
    "metrics",
    "proxy",
    "socket",
    "testing",
]
