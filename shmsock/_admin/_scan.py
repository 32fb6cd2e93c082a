"""Reading the per-user directory: endpoints, slots, rings (``ls`` and ``stat``)."""

from __future__ import annotations

import datetime
import fcntl
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from .. import _ring as R
from .._errors import ShmsockError, UnsafeFile
from .._transport.shm import _segment as seg
from .._transport.shm._fs import UserDir, user_dir_path
from .._transport.shm._layout import ENTRY, EndpointFiles
from .._types import SocketType

__all__ = [
    "Connection",
    "Endpoint",
    "RingInfo",
    "Slot",
    "connections",
    "iso_time",
    "open_user_dir",
    "read_ring",
    "scan",
    "stat",
]

_LOCK_CONTENT: Final = re.compile(rb"(\d{1,10}) ([A-Z]{3,4})\n")
_TYPES: Final = {t.name for t in SocketType}


def open_user_dir(root: str | None = None) -> UserDir | None:
    """The verified per-user directory, or None when there is none (yet).

    Never creates it.  Raises UnsafeFile when it is not ours (a symlink,
    another owner, a mode other than 0700).
    """
    if not os.path.lexists(user_dir_path(root)):
        return None
    return UserDir(root)


# -- scanning ---------------------------------------------------------------------


@dataclass
class Slot:
    """Slot k of an endpoint: one connector's place there."""

    index: int
    alive: bool | None = None  # None: no lock file (a crash left files behind)
    pid: int | None = None
    socket_type: str | None = None
    binder_rings: list[str] = field(default_factory=list)  # NAME@k.b.<token>
    files: list[str] = field(default_factory=list)
    unsafe: str | None = None

    @property
    def attached(self) -> bool:
        """A live connector with a binder's ring: a working connection."""
        return bool(self.alive and self.binder_rings)


@dataclass
class Endpoint:
    """Everything the directory holds for one endpoint name."""

    name: str
    binder: str = "none"  # "alive", "stale" or "none" (no NAME@lock)
    binder_pid: int | None = None
    binder_type: str | None = None
    binder_files: list[str] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    unsafe: str | None = None

    @property
    def endpoint(self) -> str:
        return f"shm://{self.name}"

    @property
    def peers(self) -> int:
        """Live connectors at this endpoint."""
        return sum(bool(s.alive) for s in self.slots)

    @property
    def live(self) -> bool:
        return self.binder == "alive" or self.peers > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "binder": self.binder,
            "binder_pid": self.binder_pid,
            "binder_socket_type": self.binder_type,
            "peers": self.peers,
            "attached": sum(s.attached for s in self.slots),
            "stale_slots": sum(s.alive is not True for s in self.slots),
        }


def _probe(d: UserDir, name: str) -> tuple[bool, int | None, str | None]:
    """(held by a live process, pid, socket type) for lock file *name*.

    Raises FileNotFoundError, or UnsafeFile for anything but our own file.
    """
    fd = d.open(name)
    try:
        content = os.pread(fd, 64, 0)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = False
        except BlockingIOError:
            held = True
    finally:
        os.close(fd)  # drops the probe's lock, if it got one
    pid = kind = None
    m = _LOCK_CONTENT.fullmatch(content)
    if m and m.group(2).decode() in _TYPES:
        pid, kind = int(m.group(1)), m.group(2).decode()
    return held, pid, kind


def _group(entries: Iterable[str]) -> dict[str, list[tuple[str, re.Match[str]]]]:
    groups: dict[str, list[tuple[str, re.Match[str]]]] = {}
    for entry in entries:
        m = ENTRY.fullmatch(entry)
        if m and m.group("name") not in (".", ".."):
            groups.setdefault(m.group("name"), []).append((entry, m))
    return groups


def scan(d: UserDir, only: str | None = None) -> list[Endpoint]:
    """The endpoints in *d* (just *only*, if given), sorted by name."""
    out = []
    for name, entries in sorted(_group(d.listdir()).items()):
        if only is not None and name != only:
            continue
        ep = Endpoint(name)
        slots: dict[int, Slot] = {}
        for entry, m in entries:
            if m.group("bind"):
                ep.binder_files.append(entry)
                continue
            k = int(m.group("slot"))
            slot = slots.setdefault(k, Slot(k))
            slot.files.append(entry)
            if m.group("kind").startswith("b."):
                slot.binder_rings.append(entry)
        files = EndpointFiles(name)
        if files.lock in ep.binder_files:
            try:
                held, ep.binder_pid, ep.binder_type = _probe(d, files.lock)
                ep.binder = "alive" if held else "stale"
            except FileNotFoundError:
                ep.binder_files.remove(files.lock)  # its binder just closed
            except UnsafeFile as exc:
                ep.unsafe = str(exc)
        for k, slot in sorted(slots.items()):
            lockname = files.slot_lock(k)
            if lockname in slot.files:
                try:
                    slot.alive, slot.pid, slot.socket_type = _probe(d, lockname)
                except FileNotFoundError:
                    slot.files.remove(lockname)
                except UnsafeFile as exc:
                    slot.unsafe = str(exc)
            slot.files.sort()
            slot.binder_rings.sort()
            ep.slots.append(slot)
        ep.binder_files.sort()
        out.append(ep)
    return out


