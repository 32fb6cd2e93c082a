"""The names an endpoint owns in the per-user directory: the one place that spells them.

An endpoint ``shm://NAME`` owns these names (``@`` cannot occur in NAME, so
the names of different endpoints never collide; docs/layout.md has the
table with what each file holds):

==========================  ===================================================
``NAME@lock``               bind lock: held (flock) by the live binder
``NAME@sock``               the binder's listening Unix socket
``NAME@sock.<token>``       that socket before it is renamed into place
``NAME@spare.<token>``      a ring the binder made ahead for its next connector
``NAME@<k>.lock``           slot k: created with O_EXCL and held by a connector
``NAME@<k>.c``              slot k: ring the connector writes, the binder reads
``NAME@<k>.b.<token>``      slot k: ring binder ``token`` writes, the connector
                            reads
==========================  ===================================================

Rule: everything a slot owns starts with ``NAME@<k>.``, and a dead slot's
every such name is removed (:func:`reclaim_slot`), whatever a crash or an
older version left there.  The live transport and the tools (``shmsock ls``,
``stat``, ``clean`` and the exporter) both read and remove files by these
names, so both import this module and neither spells a name itself.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Final

from ..._errors import UnsafeFile
from ._fs import UserDir, lock_file

__all__ = ["ENTRY", "MAX_SLOTS", "EndpointFiles", "reclaim_dead_slot", "reclaim_slot", "slot_files"]

#: Slots an endpoint has, at most: connectors at once (NAME@0 to NAME@4095).
MAX_SLOTS: Final = 4096

log = logging.getLogger("shmsock")

#: An endpoint name's characters (see ``shmsock._transport.parse_name``).
_NAME: Final = r"[A-Za-z0-9._-]{1,64}"

#: The names shmsock makes; anything else in the directory is not ours to read.
ENTRY: Final = re.compile(
    rf"(?P<name>{_NAME})@(?:(?P<bind>lock|(?:sock|spare)(?:\.[0-9a-f]{{8}})?)"
    r"|(?P<slot>0|[1-9]\d{0,3})\.(?P<kind>lock|c|b\.[0-9a-f]{8}))"
)


class EndpointFiles:
    """The file names of endpoint ``shm://NAME``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def endpoint(self) -> str:
        return f"shm://{self.name}"

    @property
    def lock(self) -> str:
        return f"{self.name}@lock"

    @property
    def sock(self) -> str:
        return f"{self.name}@sock"

    def sock_temp(self, token: str) -> str:
        return f"{self.name}@sock.{token}"

    def spare(self, token: str) -> str:
        return f"{self.name}@spare.{token}"

    @property
    def spare_prefix(self) -> str:
        return f"{self.name}@spare."

    def slot_prefix(self, k: int) -> str:
        """What every name of slot *k* starts with."""
        return f"{self.name}@{k}."

    def slot_lock(self, k: int) -> str:
        return f"{self.name}@{k}.lock"

    def connector_ring(self, k: int) -> str:
        return f"{self.name}@{k}.c"

    def binder_ring(self, k: int, token: str) -> str:
        return f"{self.name}@{k}.b.{token}"

    def binder_ring_prefix(self, k: int) -> str:
        return f"{self.name}@{k}.b."

    def slot_indices(self, entries: list[str]) -> list[int]:
        """The slots that have any file among *entries*, in order."""
        prefix = f"{self.name}@"
        indices = set()
        for entry in entries:
            if entry.startswith(prefix):
                head = entry[len(prefix) :].split(".", 1)[0]
                if head.isdigit():
                    indices.add(int(head))
        return sorted(indices)


def slot_files(d: UserDir, name: str, k: int) -> list[str]:
    """The names that make up slot k of endpoint *name*: every ``NAME@k.*``.

    What reclaim_slot removes, and so what ``shmsock clean --dry-run``
    reports: one rule for both, whatever else a crash or an older version
    left under the slot's prefix.
    """
    prefix = EndpointFiles(name).slot_prefix(k)
    return [entry for entry in d.listdir() if entry.startswith(prefix)]


def reclaim_slot(d: UserDir, name: str, k: int) -> list[str] | None:
    """Remove slot k's files if no live connector holds it.

    Deleting a slot's files requires holding its lock: we take the lock of
    a dead holder, or create and take it when a crash left files without
    one.  Returns the names removed (the slot is now free), or None when a
    live connector holds the slot.  Raises UnsafeFile when the lock file is
    not ours to touch (a symlink, another owner, another mode).
    """
    lockname = EndpointFiles(name).slot_lock(k)
    fd = lock_file(d, lockname, create=True)
    if fd is None:
        return None  # a live connector
    try:
        removed = [
            entry for entry in slot_files(d, name, k) if entry != lockname and d.unlink(entry)
        ]
        if d.unlink(lockname):
            removed.append(lockname)
    finally:
        os.close(fd)
    return removed


def reclaim_dead_slot(d: UserDir, name: str, k: int) -> bool:
    """:func:`reclaim_slot`, for the transport: True if the slot is free now.

    A lock file that is not ours to touch is logged and left alone.
    """
    try:
        return bool(reclaim_slot(d, name, k))
    except UnsafeFile:
        log.warning(
            "shmsock: not touching unsafe file %s/%s", d.path, EndpointFiles(name).slot_lock(k)
        )
        return False
