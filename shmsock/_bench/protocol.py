"""What every benchmark worker shares: its messages, their checks, and its loops.

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
- **The conversation with the coordinator**, over a multiprocessing pipe:
  a worker says ``"ready"``, then serves commands until ``("quit", None)``.
  A throughput receiver answers ``("run", params)`` with ``"armed"``, then
  ``"measuring"`` when its warm-up ends, ``("result", {...})`` when its
  measured window ends, and ``("done", {...})`` once every sender's END
  came.  A sender answers ``("run", params)`` by sending until the
  coordinator says ``("stop", None)`` (or ``max_seconds`` pass), then sends
  its END and answers ``("stopped", {...})``.  A round-trip server answers
  ``("serve", params)`` with ``"serving"``, echoes until the one-byte
  ``STOP`` message (which it echoes too) and then says ``"idle"``; the
  client answers ``("run", params)`` with ``("result", {...})``.  Any
  failure is sent as ``("error", text)``.

Throughput loops are written once, as coroutines: a peer with a blocking API
passes coroutine functions that never suspend, and ``drive`` runs them
without an event loop.  Round-trip loops time each round, so they come in a
plain and an async version, without a call in between.

A peer's roles are mostly setup: ``receiving``, ``sending``, ``echoing`` and
``timing`` (and their ``_async`` twins, given a way to wait for a command
off the event loop) serve the coordinator's commands, and ``one_by_one`` /
``send_each`` are the loops of a peer that moves one message per call.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import struct
import time
import traceback
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from itertools import cycle, islice
from multiprocessing.connection import Connection
from typing import Any, NoReturn, TypeVar

Spec = dict[str, Any]
Params = dict[str, Any]
T = TypeVar("T")

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
PR_SET_PDEATHSIG = 1


class Mismatch(Exception):
    """A message was lost, repeated, reordered or damaged on its way."""


class NotApplicable(Exception):
    """This way cannot send messages of this size; the reason is the message."""


# -- messages -------------------------------------------------------------------


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


Chunk = Callable[[], Awaitable[int]]
EndSender = Callable[[bytes], Awaitable[None]]


def one_by_one(recv: Callable[[], bytes], checker: Checker, per: int) -> Chunk:
    """The receiving loop of a peer that receives one message per call.

    Each message is checked as it comes (then dropped, as an application
    would), against ``checker.next``: a C call and a C comparison, so that
    checking costs every such peer the same few tens of nanoseconds.
    Collecting messages in lists first would change how the peer uses
    memory, and measurably slowed pyzmq's receiver.  Large messages
    (stamps only) go in short lists to ``take``.
    """
    size = checker.size
    nexts = checker.next
    if checker.stamps and not checker.given_stamps:
        per = min(per, 16)

        async def listed() -> int:
            got: list[bytes] = []
            for _ in range(per):
                m = recv()
                got.append(m)
                if len(m) != size:
                    break
            return checker.take(got)

        return listed
    if checker.senders == 1:

        async def single() -> int:
            nxt = nexts[0]
            n = 0
            for _ in range(per):
                m = recv()
                e = nxt()
                if m != e:
                    return checker.odd(m, e, n)
                n += 1
            return checker.count(n)

        return single

    async def several() -> int:
        n = 0
        for _ in range(per):
            m = recv()
            try:
                e = nexts[m[4]]()  # the sender's id is the stamp's fifth byte
            except IndexError:
                return checker.odd(m, None, n)
            if m != e:
                return checker.odd(m, e, n)
            n += 1
        return checker.count(n)

    return several


def send_each(send: Callable[[bytes], object], pool: Pool, per: int) -> tuple[Chunk, EndSender]:
    """The sending loop of a peer that sends one message per blocking call, and its END."""

    async def chunk() -> int:
        for m in pool.take(per):
            send(m)
        return per

    async def send_end(m: bytes) -> None:
        send(m)

    return chunk, send_end


def one_by_one_async(recv: Callable[[], Awaitable[bytes]], checker: Checker, per: int) -> Chunk:
    """one_by_one for a peer whose receive is awaited (one sender)."""
    size = checker.size
    nexts = checker.next
    if checker.senders != 1:
        raise ValueError("one_by_one_async takes one sender")
    if checker.stamps and not checker.given_stamps:
        per = min(per, 16)

        async def listed() -> int:
            got: list[bytes] = []
            for _ in range(per):
                m = await recv()
                got.append(m)
                if len(m) != size:
                    break
            return checker.take(got)

        return listed

    async def single() -> int:
        nxt = nexts[0]
        n = 0
        for _ in range(per):
            m = await recv()
            e = nxt()
            if m != e:
                return checker.odd(m, e, n)
            n += 1
        return checker.count(n)

    return single


# -- running coroutines without an event loop ------------------------------------


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (a blocking peer's loop) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a blocking peer's loop tried to suspend")


def entry(role: Callable[[Connection, Spec], None], conn: Connection, spec: Spec) -> None:
    """Start a worker: the environment and niceness it asks for, and errors reported.

    A worker dies with its parent, the forkserver, which ends when the bench
    does: a server blocked in its library's receive would otherwise outlive
    a bench that was killed.
    """
    parent = os.getppid()
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)  # the parent went before the request took effect
    os.environ.update(spec.get("env", {}))
    if spec.get("nice"):
        os.nice(spec["nice"])
    try:
        role(conn, spec)
    except (EOFError, BrokenPipeError):
        pass  # the coordinator went away
    except BaseException as exc:
        try:
            conn.send(("error", _describe(exc)))
        except OSError:
            pass
        raise SystemExit(1) from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Mismatch):
        return f"message check failed: {exc}"
    tail = traceback.format_exception(exc)[-3:]
    return "".join(tail).strip()


def fail(text: str) -> NoReturn:
    raise RuntimeError(text)


# -- throughput -------------------------------------------------------------------


async def receive_window(conn: Connection, chunk: Chunk, checker: Checker, p: Params) -> None:
    """One measured window of a throughput receiver (see the module's docstring).

    *chunk* receives some messages (at least one, and none after the
    last sender's END), checks them with *checker* and returns how many
    data messages there were.  The window starts with the first message.
    """
    checker.reset()
    conn.send("armed")
    await chunk()
    warm_until = now() + p["warmup"]
    while not checker.done and now() < warm_until:
        await chunk()
    conn.send("measuring")
    n = 0
    t0 = now()
    until = t0 + p["seconds"]
    while not checker.done and now() < until:
        n += await chunk()
    seconds = now() - t0
    result: dict[str, Any] = {"messages": n, "seconds": seconds}
    if checker.waits:
        result["quiet"] = summary(checker.waits)
    conn.send(("result", result))
    while not checker.done:
        await chunk()
    conn.send(("done", checker.report()))


async def send_window(
    conn: Connection,
    chunk: Chunk,
    send_end: EndSender,
    p: Params,
    sid: int = 0,
    too_large: tuple[type[BaseException], ...] = (),
) -> None:
    """One window of a throughput sender: chunks until told to stop, then END.

    *chunk* sends some messages and returns how many.  An exception in
    *too_large* from the first chunk means this way cannot send messages of
    this size at all: the END goes out at once and the answer says why.
    """
    count = 0
    na = None
    until = now() + p["max_seconds"]
    try:
        while not conn.poll() and now() < until:
            count += await chunk()
    except too_large as exc:
        if count:
            raise
        na = str(exc) or type(exc).__name__
    await send_end(end_message(p["size"], sid, count))
    conn.send(("stopped", {"count": count, "na": na}))


# -- round trips -------------------------------------------------------------------


def _rounds_done(i: int, rounds: int, until: float) -> bool:
    return i >= rounds or (i & 63 == 0 and now() >= until)


def rounds_sync(
    send: Callable[[bytes], object], recv: Callable[[], bytes], p: Params
) -> dict[str, Any]:
    """Time round trips of a blocking peer: *send* a message, *recv* its echo."""
    pool = Pool(p["size"]).messages
    length = len(pool)
    warm_until = now() + p["warmup_seconds"]
    for i in range(p["warmup_rounds"]):
        m = pool[i % length]
        send(m)
        if recv() != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        if i & 15 == 15 and now() > warm_until:
            break
    samples = array("q")
    clock = time.perf_counter_ns
    until = now() + p["max_seconds"]
    rounds = p["rounds"]
    i = 0
    while not _rounds_done(i, rounds, until):
        m = pool[i % length]
        t0 = clock()
        send(m)
        r = recv()
        samples.append(clock() - t0)
        if r != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        i += 1
    send(STOP)
    if recv() != STOP:
        raise Mismatch("the server did not return the stop message")
    return {"samples": samples.tobytes()}


async def rounds_async(
    send: Callable[[bytes], Awaitable[object]], recv: Callable[[], Awaitable[bytes]], p: Params
) -> dict[str, Any]:
    """rounds_sync for a peer whose calls are awaited."""
    pool = Pool(p["size"]).messages
    length = len(pool)
    warm_until = now() + p["warmup_seconds"]
    for i in range(p["warmup_rounds"]):
        m = pool[i % length]
        await send(m)
        if await recv() != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        if i & 15 == 15 and now() > warm_until:
            break
    samples = array("q")
    clock = time.perf_counter_ns
    until = now() + p["max_seconds"]
    rounds = p["rounds"]
    i = 0
    while not _rounds_done(i, rounds, until):
        m = pool[i % length]
        t0 = clock()
        await send(m)
        r = await recv()
        samples.append(clock() - t0)
        if r != m:
            raise Mismatch(f"round trip {i}: the reply is not the request")
        i += 1
    await send(STOP)
    if await recv() != STOP:
        raise Mismatch("the server did not return the stop message")
    return {"samples": samples.tobytes()}


# -- serving the coordinator's commands ------------------------------------------------

Wait = Callable[[], Awaitable[Any]]  # the next command, without blocking the event loop


def commands(conn: Connection) -> Iterator[tuple[str, Any]]:
    """The coordinator's commands, until it says quit.

    A "stop" that comes after a sender stopped by itself is passed over.
    """
    while True:
        cmd, p = conn.recv()
        if cmd == "quit":
            return
        if cmd != "stop":
            yield cmd, p


async def commands_async(wait: Wait) -> AsyncIterator[tuple[str, Any]]:
    """commands() for a worker under an event loop; *wait* gets one in a thread."""
    while True:
        cmd, p = await wait()
        if cmd == "quit":
            return
        if cmd != "stop":
            yield cmd, p


def receiving(
    conn: Connection, chunk: Chunk, checker: Checker, before: Callable[[], object] = bool
) -> None:
    """Run receive windows (see receive_window) until told to quit.

    *before* runs before each window, once every sender is up.
    """
    for cmd, p in commands(conn):
        if cmd == "run":
            before()
            drive(receive_window(conn, chunk, checker, p))


async def receiving_async(conn: Connection, wait: Wait, chunk: Chunk, checker: Checker) -> None:
    async for cmd, p in commands_async(wait):
        if cmd == "run":
            await receive_window(conn, chunk, checker, p)


def sending(
    conn: Connection,
    chunk: Chunk,
    send_end: EndSender,
    sid: int = 0,
    too_large: tuple[type[BaseException], ...] = (),
) -> None:
    """Run send windows (see send_window) until told to quit."""
    for cmd, p in commands(conn):
        if cmd == "run":
            drive(send_window(conn, chunk, send_end, p, sid, too_large))


async def sending_async(
    conn: Connection,
    wait: Wait,
    chunk: Chunk,
    send_end: EndSender,
    sid: int = 0,
    too_large: tuple[type[BaseException], ...] = (),
) -> None:
    async for cmd, p in commands_async(wait):
        if cmd == "run":
            await send_window(conn, chunk, send_end, p, sid, too_large)


def echoing(conn: Connection, recv: Callable[[], bytes], send: Callable[[bytes], object]) -> None:
    """An echo server's life: on "serve", echo until the STOP message (echoed too)."""
    for cmd, _ in commands(conn):
        if cmd == "serve":
            conn.send("serving")
            while True:
                m = recv()
                send(m)
                if len(m) == len(STOP):
                    break
            conn.send("idle")


async def echoing_async(
    conn: Connection,
    wait: Wait,
    recv: Callable[[], Awaitable[bytes]],
    send: Callable[[bytes], Awaitable[object]],
) -> None:
    async for cmd, _ in commands_async(wait):
        if cmd == "serve":
            conn.send("serving")
            while True:
                m = await recv()
                await send(m)
                if len(m) == len(STOP):
                    break
            conn.send("idle")


def timing(conn: Connection, send: Callable[[bytes], object], recv: Callable[[], bytes]) -> None:
    """A round-trip client's life: on "run", time the rounds and answer with them."""
    for cmd, p in commands(conn):
        if cmd == "run":
            conn.send(("result", rounds_sync(send, recv, p)))


async def timing_async(
    conn: Connection,
    wait: Wait,
    send: Callable[[bytes], Awaitable[object]],
    recv: Callable[[], Awaitable[bytes]],
) -> None:
    async for cmd, p in commands_async(wait):
        if cmd == "run":
            conn.send(("result", await rounds_async(send, recv, p)))


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
