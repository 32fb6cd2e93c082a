"""The handshake in progress on a new doorbell socket, and what the kernel says of its peer.

A connection's doorbell is a Unix stream socket.  Before it rings, it
carries one 64-byte handshake each way (``_wire``): HELLO from the
connector, WELCOME or REFUSE from the binder.  Bytes arrive when they
arrive, so a :class:`PendingHandshake` gathers them without waiting; the
listener and the dialer each keep their own context beside it (the
binding, the slot) in the handler they register.
"""

from __future__ import annotations

import select
import socket
import struct
from typing import Final

from . import _wire

__all__ = ["PendingHandshake", "hung_up", "peer_cred"]

_CRED: Final = struct.Struct("3i")


def peer_cred(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, _gid = _CRED.unpack(raw)
    return pid, uid


def hung_up(fd: int) -> bool:
    """Whether the other end of the stream socket *fd* has closed, now."""
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP)
    return bool(poller.poll(0))


class PendingHandshake:
    """A doorbell socket whose 64-byte handshake has not all arrived."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def read(self) -> _wire.Handshake | None:
        """Read what has arrived; return the handshake once complete.

        Raises ConnectionError on end-of-file, ValueError on garbage and
        VersionMismatch for a handshake of another protocol version.
        """
        try:
            data = self.sock.recv(_wire.SIZE - len(self.buf))
        except BlockingIOError:
            return None
        if not data:
            raise ConnectionError("closed during the handshake")
        self.buf += data
        if len(self.buf) < _wire.SIZE:
            return None
        return _wire.Handshake.unpack(bytes(self.buf))
