"""SUB: receive what publishers send, of the topics subscribed to.

A SUB socket only receives, fair-queueing over its publishers like a
PULL.  ``subscribe(prefix)`` and ``unsubscribe(prefix)`` say which
messages it wants: those whose first frame starts with a subscribed
prefix; ``b""`` is every message, and with no subscription it gets
nothing.  Subscriptions are counted, as in libzmq: subscribing twice
needs two unsubscribes.

The publisher filters (``pub``): a subscription travels to every
publisher as a control message, and is part of the greeting of every
connection made later, so a publisher learns it before it can write to
this socket.  When a SUB unsubscribes, messages its publishers wrote
before they heard of it may still arrive: from then on it checks every
message against its subscriptions as it receives it, so none of a topic
left reaches ``recv`` after ``unsubscribe`` returns.  (Until its first
unsubscribe, or while it subscribes to everything, it has nothing to
check: the receive fast path stays on.)

With the ``conflate`` option, it keeps only the latest message of each
subscription, keyed by the longest subscription the message matches,
whole whatever its frames; ``recv`` returns the latest of each key, the
least recently updated first.  It takes whatever its publishers wrote
each time it handles events (``polled``) and each time it receives.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from .._args import as_bytes
from .._message import Queued, check_control
from .._options import Options
from .._types import SocketType
from ._base import Pattern
from ._held import Held
from ._queues import PipeView, drain, fair_queue
from ._topics import Topics

if TYPE_CHECKING:
    from ._base import Upstream

__all__ = ["SubMethods", "SubPattern", "topic_bytes"]

#: The most messages a conflating SUB takes from its rings at one time.
DRAIN_MOST = 4096


def topic_bytes(topic: object) -> bytes:
    """A topic as bytes: bytes-like as is, str encoded as UTF-8 (as pyzmq does)."""
    if isinstance(topic, str):
        return topic.encode()
    try:
        return as_bytes(topic)
    except TypeError:
        raise TypeError(
            f"a topic must be bytes (or str, sent as UTF-8), not {type(topic).__name__}"
        ) from None


def first_frame(item: object) -> bytes:
    return item if type(item) is bytes else item.frames[0]  # type: ignore[attr-defined]


class SubMethods:
    """SUB's own methods, mixed into its sockets (``Pattern.socket_methods``)."""

    __slots__ = ()

    if TYPE_CHECKING:
        _pattern: SubPattern
        _hub: Upstream

        def _check_open(self) -> None: ...

        def _derive(self) -> None: ...

    def subscribe(self, topic: bytes | str) -> None:
        """Receive the messages whose first frame starts with *topic*; ``b""``: all.

        A str is sent as UTF-8, as pyzmq does.  Synchronous.  It takes
        effect at each publisher connected now when that publisher next
        handles its events (at the latest before its next send), and
        before anything else at each publisher this socket connects to
        later (see docs/pubsub.md, "When a subscription takes effect").
        Subscribing again to a topic counts: as many unsubscribes undo it.

        Raises:
            TypeError: *topic* is neither bytes-like nor str.
            MessageTooLarge: longer than 1023 bytes (a subscription
                travels as a control message of at most 1 KiB).
            trio.ClosedResourceError: the socket is closed.
        """
        self._check_open()
        prefix = topic_bytes(topic)
        frames = [b"\x01" + prefix]
        pattern = self._pattern
        check_control(frames)
        if pattern.subscribe(prefix):
            self._hub.send_control(frames)
        self._derive()

    def unsubscribe(self, topic: bytes | str) -> None:
        """Undo one :meth:`subscribe` of *topic* (nothing if it has none).

        Once none is left, no message that matches only *topic* is
        received any more, even one already on its way.

        Raises:
            TypeError: *topic* is neither bytes-like nor str.
            trio.ClosedResourceError: the socket is closed.
        """
        self._check_open()
        prefix = topic_bytes(topic)
        if self._pattern.unsubscribe(prefix):
            self._hub.send_control([b"\x00" + prefix])
        self._derive()

    @property
    def subscriptions(self) -> list[bytes]:
        """The topics subscribed to now, each once."""
        return list(self._pattern.topics)

    def setsockopt(self, option: Any, value: Any) -> None:
        """As :meth:`shmsock.Socket.setsockopt`, and ``"subscribe"``/``"unsubscribe"`` as pyzmq.

        ``sub.setsockopt(shmsock.SUBSCRIBE, b"topic")`` is ``sub.subscribe(b"topic")``.
        """
        name = option.lower() if isinstance(option, str) else None
        if name == "subscribe":
            self.subscribe(value)
        elif name == "unsubscribe":
            self.unsubscribe(value)
        else:
            super().setsockopt(option, value)  # type: ignore[misc]


