"""What the ``shmsock ls``, ``stat``, ``clean`` and ``exporter`` commands read.

Everything here works from the files in the per-user directory (their
names are ``_transport/shm/_layout.py``'s), with no help from the processes
that own them:

- which endpoints and slots exist comes from the directory listing, keeping
  only names that shmsock itself makes;
- whether a binder or a connector is alive comes from the kernel: its flock
  on ``NAME@lock`` or ``NAME@<k>.lock``, which the kernel drops when the
  holder dies.  PIDs stored in those files are only displayed;
- counters come from the ring headers (``docs/protocol.md``), mapped and
  checked by ``_segment.open_existing``; they are displayed, never trusted.

Files are opened through the verified directory descriptor, never following
a symlink, and refused unless they are our own regular files of the expected
mode.  Only :func:`clean` changes anything, and only under the same locks the
transport takes when it reclaims a dead process's files.

Probing a lock takes a shared flock for an instant and drops it.  A live
holder's exclusive lock makes the probe fail, which is the answer; a program
that tries to take over a *stale* endpoint at that very instant is told
AddressInUse and can simply bind again.
"""

from ._clean import CleanReport, clean
from ._node import NodeCollector, endpoint_stats
from ._scan import Connection, Endpoint, RingInfo, Slot, iso_time, open_user_dir, scan, stat

__all__ = [
    "CleanReport",
    "Connection",
    "Endpoint",
    "NodeCollector",
    "RingInfo",
    "Slot",
    "clean",
    "endpoint_stats",
    "iso_time",
    "open_user_dir",
    "scan",
    "stat",
]
