"""PUB: every message to every subscriber whose subscriptions it matches.

A PUB socket only sends.  Its subscribers tell it what they subscribe to
(``_topics``: prefixes of the first frame, sent upstream as control
messages), and it filters: a message goes only to the subscribers it
matches, into each one's own ring, in one write for all of them
(``Fanout``; on shm://, one C call).  Nobody subscribed: the message goes
nowhere, without error.  A subscriber without room misses the message and
the drop is counted (libzmq's rule), unless ``nodrop`` makes the send wait
for room in every one (the socket's outbox does either).

A subscription arrives with the subscriber's connection (its greeting), so
the PUB never writes to a subscriber without knowing what it asked for;
one made later takes effect when the PUB handles its events, which it
does before every send.  Upstream messages that are not subscriptions (an
XSUB may send them) are ignored, as libzmq's PUB ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._types import SocketType
from ._base import Fanout, Pattern, Placement
from ._queues import PipeView
from ._topics import Subscribers, subscription

__all__ = ["PubMethods", "PubPattern", "Subscriber"]


@dataclass(frozen=True)
class Subscriber:
    """One subscriber of a PUB or XPUB socket, as ``pub.subscribers()`` sees it now."""

    #: The endpoint it is connected through.
    endpoint: str
    #: Its process id (this process's own for ``inproc://``).
    pid: int
    #: The prefixes it subscribed to, sorted (``b""``: everything).
    topics: tuple[bytes, ...]
    #: Messages it missed since it connected (its ring was full, or the
    #: message was over the size it accepts); also in ``stats()``'s ``dropped``.
    dropped: int


class PubMethods:
    """PUB's and XPUB's own methods (``Pattern.socket_methods``)."""

    __slots__ = ()

    if TYPE_CHECKING:
        _pattern: PubPattern
        _closed: bool

    def subscribers(self) -> list[Subscriber]:
        """Every connected subscriber that holds a subscription, with its drops.

        Synchronous; a snapshot.  A subscriber that subscribed to nothing
        receives nothing, and is not listed.

        Raises:
            Nothing: a closed socket has no subscribers (an empty list).
        """
        if self._closed:
            return []
        subs = self._pattern.subscribers
        return [
            Subscriber(
                endpoint=pipe.endpoint,  # type: ignore[attr-defined]
                pid=pipe.peer_pid,  # type: ignore[attr-defined]
                topics=tuple(sorted(subs.prefixes(pipe))),
                dropped=pipe.fan_missed,  # type: ignore[attr-defined]
            )
            for pipe in subs.pipes()
            if pipe.alive
        ]


class PubPattern(Pattern):
    kind = SocketType.PUB
    can_send = True
    writes_data = True
    fans_out = True
    batch_send = True
    compatible = frozenset({SocketType.SUB, SocketType.XSUB})
    socket_methods = PubMethods

    def __init__(self) -> None:
        super().__init__()
        self.subscribers: Subscribers[PipeView] = Subscribers()

    def route(self) -> Placement:
        return None  # never asked: fanout() places every message

    def fanout(self, topic: bytes) -> Fanout:
        return self.subscribers.match(topic)

    def fanout_uniform(self) -> Fanout | None:
        return self.subscribers.uniform()

    def targets(self, pipes: Sequence[PipeView]) -> Sequence[PipeView]:
        # Each subscriber's limit is looked at as the message fans out: one
        # that accepts less misses it (counted) while the others get it.
        return ()

    def gone(self, pipe: PipeView) -> None:
        self.unsubscribed(self.subscribers.drop(pipe))

    def on_control(self, pipe: PipeView, frames: list[bytes]) -> None:
        if not pipe.alive:
            return  # late news from a subscriber that is gone: its topics went with it
        sub = subscription(frames)
        if sub is None:
            self.upstream_message(frames)
            return
        subscribe, prefix = sub
        if subscribe:
            if self.subscribers.add(pipe, prefix):
                self.subscribed(frames[0], first=True)
            else:
                self.subscribed(frames[0], first=False)
        elif self.subscribers.remove(pipe, prefix):
            self.unsubscribed([prefix])

    # -- what an XPUB passes on --------------------------------------------------------

    def subscribed(self, message: bytes, first: bool) -> None:
        """A subscription message came (*first*: nobody held its prefix before)."""

    def unsubscribed(self, prefixes: list[bytes]) -> None:
        """Nobody holds these prefixes any more."""

    def upstream_message(self, frames: list[bytes]) -> None:
        """A message from a subscriber that is not a subscription (PUB: ignored)."""
