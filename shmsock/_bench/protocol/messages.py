"""The messages every benchmark worker sends, and the checks of every one received.

Every way of moving messages (shmsock's call styles and every peer) runs the
same work, so that the figures compare like with like:

- **The messages.**  A sender sends from a pool of distinct messages of
  the trial's size, round and round.  Message ``j`` of sender ``s`` starts
  with ``STAMP`` (``j``, ``s``): a sequence number modulo the pool's length
  and the sender's id; the rest is the same pseudo-random bytes for all.
  Building them ahead keeps per-message work out of the sender's loop.
- **The checks.**  The receiver knows the pools too and checks every message
  against the one expected next from its sender (``Checker``): the whole
  message up to ``FULL_CHECK_MAX`` bytes, and the stamp and the length
  above that (a memcmp of megabytes would cost as much as moving them).
  A peer that receives one message per call checks each as it comes, one
  that receives lists checks the list in one comparison; both at C speed.
  A lost, repeated, reordered or corrupt message fails the trial.  At the
  end every sender sends an ``END`` record with the number of messages it
  sent, and the receiver checks that exactly that many arrived.  (A loss
  of an exact multiple of the pool's length together with as many
  duplicates is the one thing this would miss.)
- **Round trips** are timed in nanoseconds per round; ``summary`` turns
  them into the percentiles every table and chart shows.
"""

from __future__ import annotations

import random
import struct
import time
from array import array
from collections.abc import Callable, Iterator
from itertools import cycle, islice
from typing import Any

now = time.perf_counter
STAMP = struct.Struct("<II")  # (index in the pool, sender id)
END = struct.Struct("<IIQ")  # (END_MARK, sender id, messages sent)
END_MARK = 0xFFFFFFFF
STOP = b"!"  # ends a round-trip trial; every echo server returns it and goes idle
MIN_SIZE = STAMP.size
FULL_CHECK_MAX = 2048
POOL_BYTES = 256 << 10  # small enough to stay in the cache: a check is a memcmp
POOL_MAX = 4096
# The quiet sender of "fanin-quiet": one message every QUIET_GAP seconds,
# carrying the time it was sent.  perf_counter is CLOCK_MONOTONIC on Linux,
# one clock for every process.  The busy senders' messages are never this
# size (the suite sees to it), which is how the receiver tells them apart.
QUIET_GAP = 0.005
QUIET = struct.Struct("=dc")


class Mismatch(Exception):
    """A message was lost, repeated, reordered or damaged on its way."""


class NotApplicable(Exception):
    """This way cannot send messages of this size; the reason is the message."""


