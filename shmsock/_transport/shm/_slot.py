"""A connector's slot at an endpoint: its lock file, its ring, its connection.

Slot k of endpoint NAME is ``NAME@<k>.lock`` (created with O_EXCL and
flocked for the slot's life: the lock-file accept) and the ring this side
writes, ``NAME@<k>.c``.  :func:`claim` takes the first free slot (a dead
holder's is reclaimed on the way) and makes its ring.  The slot outlives
its binders: the ring stays, so what was written while no binder was
there, or before one died, is read by the next one.  So do the ring's
bulk regions (``bulk``): a HELLO carries every one a record still unread
may name (``_bulk``, rule 3).  The dialling is the dialer's (``_dialer``);
this module keeps what the slot owns, and lets go of it in order.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ... import _ring as R
from ... import _stats
from ..._errors import SegmentError, ShmsockError
from ..._stats import EndpointStats
from .. import SocketSpec
from . import _segment as seg
from ._bulk import BulkOut, bulk_bytes
from ._control import ControlOut
from ._fs import LazyDir, try_lock
from ._layout import MAX_SLOTS, EndpointFiles, reclaim_dead_slot

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["Slot", "claim"]

log = logging.getLogger("shmsock")


class Slot:
    """This socket's place at an endpoint it connected to; the owner of its connections.

    *on_binder_gone* is called when the binder of its connection goes
    (the dialer dials again).
    """

    __slots__ = (
        "bulk",
        "control",
        "dialing",
        "dir",
        "endpoint",
        "files",
        "index",
        "lock_fd",
        "name",
        "on_binder_gone",
        "peer",
        "redials",
        "refused",
        "replace_ring",
        "seg",
        "tx",
    )

    def __init__(
        self,
        d: LazyDir,
        name: str,
        index: int,
        lock_fd: int,
        sg: seg.Segment,
        tx: R.Producer,
        on_binder_gone: Callable[[Slot], None],
    ) -> None:
        self.dir = d
        self.name = name
        self.files = EndpointFiles(name)
        self.endpoint = self.files.endpoint
        self.index = index
        self.lock_fd = lock_fd
        self.seg = sg
        self.tx = tx
        self.control = ControlOut(tx)  # the ring's control messages (see _control)
        self.bulk = BulkOut(tx, keep=True)  # its ring's bulk regions
        self.on_binder_gone = on_binder_gone
        self.peer: Connection | None = None
        self.dialing: socket.socket | None = None
        self.refused: Exception | None = None
        self.replace_ring = False
        self.redials = 0  # dials in a row dropped after WELCOME (see Dialer._redial)

    # -- as a connection's owner ----------------------------------------------------

    def on_gone(self, conn: Connection) -> None:
        # The binder's ring: its binder is gone, and the slot is ours.
        self.dir.get().unlink(conn.rx_seg.name)
        if self.peer is conn:
            self.peer = None
            self.bulk.send_region = None  # the next HELLO carries the regions
            self.on_binder_gone(self)  # a new binder may already be there

    def on_corrupt(self, conn: Connection) -> None:
        self.replace_ring = True  # the next reader would find the same impossible position

    def on_retired(self, conn: Connection) -> None:
        pass  # the slot stays, with its ring

    # -- what it owns -----------------------------------------------------------------

    def drop_binder_rings(self) -> None:
        """Remove binders' rings for this slot while it has no connection.

        Only this socket connects through the slot, so with no connection
        (and no handshake) in progress every ``NAME@<k>.b.*`` is orphaned.
        """
        if self.peer is not None or self.dialing is not None:
            return
        d = self.dir.get()
        prefix = self.files.binder_ring_prefix(self.index)
        for entry in d.listdir():
            if entry.startswith(prefix):
                d.unlink(entry)

    def retire_counts(self, retired: dict[str, EndpointStats]) -> None:
        """Add what its ring carried to *retired* (call with ``_stats.LOCK`` held)."""
        st = retired.setdefault(self.endpoint, EndpointStats())
        st.messages_sent += self.tx.messages
        st.bytes_sent += self.tx.bytes + bulk_bytes(self.bulk)
        st.dropped += self.tx.dropped

    def new_ring(self, spec: SocketSpec, ring_size: int, retired: dict[str, EndpointStats]) -> bool:
        """Our ring is corrupt (the binder said so, or a write found it): start a fresh one.

        Only while the slot has no connection and no dial in progress.
        The old ring's counts move to *retired*.  Returns False, with the
        reason in :attr:`refused`, when no new ring can be made (shared
        memory full, say); the next dial tries again.
        """
        d = self.dir.get()
        d.unlink(self.seg.name)  # our mapping of it stays valid until released
        try:
            new_seg = seg.create(d, self.seg.name, ring_size, spec.kind, seg.ROLE_CONNECTOR)
        except (OSError, ShmsockError) as exc:
            log.warning("shmsock: %s: cannot replace the corrupt ring: %s", self.endpoint, exc)
            self.refused = (
                exc if isinstance(exc, ShmsockError) else SegmentError(f"cannot make a ring: {exc}")
            )
            return False
        new_tx = new_seg.producer(checksum=spec.options.checksum)
        self.replace_ring = False
        old_seg, old_bulk = self.seg, self.bulk
        with _stats.LOCK:
            self.retire_counts(retired)
            self.seg, self.tx, self.bulk = new_seg, new_tx, BulkOut(new_tx, keep=True)
        old_bulk.close()  # before the ring its writers point into
        # What waited for room in the old ring is superseded by the greeting
        # the next dial writes.
        self.control = ControlOut(new_tx)
        old_seg.close()
        return True

    def close(self) -> None:
        """Unmap its ring, remove its files, and give up the lock (the dial is ended first)."""
        self.bulk.close()  # before the ring its writers point into
        self.seg.close()  # and its producer, first (see Segment)
        if self.dir.is_open():
            d = self.dir.get()
            d.unlink(self.seg.name)
            d.unlink(self.files.slot_lock(self.index))
        os.close(self.lock_fd)


def _claim_index(d: LazyDir, files: EndpointFiles) -> tuple[int, int]:
    """The first free slot of *files*' endpoint: its index and its locked lock file."""
    k = 0
    while k < MAX_SLOTS:
        lockname = files.slot_lock(k)
        try:
            fd = d.get().create(lockname)
        except FileExistsError:
            if reclaim_dead_slot(d.get(), files.name, k):
                continue  # it was stale and is free now: try it again
            k += 1
            continue
        # Between our create and our lock, a cleaner may have taken the
        # new file for a stale one and removed it: check.
        if try_lock(fd) and d.get().is_same(fd, lockname):
            return k, fd
        os.close(fd)
    raise ShmsockError(f"{files.endpoint} has no free slot ({MAX_SLOTS} in use)")


