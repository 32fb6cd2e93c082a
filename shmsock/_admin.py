"""What the ``shmsock ls``, ``stat``, ``clean`` and ``exporter`` commands read.

Everything here works from the files in the per-user directory (see
``_transport._fs`` for their names), with no help from the processes that
own them:

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
engine takes when it reclaims a dead process's files.

Probing a lock takes a shared flock for an instant and drops it.  A live
holder's exclusive lock makes the probe fail, which is the answer; a program
that tries to take over a *stale* endpoint at that very instant is told
AddressInUse and can simply bind again.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from . import _ring as R
from ._errors import ShmsockError, UnsafeFile
from ._patterns import PATTERNS
from ._stats import EndpointStats
from ._transport import _segment as seg
from ._transport._engine import reclaim_slot, slot_files
from ._transport._fs import UserDir, lock_file, user_dir_path
from ._types import SocketType

__all__ = [
    "CleanReport",
    "Connection",
    "Endpoint",
    "NodeCollector",
    "RingInfo",
    "Slot",
    "clean",
    "endpoint_stats",
    "open_user_dir",
    "scan",
    "stat",
]

_NAME: Final = r"[A-Za-z0-9._-]{1,64}"
# The names shmsock makes; anything else in the directory is not ours to read.
_ENTRY: Final = re.compile(
    rf"(?P<name>{_NAME})@(?:(?P<bind>lock|(?:sock|spare)(?:\.[0-9a-f]{{8}})?)"
    r"|(?P<slot>0|[1-9]\d{0,3})\.(?P<kind>lock|c|b\.[0-9a-f]{8}))"
)
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
        m = _ENTRY.fullmatch(entry)
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
        if f"{name}@lock" in ep.binder_files:
            try:
                held, ep.binder_pid, ep.binder_type = _probe(d, f"{name}@lock")
                ep.binder = "alive" if held else "stale"
            except FileNotFoundError:
                ep.binder_files.remove(f"{name}@lock")  # its binder just closed
            except UnsafeFile as exc:
                ep.unsafe = str(exc)
        for k, slot in sorted(slots.items()):
            lockname = f"{name}@{k}.lock"
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
        if f"{ep.name}@{slot.index}.c" in slot.files:
            to_binder = read_ring(d, f"{ep.name}@{slot.index}.c", seg.ROLE_CONNECTOR)
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


# -- clean ---------------------------------------------------------------------------


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file: reason"


def _would_reclaim(d: UserDir, name: str, slot: Slot) -> list[str]:
    """What reclaim_slot would remove now, without removing it."""
    lockname = f"{name}@{slot.index}.lock"
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

    The same rule as the engine's when it takes over a dead process's
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
        if ep.unsafe:
            report.skipped.append(f"{ep.name}@lock: {ep.unsafe}")
            continue
        bind_fd = None
        if ep.binder == "stale":
            try:
                bind_fd = lock_file(d, f"{ep.name}@lock", create=False)
            except FileNotFoundError:
                pass
            except UnsafeFile as exc:
                report.skipped.append(f"{ep.name}@lock: {exc}")
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
                        lockname = f"{ep.name}@{slot.index}.lock"
                        report.removed.extend(
                            f for f in removed if f != lockname or lockname in slot.files
                        )
                except UnsafeFile as exc:
                    report.skipped.append(f"{ep.name}@{slot.index}.lock: {exc}")
                except FileNotFoundError:
                    pass  # its connector closed meanwhile
            if bind_fd is not None:
                # Ours now: no binder can come while we hold the lock.  The
                # lock file goes last, as the engine's bind expects.
                names = [f for f in ep.binder_files if f != f"{ep.name}@lock"]
                names.append(f"{ep.name}@lock")
                for entry in names:
                    if dry_run or d.unlink(entry):
                        report.removed.append(entry)
        finally:
            if bind_fd is not None:
                os.close(bind_fd)
    return report


# -- exporter ------------------------------------------------------------------------


def _peer_type(kind: str | None) -> str:
    """The type that reads what a *kind* socket writes, when only one can."""
    if kind is None:
        return "unknown"
    compatible = PATTERNS[SocketType[kind]].compatible
    return next(iter(compatible)).name if len(compatible) == 1 else "unknown"


@dataclass
class _RingCounts:
    writer: tuple[str, str]  # (endpoint, socket type)
    reader: tuple[str, str]
    counts: tuple[int, int, int, int]  # messages and bytes written, read


def _ring_counts(
    d: UserDir, endpoints: Iterable[Endpoint]
) -> Iterator[tuple[tuple[int, int], _RingCounts, int, bool]]:
    """(ring identity, counts, used bytes, counts as a peer) of every live ring.

    A ring is live while the connector of its slot is: once that process
    is gone, its rings never come back (a new connector in the slot makes
    new files), so a ring leaves this list only once.
    """
    for ep in endpoints:
        if not ep.live:
            continue
        endpoint = ep.endpoint
        for conn in connections(d, ep, live_only=True):
            connector_type = conn.slot.socket_type
            binder_type = ep.binder_type
            rings = []
            if conn.to_binder is not None:
                rings.append((conn.to_binder, connector_type, binder_type))
            rings.extend((r, binder_type, connector_type) for r in conn.to_connector)
            for ring, writer, reader in rings:
                if ring.error is not None or ring.inode is None:
                    continue
                writer = ring.writer_type or writer
                writer_name = writer or "unknown"
                reader_name = reader or _peer_type(writer)
                counts = (
                    ring.messages_written,
                    ring.bytes_written,
                    ring.messages_read,
                    ring.bytes_read,
                )
                peer = ring is conn.to_binder and conn.slot.attached and ep.binder == "alive"
                yield (
                    ring.inode,
                    _RingCounts((endpoint, writer_name), (endpoint, reader_name), counts),
                    ring.used,
                    peer,
                )


def endpoint_stats(
    d: UserDir,
) -> tuple[dict[tuple[str, str], EndpointStats], dict[tuple[int, int], _RingCounts]]:
    """Statistics by (endpoint, socket type) of every live endpoint in *d*.

    A live binder has its entry even with no peers (all zero); a peer's
    comes from the rings of its connection.

    Also returns each ring's counts by ring identity (device, inode), so
    that a caller can tell which rings have gone since (see NodeCollector).
    """
    out: dict[tuple[str, str], EndpointStats] = {}

    def get(key: tuple[str, str]) -> EndpointStats:
        st = out.get(key)
        if st is None:
            st = out[key] = EndpointStats()
        return st

    endpoints = scan(d)
    for ep in endpoints:
        # A live binder is there before any peer, and after the last one:
        # its series exist, at zero, as the binding process's own do.  (Its
        # type is unknown only for the instant between taking the lock and
        # writing it; the next scrape has it.)
        if ep.binder == "alive" and ep.binder_type is not None:
            get((ep.endpoint, ep.binder_type))
    seen: dict[tuple[int, int], _RingCounts] = {}
    for inode, rc, used, peer in _ring_counts(d, endpoints):
        seen[inode] = rc
        w, r = get(rc.writer), get(rc.reader)
        w.messages_sent += rc.counts[0]
        w.bytes_sent += rc.counts[1]
        r.messages_received += rc.counts[2]
        r.bytes_received += rc.counts[3]
        w.used_out += used
        r.used_in += used
        if peer:
            w.peers += 1
            r.peers += 1
    return out, seen


class NodeCollector:
    """A Prometheus collector for every live endpoint of this user.

    Reads the ring headers at each scrape (see the module doc).  Counters
    stay monotonic across connections that come and go: when a ring
    disappears, the counts it had at the previous scrape are kept in a
    total for its endpoint and socket type (what it did after that scrape
    is lost).  The counters a process keeps privately (corrupt and dropped
    messages, time blocked) are not in shared memory, so not here.
    """

    COUNTERS: Final = ("messages_sent", "bytes_sent", "messages_received", "bytes_received")

    def __init__(self, root: str | None = None) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._last: dict[tuple[int, int], _RingCounts] = {}
        self._gone: dict[tuple[str, str], EndpointStats] = {}

    def snapshot(self) -> dict[tuple[str, str], EndpointStats]:
        """Statistics now, with the totals of rings gone since earlier scrapes."""
        with self._lock:
            d = open_user_dir(self._root)
            if d is None:
                current: dict[tuple[str, str], EndpointStats] = {}
                seen: dict[tuple[int, int], _RingCounts] = {}
            else:
                try:
                    current, seen = endpoint_stats(d)
                finally:
                    d.close()
            for inode, rc in self._last.items():
                if inode in seen:
                    continue
                w = self._gone.setdefault(rc.writer, EndpointStats())
                w.messages_sent += rc.counts[0]
                w.bytes_sent += rc.counts[1]
                r = self._gone.setdefault(rc.reader, EndpointStats())
                r.messages_received += rc.counts[2]
                r.bytes_received += rc.counts[3]
            self._last = seen
            for key, total in self._gone.items():
                current.setdefault(key, EndpointStats()).add_counters(total)
            return current

    def collect(self) -> Iterable[Any]:
        from .metrics import _build_families

        return _build_families(self.snapshot(), counters=self.COUNTERS)

    def describe(self) -> Iterable[Any]:
        from .metrics import _build_families

        return _build_families({}, counters=self.COUNTERS)
