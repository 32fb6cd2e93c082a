"""Topics: who subscribed to what, and which subscribers a message matches.

Rules (PUB, XPUB, SUB and XSUB keep them through this module):

1. **A subscription is a prefix of the first frame.**  A message matches a
   subscription when its first frame starts with it; ``b""`` matches every
   message.  With no subscription, nothing matches.
2. **The publisher filters, per subscriber.**  :class:`Subscribers` is the
   publisher's view: the set of prefixes each subscriber asked for, added
   and removed as its ``b"\\x01"+prefix`` and ``b"\\x00"+prefix`` control
   messages come (ZeroMQ's encoding).  A subscriber that asks twice for one
   prefix holds it once, as in libzmq's publisher.
3. **The subscriber counts.**  :class:`Topics` is a subscriber's own view,
   counted as libzmq's SUB counts: the first ``subscribe`` of a prefix and
   the last matching ``unsubscribe`` are the ones that travel upstream.
4. **Matching costs one slice and one dict lookup per distinct prefix
   length**, not per subscriber or per subscription (the tables are grouped
   by length).  A publisher's answer for a message is a ready-made
   :class:`~._base.Fanout` (the same object while nothing changes, so the
   socket may keep what it prepared for it), and the union of several
   prefixes' subscribers is built once and cached.

Nothing here waits or does I/O; pipes are only keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Generic, TypeVar

from ._base import Fanout
from ._queues import PipeView

__all__ = ["NOBODY", "SUBSCRIBE", "UNSUBSCRIBE", "Subscribers", "Topics", "subscription"]

#: The first byte of a subscription message, and of an unsubscription.
SUBSCRIBE: Final = 1
UNSUBSCRIBE: Final = 0

#: The placement of a message nobody subscribed to.
NOBODY: Final = Fanout(())

P = TypeVar("P", bound=PipeView)


def subscription(frames: list[bytes]) -> tuple[bool, bytes] | None:
    """``(subscribe, prefix)`` if *frames* is a (un)subscription message, else None.

    A subscription message has one frame whose first byte is 1
    (subscribe) or 0 (unsubscribe); the rest is the prefix.  Anything else
    is an ordinary upstream message (which an XSUB may send, and an XPUB
    receives).
    """
    if len(frames) != 1:
        return None
    frame = frames[0]
    if not frame or frame[0] > SUBSCRIBE:
        return None
    return frame[0] == SUBSCRIBE, frame[1:]


class _Entry(Generic[P]):
    """The subscribers of one prefix, in the order they subscribed."""

    __slots__ = ("fanout", "pipes")

    def __init__(self) -> None:
        self.pipes: dict[P, None] = {}  # an ordered set
        self.fanout = NOBODY


class Subscribers(Generic[P]):
    """A publisher's subscribers and their prefixes (rule 2), and matching (rule 4)."""

    __slots__ = ("_lengths", "_of", "_tables", "_unions")

    def __init__(self) -> None:
        # prefix length -> prefix -> entry; _lengths: the lengths, ascending.
        self._tables: dict[int, dict[bytes, _Entry[P]]] = {}
        self._lengths: tuple[tuple[int, dict[bytes, _Entry[P]]], ...] = ()
        self._of: dict[P, set[bytes]] = {}
        # Messages that match several prefixes: their entries -> the union.
        self._unions: dict[tuple[int, ...], Fanout] = {}

    def __len__(self) -> int:
        """How many (subscriber, prefix) pairs there are."""
        return sum(len(prefixes) for prefixes in self._of.values())

    def prefixes(self, pipe: P) -> set[bytes]:
        """What *pipe* subscribed to (empty if nothing)."""
        return set(self._of.get(pipe, ()))

    def pipes(self) -> list[P]:
        """Every subscriber that holds some prefix, in the order they first subscribed."""
        return list(self._of)

    def count(self, prefix: bytes) -> int:
        """How many subscribers hold *prefix*."""
        entry = self._tables.get(len(prefix), {}).get(prefix)
        return 0 if entry is None else len(entry.pipes)

    def topics(self) -> list[bytes]:
        """Every prefix someone holds, shortest first."""
        return [p for _, table in self._lengths for p in table]

    def add(self, pipe: P, prefix: bytes) -> bool:
        """*pipe* subscribes to *prefix*; True if no subscriber held it before.

        Subscribing again to a prefix it holds changes nothing.
        """
        mine = self._of.setdefault(pipe, set())
        if prefix in mine:
            return False
        mine.add(prefix)
        table = self._tables.get(len(prefix))
        if table is None:
            table = self._tables[len(prefix)] = {}
            self._lengths = tuple(sorted(self._tables.items(), key=lambda kv: kv[0]))
        entry = table.get(prefix)
        first = entry is None
        if entry is None:
            entry = table[prefix] = _Entry()
        entry.pipes[pipe] = None
        self._changed(entry)
        return first

    def remove(self, pipe: P, prefix: bytes) -> bool:
        """*pipe* unsubscribes from *prefix*; True if nobody holds it any more.

        Unsubscribing from a prefix it does not hold changes nothing (False).
        """
        mine = self._of.get(pipe)
        if mine is None or prefix not in mine:
            return False
        mine.discard(prefix)
        if not mine:
            del self._of[pipe]
        return self._drop(pipe, prefix)

    def drop(self, pipe: P) -> list[bytes]:
        """*pipe* is gone: forget its prefixes; return those nobody holds now."""
        mine = self._of.pop(pipe, set())
        return [prefix for prefix in sorted(mine) if self._drop(pipe, prefix)]

    def _drop(self, pipe: P, prefix: bytes) -> bool:
        table = self._tables[len(prefix)]
        entry = table[prefix]
        del entry.pipes[pipe]
        if entry.pipes:
            self._changed(entry)
            return False
        del table[prefix]
        if not table:
            del self._tables[len(prefix)]
            self._lengths = tuple(sorted(self._tables.items(), key=lambda kv: kv[0]))
        self._unions.clear()
        return True

    def _changed(self, entry: _Entry[P]) -> None:
        # A new Fanout (not the old one changed): a socket may hold what it
        # prepared for the old one, which must then never be used again.
        entry.fanout = Fanout(tuple(entry.pipes))
        self._unions.clear()

    def uniform(self) -> Fanout | None:
        """The placement of every message, when it does not depend on the message.

        That is when nobody holds a prefix (:data:`NOBODY`) or only
        ``b""`` is held; otherwise None (ask :meth:`match` per message).
        A batch then costs one test, not one match per message.
        """
        lengths = self._lengths
        if not lengths:
            return NOBODY
        if len(lengths) == 1 and lengths[0][0] == 0:
            return lengths[0][1][b""].fanout
        return None

    def match(self, topic: bytes) -> Fanout:
        """The subscribers a message whose first frame is *topic* goes to (rule 4)."""
        size = len(topic)
        hit: _Entry[P] | None = None
        more: list[_Entry[P]] | None = None
        for length, table in self._lengths:
            if length > size:
                break
            entry = table.get(topic[:length])
            if entry is None:
                continue
            if hit is None:
                hit = entry
            elif more is None:
                more = [hit, entry]
            else:
                more.append(entry)
        if more is None:
            return NOBODY if hit is None else hit.fanout
        key = tuple(map(id, more))
        union = self._unions.get(key)
        if union is None:
            pipes: dict[P, None] = {}
            for entry in more:
                pipes.update(entry.pipes)
            union = self._unions[key] = Fanout(tuple(pipes))
        return union


