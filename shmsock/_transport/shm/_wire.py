"""The handshake on a connection's doorbell socket, and the doorbell bytes.

Each connection has one Unix stream socket between the two processes.  It
carries a 64-byte handshake each way, then single bytes that wake the other
side, and its end-of-file tells each side at once that the other is gone,
however it died.  Messages never travel on it.

Handshake (little-endian), sent by the connector (HELLO) and answered by
the binder (WELCOME or REFUSE):

======  ====  ====================================================
offset  size  field
======  ====  ====================================================
0       4     magic ``b"SSHK"``
4       2     protocol version (2; 1 had no bulk regions)
6       1     kind: 1 HELLO, 2 WELCOME, 3 REFUSE
7       1     sender's socket type
8       4     slot number (HELLO)
12      4     sender's pid (for display only)
16      8     capacity of the ring the sender writes
24      8     binder token, ASCII hex (WELCOME): its ring is
              ``NAME@<slot>.b.<token>``
32      4     refusal reason (REFUSE)
36      4     REFUSE for VERSION: the version the refuser found
40      4     REFUSE for VERSION: the version the refuser speaks
44      4     flags: bit 0, ``max_msg`` is stated (HELLO, WELCOME);
              bit 1, the sender reads a routing id after a WELCOME
              (HELLO); other bits zero, and ignored
48      8     max_msg: the largest message the sender accepts, in
              payload bytes over all frames (its ``max_msg_size``)
56      1     N, the length of the sender's routing id (HELLO,
              WELCOME; 0: none), whose N bytes follow these 64
57      7     reserved, zero
======  ====  ====================================================

The magic and the version are the first six bytes of every handshake, in
every version, so that two versions can always tell that they differ: a
receiver checks them before it reads anything else.

Bytes 44 to 63 were reserved and zero before ``max_msg`` and the routing
id were added, and every build ignores them when it reads, so the
protocol version did not change: a peer that leaves bit 0 clear (an
older build) has stated no limit, and the other side does not check what
it sends to it.  A routing id is the ``routing_id`` option (1 to 255
bytes, not starting with a zero byte), which ROUTERs route by.  A binder
sends its own only to a connector that set bit 1, so an older connector
never finds bytes it cannot read; an older binder reads a connector's as
doorbell bytes, which at worst wake it for nothing (it has no ROUTER to
care).

Version 2 (bulk regions) refuses version 1, so a peer of this version
always states its limit.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from ..._errors import IncompatiblePeer, RoutingIdInUse, SharedMemoryFull, VersionMismatch
from .. import NO_LIMIT

SIZE: Final = 64
MAGIC: Final = b"SSHK"
VERSION: Final = 2
_HS = struct.Struct("<4sHBBIIQ8sIIIIQB7x")
_MAX_MSG_STATED: Final = 1
_READS_ID: Final = 2
#: Where the routing id's length is, in a handshake.
ID_LENGTH_AT: Final = 56

# Doorbell bytes.
DATA: Final = b"D"  # "I published records; you had said you would sleep"
SPACE: Final = b"S"  # "I freed space; you had said you were waiting for it"
CORRUPT: Final = b"C"  # binder to connector: "your ring failed my checks: replace it"
#: Connector (a ROUTER) to binder, then end-of-file: "I have a peer of your routing id".
ID_REFUSED: Final = b"R"
#: Sent with a descriptor attached: "a new bulk region of my ring".
REGION: Final = b"B"


class Kind(enum.IntEnum):
    HELLO = 1
    WELCOME = 2
    REFUSE = 3


class Refusal(enum.IntEnum):
    INCOMPATIBLE = 1  # socket types cannot talk
    BUSY = 2  # PAIR binder already has its peer
    BAD_SEGMENT = 3  # the connector's ring could not be used
    SHUTTING_DOWN = 4  # the binder is closing
    VERSION = 5  # the handshake or a ring has another protocol version
    NO_MEMORY = 6  # the binder has no shared memory left for its ring
    ROUTING_ID_IN_USE = 7  # the binder (a ROUTER) has a live peer of that routing id
    BAD_ROUTING_ID = 8  # the routing id is not one a socket may ask for


@dataclass(frozen=True)
class Handshake:
    kind: Kind
    sock_type: int
    slot: int = 0
    pid: int = 0
    capacity: int = 0
    token: str = ""
    reason: int = 0
    version_found: int = 0
    version_expected: int = 0
    # The sender's max_msg_size; None: not stated (an older build).
    max_msg: int | None = None
    #: The sender's routing id (b"": none).
    identity: bytes = b""
    #: HELLO: the sender reads a routing id after the binder's WELCOME.
    reads_identity: bool = True

    def pack(self) -> bytes:
        return self._pack() + self.identity

    def _pack(self) -> bytes:
        flags = 0 if self.max_msg is None else _MAX_MSG_STATED
        if self.reads_identity and self.kind == Kind.HELLO:
            flags |= _READS_ID
        return _HS.pack(
            MAGIC,
            VERSION,
            self.kind,
            self.sock_type,
            self.slot,
            self.pid,
            self.capacity,
            self.token.encode("ascii"),
            self.reason,
            self.version_found,
            self.version_expected,
            flags,
            self.max_msg or 0,
            len(self.identity),
        )

    @property
    def accepts(self) -> int:
        """The largest message the sender accepts: NO_LIMIT when not stated."""
        return NO_LIMIT if self.max_msg is None else self.max_msg

    @classmethod
    def unpack(cls, raw: bytes) -> Handshake:
        """Parse a handshake: the 64 bytes, then the routing id its byte 56 announces.

        Raises ValueError if it is not one, VersionMismatch (naming both
        versions) if it is one of another protocol version.  The routing
        id is not checked here (see :func:`bad_identity`).
        """
        if len(raw) < SIZE:
            raise ValueError("short handshake")
        if raw[:4] != MAGIC:
            raise ValueError("not a shmsock handshake")
        version = int.from_bytes(raw[4:6], "little")
        if version != VERSION:
            raise VersionMismatch(version, VERSION, "the peer")
        if len(raw) != SIZE + raw[ID_LENGTH_AT]:
            raise ValueError("short handshake")
        (
            _m,
            _v,
            kind,
            sock_type,
            slot,
            pid,
            capacity,
            token,
            reason,
            found,
            expected,
            flags,
            limit,
            _id_length,
        ) = _HS.unpack(raw[:SIZE])
        try:
            tok = token.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("bad token") from None
        if not all(c in "0123456789abcdef" for c in tok):
            raise ValueError("bad token")
        max_msg = limit if flags & _MAX_MSG_STATED else None
        return cls(
            Kind(kind),
            sock_type,
            slot,
            pid,
            capacity,
            tok,
            reason,
            found,
            expected,
            max_msg,
            raw[SIZE:],
            bool(flags & _READS_ID),
        )


def bad_identity(identity: bytes) -> bool:
    """Whether a stated routing id is one no socket may ask for (it starts with a zero byte)."""
    return bool(identity) and identity[0] == 0


def refusal_error(msg: Handshake, endpoint: str) -> Exception:
    """The exception a connector raises for the binder's REFUSE *msg*."""
    reason = msg.reason
    if reason == Refusal.INCOMPATIBLE:
        return IncompatiblePeer(f"the socket bound at {endpoint} cannot talk to this socket type")
    if reason == Refusal.VERSION:
        # The binder found version_found on our side and speaks version_expected.
        return VersionMismatch(
            msg.version_expected, msg.version_found, f"the socket bound at {endpoint}"
        )
    if reason == Refusal.NO_MEMORY:
        return SharedMemoryFull(
            f"the socket bound at {endpoint} has no shared memory left for this connection's"
            " ring (its filesystem is full)"
        )
    if reason == Refusal.BAD_SEGMENT:
        return ConnectionRefusedError(
            f"{endpoint} refused the connection: this socket's ring failed its checks"
            " (the binder's log says why)"
        )
    if reason == Refusal.BUSY:
        return ConnectionRefusedError(f"{endpoint} refused the connection: it already has its peer")
    if reason == Refusal.ROUTING_ID_IN_USE:
        return RoutingIdInUse(
            f"the ROUTER bound at {endpoint} has a peer of this socket's routing id already:"
            " each of its peers needs a routing_id of its own"
        )
    if reason == Refusal.BAD_ROUTING_ID:
        return ConnectionRefusedError(
            f"{endpoint} refused the connection: this socket's routing id starts with a zero byte"
        )
    return ConnectionRefusedError(f"{endpoint} refused the connection (reason {reason})")