def pool_length(size: int) -> int:
    """How many distinct messages a sender cycles through (at most POOL_BYTES)."""
    return max(4, min(POOL_MAX, POOL_BYTES // size))


def step(size: int, most: int = 500) -> int:
    """Messages per loop turn: *most*, fewer for large messages, never beyond the pool."""
    return max(1, min(most, (4 << 20) // size, pool_length(size)))


def end_message(size: int, sid: int, count: int) -> bytes:
    """A sender's END record; its length always differs from *size*."""
    record = END.pack(END_MARK, sid, count)
    return record + bytes(8) if size == len(record) else record


def _body(size: int) -> bytes:
    return random.Random(size).randbytes(size)


class Pool:
    """The messages one sender sends, in order, round and round."""

    def __init__(self, size: int, sid: int = 0, stamps_only: bool = False) -> None:
        if size < MIN_SIZE:
            raise ValueError(f"messages must be at least {MIN_SIZE} bytes")
        self.size = size
        self.sid = sid
        self.length = pool_length(size)
        if stamps_only:
            self.messages = [STAMP.pack(j, sid) for j in range(self.length)]
        else:
            tail = _body(size)[STAMP.size :]
            self.messages = [STAMP.pack(j, sid) + tail for j in range(self.length)]
        self._twice = self.messages + self.messages
        self._pos = 0

    def take(self, n: int) -> list[bytes]:
        """The next *n* messages (at most the pool's length)."""
        k = self._pos
        self._pos = (k + n) % self.length
        return self._twice[k : k + n]


class Checker:
    """Checks every message a receiver gets: order, content and, at the end, count.

    The messages expected next come from an iterator per sender, cycling
    through that sender's pool (``next[sid]()`` gives the next one, at C
    speed).  A receiver that gets its messages one at a time compares each
    with it (``one_by_one``); one that gets them in lists hands the list to
    ``take``.  Either way ``data`` counts the data messages of the window,
    and when every sender's END has come their counts must add up to it.
    A message that is not the expected one goes to ``odd``: an END or a
    quiet sender's message is noted, anything else raises Mismatch.

    With *stamps* (a zero-copy receiver reads only the first STAMP.size
    bytes of a message, and checks its length itself), the items are those
    stamps, except for END and quiet records, which are whole.  Above
    FULL_CHECK_MAX only the stamps are compared in any case.
    """

    def __init__(
        self, size: int, senders: int = 1, quiet: bool = False, stamps: bool = False
    ) -> None:
        self.size = size
        self.senders = senders
        self.stamps = stamps or size > FULL_CHECK_MAX
        self.given_stamps = stamps
        self.length = pool_length(size)
        self._pools = [Pool(size, sid, stamps_only=self.stamps).messages for sid in range(senders)]
        self._iters: list[Iterator[bytes]] = []
        self.next: list[Callable[[], bytes]] = []
        for sid in range(senders):
            self._iters.append(iter(()))
            self.next.append(self._iters[-1].__next__)
            self._rewind(sid, 0)
        self.quiet = quiet
        self.reset()

    def reset(self) -> None:
        """Start a window: every sender's END to come, the count from zero.

        The positions in the pools go on: so do the senders'.
        """
        self.data = 0
        self.quiet_count = 0
        self.sent: dict[int, int] = {}
        self.open = self.senders + (1 if self.quiet else 0)
        self.waits: list[int] = []  # ns each quiet message waited

    @property
    def done(self) -> bool:
        """Whether every sender's END has come."""
        return self.open == 0

    def _rewind(self, sid: int, j: int) -> None:
        """Expect message *j* of sender *sid* next."""
        pool = self._pools[sid]
        it = cycle(pool[j:] + pool[:j])
        self._iters[sid] = it
        self.next[sid] = it.__next__

    def count(self, n: int) -> int:
        """*n* messages of a one-by-one chunk were all as expected."""
        self.data += n
        return n

    def odd(self, m: bytes, expected: bytes | None, n: int) -> int:
        """*m* came where *expected* (now taken from its iterator) was, after *n* good ones.

        Returns how many data messages the chunk had.
        """
        self.data += n
        if expected is not None:
            j, sid = STAMP.unpack_from(expected)
            self._rewind(sid, j)
        return n + self._slow([m])

    def take(self, got: list[bytes]) -> int:
        """Check a list of messages; returns how many data messages it held."""
        n = len(got)
        if not n:
            return 0
        if self.stamps and not self.given_stamps:
            size = self.size
            got = [m[: STAMP.size] if len(m) == size else m for m in got]
        sid = 0
        if self.senders > 1:
            first = got[0]
            sid = first[4] if len(first) >= STAMP.size else 0
            if sid >= self.senders:
                return self._slow(got)
        expected = list(islice(self._iters[sid], n))
        if got == expected:
            self.data += n
            return n
        self._rewind(sid, STAMP.unpack_from(expected[0])[0])
        return self._slow(got)

    def _slow(self, got: list[bytes]) -> int:
        data = 0
        data_len = STAMP.size if self.stamps else self.size
        for m in got:
            if len(m) == data_len:
                j, sid = STAMP.unpack_from(m)
                if sid >= self.senders:
                    raise Mismatch(f"a message from sender {sid}, and there are {self.senders}")
                expected = self.next[sid]()
                if m != expected:
                    k = STAMP.unpack_from(expected)[0]
                    if j == k:
                        raise Mismatch(f"a message of sender {sid} arrived damaged")
                    raise Mismatch(
                        f"sender {sid}: a message arrived with sequence number {j} where"
                        f" {k} was expected (mod {self.length}): lost, repeated or out of order"
                    )
                self.data += 1
                data += 1
            elif self.quiet and len(m) == QUIET.size:
                self.waits.append(int((now() - QUIET.unpack(m)[0]) * 1e9))
                self.quiet_count += 1
            elif len(m) in (END.size, END.size + 8) and m[:4] == b"\xff\xff\xff\xff":
                self._end(*END.unpack_from(m)[1:])
            else:
                raise Mismatch(f"a message of {len(m)} bytes, {self.size} expected")
        return data

    def _end(self, sid: int, count: int) -> None:
        if sid > self.senders or sid in self.sent:
            raise Mismatch(f"an unexpected END from sender {sid}")
        self.sent[sid] = count
        self.open -= 1
        if self.open:
            return
        # Every sender's messages came before its END: all are in.
        sent = sum(c for s, c in self.sent.items() if s < self.senders)
        if self.data != sent:
            raise Mismatch(f"{sent} messages were sent and {self.data} arrived")
        if self.quiet and self.quiet_count != self.sent[self.senders]:
            raise Mismatch(
                f"the quiet sender sent {self.sent[self.senders]} messages"
                f" and {self.quiet_count} arrived"
            )

    def report(self) -> dict[str, Any]:
        return {"checked": self.data}


def summary(samples_ns: list[int] | array[int]) -> dict[str, float]:
    """Percentiles of latency samples, in microseconds."""
    s = sorted(samples_ns)
    n = len(s)
    if not n:
        return {"count": 0}

    def pct(p: float) -> float:
        return s[min(n - 1, int(p * n))] / 1000.0

    return {
        "count": n,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": s[-1] / 1000.0,
    }


def samples_of(result: dict[str, Any]) -> array[int]:
    out = array("q")
    out.frombytes(result["samples"])
    return out
