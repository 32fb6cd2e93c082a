"""shmsock: ZeroMQ-style sockets for Trio over lock-free shared-memory rings.

::

    async with shmsock.socket(shmsock.PULL) as pull:
        pull.bind("shm://jobs")
        async for msg in pull:
            ...
"""

# Importing metrics registers shmsock's Prometheus collector in the default
# registry, unless SHMSOCK_METRICS=0 (see shmsock.metrics).
from . import metrics, testing
from ._errors import (
    AddressInUse,
    CorruptMessage,
    IncompatiblePeer,
    InvalidEndpoint,
    MessageTooLarge,
    MultipartMessage,
    SegmentError,
    SharedMemoryFull,
    ShmsockError,
    StateError,
    UnsafeFile,
    VersionMismatch,
)
from ._options import Options
from ._socket import Socket, socket
from ._types import SocketType

PAIR = SocketType.PAIR
PUSH = SocketType.PUSH
PULL = SocketType.PULL
REQ = SocketType.REQ
REP = SocketType.REP

# The one place the version is written: pyproject.toml reads it from here
# (as a literal, without importing), so keep it a plain string.
__version__ = "0.1.0"

__all__ = [
    "PAIR",
    "PULL",
    "PUSH",
    "REP",
    "REQ",
    "AddressInUse",
    "CorruptMessage",
    "IncompatiblePeer",
    "InvalidEndpoint",
    "MessageTooLarge",
    "MultipartMessage",
    "Options",
    "SegmentError",
    "SharedMemoryFull",
    "ShmsockError",
    "Socket",
    "SocketType",
    "StateError",
    "UnsafeFile",
    "VersionMismatch",
    "metrics",
    "socket",
    "testing",
]
