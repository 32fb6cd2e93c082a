"""Sending without waiting: place a message now, or raise WouldBlock.

The general path of every send (the socket's ``send_nowait`` fast path
handles plain messages to the head of the send queue before it comes
here):

1. the socket is open and the pattern allows a send now (and, for a type
   that shapes its messages, ``Pattern.outgoing`` says what to write);
2. the message's size is within ``max_msg_size`` and every limit that
   applies (a transport's "at once", the receivers' own limits);
3. the pattern says where it goes (a placement, ``_patterns._base``);
4. the pipe takes it, whole, or refuses (no room), and the pattern is told
   and asked again.  "Nowhere now" becomes WouldBlock, after the pattern
   and the transports have had their say (a PAIR whose peer is gone, a
   connect that was refused).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import Final, NoReturn, cast

import trio

from ._args import as_bytes, sequence_of
from ._errors import MessageTooLarge
from ._hub import Hub
from ._options import Options
from ._patterns import DROPPED, Dropped, Fanout, Pattern, PipeView
from ._transport import FRAME_ALLOWANCE, FanWriter, Loan, Pipe, scheme_of

__all__ = ["Outbox"]


class _Plans:
    """A fan-out over the pipes of several transports: one writer each."""

    __slots__ = ("writers",)

    def __init__(self, writers: list[FanWriter]) -> None:
        self.writers = writers

    def write(self, frames: list[bytes], aux: int) -> None:
        for writer in self.writers:
            writer.write(frames, aux)

    def write_all(self, frames: list[bytes], aux: int) -> bool:
        # Every writer is asked (each marks its pipes without room), then
        # all write: room only grows meanwhile, since we are their writer.
        if not all([writer.room(frames) for writer in self.writers]):
            return False
        for writer in self.writers:
            writer.write(frames, aux)
        return True

    def room(self, frames: list[bytes]) -> bool:
        return all([writer.room(frames) for writer in self.writers])

    def miss(self, pipe: Pipe) -> None:
        for writer in self.writers:
            writer.miss(pipe)

    def write_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        self.check_many(messages, data, lens)  # refused by one: written by none
        for writer in self.writers:
            writer.write_many(messages, data, lens)

    def write_many_all(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        if not self.room_many(messages, data, lens):
            return False
        for writer in self.writers:
            writer.write_many(messages, data, lens)  # (room only grew: every one takes it)
        return True

    def check_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        for writer in self.writers:
            writer.check_many(messages, data, lens)

    def room_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        return all([writer.room_many(messages, data, lens) for writer in self.writers])


_NOWHERE: Final = _Plans([])

FanPlan = FanWriter | _Plans


#: One part of a published batch: a plan and the messages its pipes get,
#: as a list and back to back with their lengths.
_Share = tuple[FanPlan, list[bytes], bytes, "array[int]"]


class Outbox:
    """The non-waiting send paths of one socket."""

    __slots__ = ("_check_open", "_hub", "_pattern", "max_msg_size", "nodrop", "place")

    def __init__(
        self, pattern: Pattern, hub: Hub, check_open: Callable[[], None], max_msg_size: int
    ) -> None:
        self._pattern = pattern
        self._hub = hub
        self._check_open = check_open
        self.max_msg_size = max_msg_size
        #: A fan-out waits for room in every matching pipe (the nodrop option).
        self.nodrop = False
        #: Where a checked message goes: placed by the pattern, or fanned out.
        self.place: Callable[[list[bytes], int, int], None] = (
            self._publish if pattern.fans_out else self._place
        )

    def configure(self, options: Options) -> None:
        """Use the socket's options from now on."""
        self.max_msg_size = options.max_msg_size
        self.nodrop = options.nodrop

    def size_check(self, frames: list[bytes]) -> int:
        """The message's size; raises ValueError (no frame) or MessageTooLarge."""
        if not frames:
            raise ValueError("a message needs at least one frame")
        size = sum(map(len, frames)) if len(frames) > 1 else len(frames[0])
        if size > self.max_msg_size:
            raise MessageTooLarge(
                f"message of {size} bytes exceeds max_msg_size {self.max_msg_size}"
            )
        return size

    def send_nowait(self, frames: list[bytes]) -> None:
        """Place a message now, whole, or raise WouldBlock (nothing sent).

        Raises MessageTooLarge when it can never be written at once by
        some transport of this socket (``await send()`` then streams it),
        or when no peer it may go to accepts that much.
        """
        self._check_open()
        pattern = self._pattern
        pattern.check_send()
        hub = self._hub
        if pattern.shapes_send:  # (ROUTER: the routing id chooses the pipe)
            frames, aux = pattern.outgoing(frames)
        else:
            aux = -1
        if len(frames) == 1:
            size = len(frames[0])
            if size > self.max_msg_size:
                self.size_check(frames)  # raises, saying why
            simple = size <= hub.max_simple
        else:
            size = self.size_check(frames)
            simple = size + FRAME_ALLOWANCE * len(frames) <= hub.max_simple
        if size > hub.peer_limit:
            self.check_peer_limits(size)
        if not simple:
            for transport in hub.transports.values():
                transport.check_atomic(frames, size)
        self.place(frames, pattern.send_aux() if aux < 0 else aux, size)

    def _place(self, frames: list[bytes], aux: int, size: int) -> None:
        """Offer the message where the pattern says, until placed or nowhere.

        A pipe whose peer accepts less than *size* bytes is passed over (the
        caller has checked that some live one does not: check_peer_limits).
        """
        pattern = self._pattern
        hub = self._hub
        over = size > hub.peer_limit  # some peer accepts less: look at each
        polled = False
        passes = 0
        while True:
            # (No isinstance, no len, no cast on the usual way through: this
            # runs for every message of the general path.)
            target = pattern.route()
            if target is None or (passes and passes > len(pattern.queues.send)):
                if not polled and hub.poll():  # events that came meanwhile
                    polled, passes = True, 0
                    over = size > hub.peer_limit  # (a peer that attached may accept less)
                    continue
                self.nothing_to_send()
            if target is DROPPED:
                return
            pipe: Pipe = target  # type: ignore[assignment]
            if over and size > pipe.peer_limit:
                pattern.passed_over(pipe)
                passes += 1
                continue
            if pipe.offer(frames, aux):
                pattern.sent(pipe)
                return
            pattern.refused(pipe)

    def loan_nowait(self, size: int) -> Loan | None:
        """Room for a one-frame message of *size* bytes in the next pipe's memory, now.

        For the types that send plain messages (PUSH, PAIR).  The pattern
        chooses the pipe as for a send; None when that pipe lends nothing
        (the caller fills a private buffer and sends it).  Raises
        WouldBlock (no room anywhere now), MessageTooLarge, and what the
        pattern raises for a send.
        """
        self._check_open()
        pattern = self._pattern
        pattern.check_send()
        hub = self._hub
        if size > self.max_msg_size:
            raise MessageTooLarge(
                f"a loan of {size} bytes exceeds max_msg_size {self.max_msg_size}"
            )
        if size > hub.peer_limit:
            self.check_peer_limits(size)
        polled = False
        passes = 0
        while True:
            target = pattern.route()
            if target is None or (passes and passes > len(pattern.queues.send)):
                if not polled and hub.poll():
                    polled, passes = True, 0
                    continue
                self.nothing_to_send()
            if isinstance(target, Dropped | Fanout):  # pragma: no cover - plain types have none
                raise TypeError(f"{pattern.kind.name} placed a loan as {target!r}")
            pipe: Pipe = target  # type: ignore[assignment]
            if size > pipe.peer_limit:
                pattern.passed_over(pipe)
                passes += 1
                continue
            lend = getattr(pipe, "loan", None)
            if lend is None:
                return None
            loan: Loan | None = lend(size)
            if loan is not None:
                pattern.sent(pipe)  # the next message goes to the next pipe
                return loan
            pattern.refused(pipe)

    # -- fan-out (PUB, XPUB) -------------------------------------------------------------

    def _publish(self, frames: list[bytes], aux: int, size: int) -> None:
        """Write the message into every pipe whose subscriptions it matches.

        Each pipe without room misses it (counted by its transport), or with
        ``nodrop`` the message waits until every one of them has room: then
        WouldBlock, and nothing was written anywhere.  A pipe whose peer
        accepts less than *size* bytes misses it too.  Nobody subscribed:
        the message goes nowhere, without error.

        The events that came meanwhile are handled first, so a subscriber
        that connected (and its subscriptions, which come with the
        connection) counts from the first message sent after its connect
        returned.  That costs a system call per message (0.3 us); it is
        what makes the slow-joiner promise hold (docs/pubsub.md).
        """
        hub = self._hub
        pattern = self._pattern
        hub.poll()
        topic = frames[0]
        while True:
            fan = pattern.fanout(topic)
            pipes = fan.pipes
            if not pipes:
                return
            plan: FanPlan = fan.plan  # type: ignore[assignment]
            if plan is None:
                plan = fan.plan = self._plan(pipes)
            if size > hub.peer_limit:
                plan = self._within_limits(plan, pipes, size)
            if not self.nodrop:
                plan.write(frames, aux)
                return
            if plan.write_all(frames, aux):
                return
            if pattern.fanout(topic) is fan:
                raise trio.WouldBlock  # no pipe went meanwhile: wait for room
            # A pipe went (found broken, say): its subscriptions went with it.

    def publish_one(self, data: bytes) -> None:
        """``_publish`` for the socket's fast path: one frame within every limit.

        The socket checked what the general path checks (open, and a size
        within max_msg_size, the transports' "at once" and every peer's
        limit: ``_fan_limit``); a PUB's or XPUB's send is always allowed
        and carries no aux word.  Raises WouldBlock as ``_publish`` does.
        """
        hub = self._hub
        hub.poll()  # the slow-joiner promise (see _publish)
        frames = [data]
        if len(data) > hub.peer_limit:  # a peer that attached meanwhile accepts less
            self._publish(frames, 0, len(data))
            return
        pattern = self._pattern
        while True:
            fan = pattern.fanout(data)
            pipes = fan.pipes
            if not pipes:
                return
            plan: FanPlan = fan.plan  # type: ignore[assignment]
            if plan is None:
                plan = fan.plan = self._plan(pipes)
            if not self.nodrop:
                plan.write(frames, 0)
                return
            if plan.write_all(frames, 0):
                return
            if pattern.fanout(data) is fan:
                raise trio.WouldBlock
            # A pipe went meanwhile: its subscriptions went with it.

    def encode_fan_batch(self, messages: Sequence[bytes]) -> tuple[list[bytes], bytes, array[int]]:
        """A PUB's or XPUB's batch: its messages as bytes, and ``encode_batch``'s form."""
        self._check_open()
        self._pattern.check_send_many()
        items = list(sequence_of(messages, "send_many"))
        if not all([type(m) is bytes for m in items]):
            items = [as_bytes(m) for m in items]
        data = b"".join(items)
        lens = array("I", map(len, items))
        limit = self.max_msg_size
        if len(data) > limit and max(lens) > limit:
            raise MessageTooLarge(f"a message of {max(lens)} bytes exceeds max_msg_size {limit}")
        return items, data, lens

    def publish_batch_nowait(self, batch: tuple[list[bytes], bytes, array[int]]) -> None:
        """Publish a batch now: each message to the subscribers it matches, in order.

        With ``nodrop``, every matching subscriber takes its share of the
        batch or none does (WouldBlock: nothing was written anywhere).
        Without it, a subscriber without room for its whole share misses
        all of it, each message counted.  A subscriber whose peer accepts
        less than a message misses that message (counted) and gets the
        rest.  The events that came meanwhile are handled first, once for
        the batch (the slow-joiner promise, as for ``_publish``).  On
        shm:// a share that several subscribers get is one C call, each
        payload's checksum computed once.
        """
        self._check_open()
        messages, data, lens = batch
        if not lens:
            return
        self._hub.poll()
        while True:
            fans, shares, over = self._shares(messages, data, lens)
            if not shares:
                break
            if not self.nodrop:
                if len(shares) > 1:  # none is refused as too large after another wrote
                    for plan, msgs, d, ls in shares:
                        plan.check_many(msgs, d, ls)
                for plan, msgs, d, ls in shares:
                    plan.write_many(msgs, d, ls)
                break
            if len(shares) == 1:
                plan, msgs, d, ls = shares[0]
                if plan.write_many_all(msgs, d, ls):
                    break
            elif all([plan.room_many(msgs, d, ls) for plan, msgs, d, ls in shares]):
                for plan, msgs, d, ls in shares:
                    plan.write_many(msgs, d, ls)  # every one has room: it takes all of it
                break
            now = self._batch_fans(messages)
            if len(now) == len(fans) and all([a is b for a, b in zip(now, fans, strict=True)]):
                raise trio.WouldBlock  # no pipe went meanwhile: wait for room
            # A pipe went (found broken, say): its subscriptions went with it.
        for plan, pipe in over:
            plan.miss(pipe)

    def _batch_fans(self, messages: list[bytes]) -> list[Fanout]:
        """Which placement each message of a batch has now (one when uniform)."""
        pattern = self._pattern
        uniform = pattern.fanout_uniform()
        if uniform is not None:
            return [uniform]
        return list(map(pattern.fanout, messages))

    def _shares(
        self, messages: list[bytes], data: bytes, lens: array[int]
    ) -> tuple[list[Fanout], list[_Share], list[tuple[FanPlan, Pipe]]]:
        """Where a batch goes: each distinct share of it, with the plan of its pipes.

        Also the batch's placements (``_batch_fans``) and the (plan, pipe)
        pairs to count as missed once it is written (a message over the
        pipe's peer_limit).
        """
        pattern = self._pattern
        uniform = pattern.fanout_uniform()
        hub = self._hub
        if uniform is not None and max(lens) <= hub.peer_limit:
            pipes = uniform.pipes
            if not pipes:
                return [uniform], [], []
            plan: FanPlan = uniform.plan  # type: ignore[assignment]
            if plan is None:
                plan = uniform.plan = self._plan(pipes)
            return [uniform], [(plan, messages, data, lens)], []
        # Each pipe's share, in order, then one plan per distinct share.
        fanout = pattern.fanout
        placements: list[Fanout] = (
            [uniform] * len(messages) if uniform is not None else list(map(fanout, messages))
        )
        share: dict[Pipe, list[int]] = {}
        skipped: list[Pipe] = []
        for i, fan in enumerate(placements):
            size = lens[i]
            for view in fan.pipes:
                pipe: Pipe = view  # type: ignore[assignment]
                if size > pipe.peer_limit:
                    skipped.append(pipe)
                else:
                    share.setdefault(pipe, []).append(i)
        groups: dict[tuple[int, ...], list[Pipe]] = {}
        for pipe, mine in share.items():
            groups.setdefault(tuple(mine), []).append(pipe)
        shares: list[_Share] = []
        for indices, group in groups.items():
            msgs = [messages[i] for i in indices]
            shares.append(
                (self._plan(group), msgs, b"".join(msgs), array("I", [lens[i] for i in indices]))
            )
        over = [(self._plan([pipe]), pipe) for pipe in skipped]
        fans = [uniform] if uniform is not None else placements
        return fans, shares, over

    def _plan(self, pipes: Sequence[PipeView]) -> FanPlan:
        """A writer for *pipes*: their transports' own, one per transport."""
        groups: dict[str, list[Pipe]] = {}
        for view in pipes:
            pipe = cast("Pipe", view)
            groups.setdefault(scheme_of(pipe.endpoint), []).append(pipe)
        transports = self._hub.transports
        writers = [transports[scheme].fan_out(group) for scheme, group in groups.items()]
        return writers[0] if len(writers) == 1 else _Plans(writers)

    def _within_limits(self, plan: FanPlan, pipes: Sequence[PipeView], size: int) -> FanPlan:
        """The plan for those of *pipes* whose peers accept *size* bytes; the others miss it."""
        ok: list[PipeView] = []
        for view in pipes:
            pipe: Pipe = view  # type: ignore[assignment]
            if size <= pipe.peer_limit:
                ok.append(view)
            else:
                plan.miss(pipe)
        return self._plan(ok) if ok else _NOWHERE

    def check_peer_limits(self, size: int) -> None:
        """Raise MessageTooLarge unless a live peer the message may go to accepts *size* bytes.

        Each peer states its max_msg_size when it attaches.  The peers that
        count are those the pattern would send to now (a REP's: the one it
        owes a reply); with none alive nothing is known yet, and the caller
        waits for a peer as it would for any message.
        """
        targets: list[Pipe] = [
            p  # type: ignore[misc]
            for p in self._pattern.targets(self._hub.pipes)
            if p.alive
        ]
        if not targets:
            return
        largest = max(p.peer_limit for p in targets)
        if size <= largest:
            return
        if len(targets) == 1:
            pipe = targets[0]
            raise MessageTooLarge(
                f"a message of {size} bytes exceeds the max_msg_size {largest} of its"
                f" receiver, the peer at {pipe.endpoint} (pid {pipe.peer_pid}); nothing was sent"
            )
        raise MessageTooLarge(
            f"a message of {size} bytes exceeds the max_msg_size of every connected peer"
            f" (the largest is {largest}); nothing was sent"
        )

    def nothing_to_send(self) -> NoReturn:
        """Nowhere to send now: the pattern's reason, a refusal's, or WouldBlock."""
        pipes = self._hub.pipes
        self._pattern.no_target(pipes)
        for p in pipes:  # (a loop, not any(): this runs before every wait)
            if p.alive:
                break
        else:
            self._hub.check_usable()
        raise trio.WouldBlock

    # -- batches ---------------------------------------------------------------------

    def encode_batch(self, messages: Sequence[bytes]) -> tuple[bytes, array[int]]:
        """A batch's payloads back to back and their lengths, checked."""
        self._check_open()
        self._pattern.check_send_many()
        messages = sequence_of(messages, "send_many")
        try:
            data = b"".join(messages)
        except TypeError:
            messages = [as_bytes(m) for m in messages]  # names the culprit's type
            data = b"".join(messages)
        lens = array("I", map(len, messages))
        if sum(lens) != len(data):  # a buffer whose items are not bytes
            return self.encode_batch([as_bytes(m) for m in messages])
        limit = self.max_msg_size
        if len(data) > limit and max(lens) > limit:
            raise MessageTooLarge(f"a message of {max(lens)} bytes exceeds max_msg_size {limit}")
        return data, lens

    def send_batch_nowait(self, batch: tuple[bytes, array[int]]) -> None:
        """Place an encoded batch with one pipe, all of it, or raise WouldBlock."""
        self._check_open()
        data, lens = batch
        if not lens:
            return
        pattern = self._pattern
        hub = self._hub
        # Each message of the batch must fit the peer that takes the batch.
        size = max(lens) if len(data) > hub.peer_limit else 0
        if size > hub.peer_limit:
            self.check_peer_limits(size)
        polled = False
        passes = 0
        while True:
            target = pattern.route()
            if target is None or (passes and passes > len(pattern.queues.send)):
                if not polled and hub.poll():
                    polled, passes = True, 0
                    continue
                self.nothing_to_send()
            if isinstance(target, Dropped | Fanout):  # pragma: no cover - no batch type has them
                raise TypeError(f"{pattern.kind.name} placed a batch as {target!r}")
            if size > target.peer_limit:  # type: ignore[attr-defined]
                pattern.passed_over(target)
                passes += 1
                continue
            if target.offer_batch(data, lens):  # type: ignore[attr-defined]
                pattern.sent(target)
                return
            pattern.refused(target)