class SubPattern(Pattern):
    kind = SocketType.SUB
    can_recv = True
    batch_recv = True
    plain_recv = True
    reads_data = True
    greets = True
    compatible = frozenset({SocketType.PUB, SocketType.XPUB})
    socket_methods = SubMethods

    def __init__(self) -> None:
        super().__init__()
        self.topics = Topics()
        #: Whether received messages are checked against the subscriptions.
        self.filtering = False
        self.conflate = False
        #: A conflating SUB's latest message of each key, least recent first.
        self.latest: OrderedDict[bytes, Queued] = OrderedDict()
        self._held = Held(self._give_back, SocketType.PUB)

    # -- subscriptions ---------------------------------------------------------------

    def subscribe(self, prefix: bytes) -> bool:
        """Count a subscription; True if it is new (the publishers must hear of it)."""
        return self.topics.subscribe(prefix)

    def unsubscribe(self, prefix: bytes) -> bool:
        """Count an unsubscription; True if that was the last (the publishers must hear)."""
        gone = self.topics.unsubscribe(prefix)
        if gone:
            self.filtering = True  # what was on its way for it must not be received
            if self.latest:
                self._forget_unmatched()
        return gone

    def greeting(self) -> list[list[bytes]]:
        return [[b"\x01" + prefix] for prefix in self.topics]

    def set_options(self, options: Options) -> None:
        self.conflate = options.conflate

    def fast_recv(self) -> bool:
        return not (self.conflate or self.latest or (self.filtering and not self.topics.everything))

    def _checks(self) -> bool:
        return self.filtering and not self.topics.everything

    # -- receiving ---------------------------------------------------------------------

    def next_message(self) -> tuple[PipeView, object] | None:
        if self.conflate or self.latest:
            self._take_all()
            if not self.latest:
                return None
            return self._held, self.latest.popitem(last=False)[1]
        recv = self.queues.recv
        if not self._checks():
            return fair_queue(recv, True)
        matches = self.topics.matches
        while True:
            got = fair_queue(recv, True)
            if got is None or matches(first_frame(got[1])):
                return got

    def next_batch(self, max_count: int) -> tuple[PipeView, object] | None:
        if self.conflate or self.latest:
            self._take_all()
            latest = self.latest
            if not latest:
                return None
            items = [latest.popitem(last=False)[1] for _ in range(min(max_count, len(latest)))]
            return self._held, (items, False)
        if not self._checks():
            return super().next_batch(max_count)
        matches = self.topics.matches
        while True:
            got = super().next_batch(max_count)
            if got is None:
                return None
            pipe, batch = got
            taken, plain = cast("tuple[list[object], bool]", batch)
            kept = [m for m in taken if matches(first_frame(m))]
            if kept:
                return pipe, (kept, plain)

    def polled(self) -> None:
        if self.conflate:
            self._take_all()

    def _take_all(self) -> None:
        """Take what the pipes hold into :attr:`latest`, keeping the newest of each key."""
        latest = self.latest
        longest = self.topics.longest
        for _pipe, item in drain(self.queues.recv, DRAIN_MOST):
            key = longest(first_frame(item))
            if key is None:
                continue  # a topic unsubscribed from, still on its way
            latest.pop(key, None)
            latest[key] = item  # type: ignore[assignment]

    def _forget_unmatched(self) -> None:
        # Each held message under the subscription it matches now, if any.
        topics, longest = self.topics, self.topics.longest
        kept: OrderedDict[bytes, Queued] = OrderedDict()
        for key, item in self.latest.items():
            if key not in topics:
                found = longest(first_frame(item))
                if found is None:
                    continue
                key = found
            kept.pop(key, None)
            kept[key] = item
        self.latest = kept

    def _give_back(self, items: Sequence[object]) -> None:
        # Back to the front, each under its key, unless a newer one is there.
        longest = self.topics.longest
        for item in reversed(items):
            key = longest(first_frame(item))
            if key is not None and key not in self.latest:
                self.latest[key] = item  # type: ignore[assignment]
                self.latest.move_to_end(key, last=False)
