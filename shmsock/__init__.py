"""shmsock: ZeroMQ-style sockets for Trio over lock-free shared-memory rings."""

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

__version__ = "0.1.0"

__all__ = [
    "AddressInUse",
    "CorruptMessage",
    "IncompatiblePeer",
    "InvalidEndpoint",
    "MessageTooLarge",
    "MultipartMessage",
    "SegmentError",
    "SharedMemoryFull",
    "ShmsockError",
    "StateError",
    "UnsafeFile",
    "VersionMismatch",
]