class Topics:
    """A subscriber's own subscriptions, counted (rule 3), and matching.

    ``longest`` finds the longest subscription a topic matches: the key
    under which a conflating SUB keeps its latest message.
    """

    __slots__ = ("_counts", "_lengths")

    def __init__(self) -> None:
        self._counts: dict[bytes, int] = {}
        self._lengths: tuple[int, ...] = ()

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._counts

    def __len__(self) -> int:
        return len(self._counts)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._counts)

    @property
    def everything(self) -> bool:
        """Whether ``b""`` is subscribed: every message matches."""
        return b"" in self._counts

    def subscribe(self, prefix: bytes) -> bool:
        """Count one more subscription to *prefix*; True if it is new."""
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        if n == 0:
            self._relength()
        return n == 0

    def unsubscribe(self, prefix: bytes) -> bool:
        """Count one less; True if that was the last (it is gone).

        Unsubscribing from what was never subscribed changes nothing (False).
        """
        n = self._counts.get(prefix, 0)
        if n == 0:
            return False
        if n > 1:
            self._counts[prefix] = n - 1
            return False
        del self._counts[prefix]
        self._relength()
        return True

    def _relength(self) -> None:
        self._lengths = tuple(sorted({len(p) for p in self._counts}))

    def matches(self, topic: bytes) -> bool:
        """Whether *topic* (a first frame) starts with some subscription."""
        counts = self._counts
        size = len(topic)
        for length in self._lengths:
            if length > size:
                return False
            if topic[:length] in counts:
                return True
        return False

    def longest(self, topic: bytes) -> bytes | None:
        """The longest subscription *topic* starts with, or None."""
        counts = self._counts
        size = len(topic)
        for length in reversed(self._lengths):
            if length <= size and topic[:length] in counts:
                return topic[:length]
        return None
