"""The handshake in progress on a new doorbell socket, and what the kernel says of its peer.

A connection's doorbell is a Unix stream socket.  Before it rings, it
carries one 64-byte handshake each way (``_wire``): HELLO from the
connector, WELCOME or REFUSE from the binder.  Bytes arrive when they
arrive, so a :class:`PendingHandshake` gathers them without waiting; the
listener and the dialer each keep their own context beside it (the
binding, the slot) in the handler they register.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from typing import Final

from . import _wire
from ._region import recv_with_fds

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
    """A doorbell socket whose 64-byte handshake has not all arrived.

    A connector's HELLO may come with descriptors (its ring's bulk
    regions): they gather in ``fds`` until the listener takes them, or
    :meth:`close` closes them with the socket.
    """

    __slots__ = ("buf", "fds", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.fds: list[int] = []

    def read(self) -> _wire.Handshake | None:
        """Read what has arrived; return the handshake once complete.

        Raises ConnectionError on end-of-file, ValueError on garbage and
        VersionMismatch for a handshake of another protocol version;
        CorruptMessage when more descriptors came at once than anyone
        sends.
        """
        buf = self.buf
        while True:
            # The 64 bytes, then the routing id their byte 56 announces:
            # never more, since doorbell bytes may follow at once.
            size = _wire.SIZE
            if len(buf) >= size:
                if buf[:6] == _wire.MAGIC + _wire.VERSION.to_bytes(2, "little"):
                    size += buf[_wire.ID_LENGTH_AT]
                if len(buf) >= size:
                    return _wire.Handshake.unpack(bytes(buf))
            try:
                data, fds = recv_with_fds(self.sock, size - len(buf))
            except BlockingIOError:
                return None
            self.fds += fds
            if not data:
                raise ConnectionError("closed during the handshake")
            buf += data

    def take_fds(self) -> list[int]:
        fds, self.fds = self.fds, []
        return fds

    def close(self) -> None:
        """Close the socket and any descriptor nobody took."""
        for fd in self.take_fds():
            os.close(fd)
        self.sock.close()