# -- stat ----------------------------------------------------------------------------


@dataclass
class RingInfo:
    """One ring's header, as read from shared memory (display only)."""

    file: str
    writer_pid: int | None = None
    writer_type: str | None = None
    capacity: int = 0
    used: int = 0
    messages_written: int = 0
    messages_read: int = 0
    messages_dropped: int = 0  # a publisher's fan-out: messages this reader missed
    bytes_written: int = 0
    bytes_read: int = 0
    writer_closed: bool = False
    caught_up_ns: int = 0  # when the reader last found the ring empty; 0: never
    inode: tuple[int, int] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "file": self.file,
            "writer_pid": self.writer_pid,
            "writer_socket_type": self.writer_type,
            "capacity": self.capacity,
            "used_bytes": self.used,
            "messages_written": self.messages_written,
            "messages_read": self.messages_read,
            "messages_dropped": self.messages_dropped,
            "bytes_written": self.bytes_written,
            "bytes_read": self.bytes_read,
            "writer_closed": self.writer_closed,
            "reader_caught_up": iso_time(self.caught_up_ns),
        }
        if self.error is not None:
            out = {"file": self.file, "error": self.error}
        return out


def read_ring(d: UserDir, name: str, role: int) -> RingInfo:
    """Map segment *name*, check it, and copy its ring header's counters.

    Nothing is written to the mapping.  Errors (the file went away, is not
    ours, is not a finished segment) come back in ``error``.
    """
    info = RingInfo(name)
    try:
        st = os.stat(name, dir_fd=d.fd, follow_symlinks=False)
        info.inode = (st.st_dev, st.st_ino)
        sg = seg.open_existing(d, name, role)
    except FileNotFoundError:
        info.error = "gone"
        return info
    except (OSError, ShmsockError) as exc:
        info.error = str(exc)
        return info
    try:
        stats = R.read_stats(sg.ring)
        info.caught_up_ns = sg.caught_up_ns()
    except ShmsockError as exc:
        info.error = str(exc)
        return info
    finally:
        sg.close()
    info.writer_pid = sg.pid
    info.writer_type = SocketType(sg.sock_type).name if sg.sock_type in _TYPE_NUMBERS else None
    info.capacity = sg.capacity
    info.used = stats.used
    info.messages_written = stats.msgs_written
    info.messages_read = stats.msgs_read
    info.messages_dropped = stats.msgs_dropped
    info.bytes_written = stats.bytes_written
    info.bytes_read = stats.bytes_read
    info.writer_closed = stats.producer_state != 0
    return info


_TYPE_NUMBERS: Final = {int(t) for t in SocketType}


@dataclass
class Connection:
    """One slot with its two rings: to the binder and to the connector."""

    slot: Slot
    to_binder: RingInfo | None
    to_connector: list[RingInfo]

    @property
    def last_activity_ns(self) -> int:
        """The latest time a reader of either ring had read everything."""
        rings = [r for r in (self.to_binder, *self.to_connector) if r is not None]
        return max((r.caught_up_ns for r in rings if r.error is None), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "slot": self.slot.index,
            "peer_pid": self.slot.pid,
            "peer_socket_type": self.slot.socket_type,
            "peer_alive": self.slot.alive,
            "attached": self.slot.attached,
            "to_binder": None if self.to_binder is None else self.to_binder.to_json(),
            "to_peer": [r.to_json() for r in self.to_connector],
            "last_activity": iso_time(self.last_activity_ns),
        }


def connections(d: UserDir, ep: Endpoint, *, live_only: bool = False) -> list[Connection]:
    """The connections of *ep* (only live connectors' with *live_only*),
    with their rings read from shared memory."""
    out = []
    for slot in ep.slots:
        if live_only and not slot.alive:
            continue
        to_binder = None
        ring = EndpointFiles(ep.name).connector_ring(slot.index)
        if ring in slot.files:
            to_binder = read_ring(d, ring, seg.ROLE_CONNECTOR)
        to_connector = [read_ring(d, n, seg.ROLE_BINDER) for n in slot.binder_rings]
        out.append(Connection(slot, to_binder, to_connector))
    return out


def stat(d: UserDir, name: str) -> tuple[Endpoint, list[Connection]]:
    """An endpoint and its connections; raises LookupError if it has no files."""
    found = scan(d, only=name)
    if not found:
        raise LookupError(f"no endpoint shm://{name} in {d.path}")
    return found[0], connections(d, found[0])


def iso_time(ns: int) -> str | None:
    """*ns* since the epoch as local ISO 8601 time, or None for 0."""
    if ns <= 0:
        return None
    try:
        t = datetime.datetime.fromtimestamp(ns / 1e9).astimezone()
    except (OverflowError, OSError, ValueError):
        return None  # a value no clock gives: untrusted memory
    return t.isoformat(timespec="milliseconds")
