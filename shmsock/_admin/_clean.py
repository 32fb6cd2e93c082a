"""``shmsock clean``: remove what dead processes left, never what a live one holds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .._errors import UnsafeFile
from .._transport.shm._fs import UserDir, lock_file
from .._transport.shm._layout import EndpointFiles, reclaim_slot, slot_files
from ._scan import Slot, scan

__all__ = ["CleanReport", "clean"]


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file: reason"


def _would_reclaim(d: UserDir, name: str, slot: Slot) -> list[str]:
    """What reclaim_slot would remove now, without removing it."""
    lockname = EndpointFiles(name).slot_lock(slot.index)
    if lockname in slot.files:
        fd = lock_file(d, lockname, create=False)
        if fd is None:
            return []
        os.close(fd)
    # Its own listing, not slot.files: the slot's prefix also covers names
    # scan() does not recognise, and reclaim_slot removes those too.
    return sorted(f for f in slot_files(d, name, slot.index) if not d.is_dir(f))


def clean(d: UserDir, *, dry_run: bool = False) -> CleanReport:
    """Remove stale endpoints and the slots of dead processes; never a live one.

    The same rule as the transport's when it takes over a dead process's
    files: delete only while holding the file's flock, which a live holder
    never lets go.  A stale endpoint loses ``NAME@lock``, ``NAME@sock`` and
    the slots no live connector holds; a live binder's endpoint keeps its
    files and loses only slots of dead connectors.  Files that are not our
    own (symlinks, other owners or modes) are skipped and reported.  With
    *dry_run*, report what would go (each lock is taken and dropped at
    once) and change nothing.
    """
    report = CleanReport()
    for ep in scan(d):
        files = EndpointFiles(ep.name)
        if ep.unsafe:
            report.skipped.append(f"{files.lock}: {ep.unsafe}")
            continue
        bind_fd = None
        if ep.binder == "stale":
            try:
                bind_fd = lock_file(d, files.lock, create=False)
            except FileNotFoundError:
                pass
            except UnsafeFile as exc:
                report.skipped.append(f"{files.lock}: {exc}")
                continue
        try:
            for slot in ep.slots:
                if slot.alive:
                    continue
                try:
                    if dry_run:
                        report.removed.extend(_would_reclaim(d, ep.name, slot))
                    else:
                        removed = reclaim_slot(d, ep.name, slot.index) or []
                        # Not a lock file it had to create itself to hold.
                        lockname = files.slot_lock(slot.index)
                        report.removed.extend(
                            f for f in removed if f != lockname or lockname in slot.files
                        )
                except UnsafeFile as exc:
                    report.skipped.append(f"{files.slot_lock(slot.index)}: {exc}")
                except FileNotFoundError:
                    pass  # its connector closed meanwhile
            if bind_fd is not None:
                # Ours now: no binder can come while we hold the lock.  The
                # lock file goes last, as the transport's bind expects.
                names = [f for f in ep.binder_files if f != files.lock]
                names.append(files.lock)
                for entry in names:
                    if dry_run or d.unlink(entry):
                        report.removed.append(entry)
        finally:
            if bind_fd is not None:
                os.close(bind_fd)
    return report