def claim(
    d: LazyDir,
    name: str,
    spec: SocketSpec,
    ring_size: int,
    on_binder_gone: Callable[[Slot], None],
) -> Slot:
    """Take a free slot at endpoint *name* and make its ring (not yet reserved).

    On failure nothing is left behind.
    """
    files = EndpointFiles(name)
    k, lock_fd = _claim_index(d, files)
    ud = d.get()
    try:
        # Our lock file is new: a dead holder's files went with its stale
        # lock (reclaim_slot).  No listing here, which would make every
        # connect pay for every file in the directory: a binder's old
        # ring for this slot has its own token, so it cannot clash with
        # the next one, and it goes when its binder sees the connection
        # end, when we close and find its binder gone, with the next
        # bind, or with `shmsock clean`.  A ring file left without its
        # lock (removed by hand) would make create fail.
        ring_name = files.connector_ring(k)
        ud.unlink(ring_name)
        sg = seg.create(ud, ring_name, ring_size, spec.kind, seg.ROLE_CONNECTOR, deferred=True)
    except BaseException:
        ud.unlink(files.slot_lock(k))
        os.close(lock_fd)
        raise
    try:
        tx = sg.producer(checksum=spec.options.checksum)
        os.pwrite(lock_fd, f"{os.getpid()} {spec.kind.name}\n".encode(), 0)
    except BaseException:
        sg.close()
        ud.unlink(sg.name)
        ud.unlink(files.slot_lock(k))
        os.close(lock_fd)
        raise
    return Slot(d, name, k, lock_fd, sg, tx, on_binder_gone)
