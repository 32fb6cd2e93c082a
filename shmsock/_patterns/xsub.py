"""XSUB: a SUB whose subscriptions are messages it sends, to forward them.

Receives as a SUB does, without filtering (its publishers filter) and
without conflating.  Sends upstream, to every publisher, as libzmq's XSUB:

- ``b"\\x01" + prefix`` subscribes (every one is passed on, so that an
  XPUB upstream can count them);
- ``b"\\x00" + prefix`` unsubscribes (passed on once the last
  subscription to that prefix is undone);
- any other message goes to the publishers as it is (an XPUB receives it;
  a PUB ignores it).

Its subscriptions are also the greeting of every connection it makes
later, as a SUB's.  A send never waits: what a publisher has no room for
yet is kept in order and sent as room comes.  Messages sent upstream are
control messages, so they are at most 1 KiB (``MAX_CONTROL``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._args import as_bytes, frames_of
from .._message import check_control
from .._trio import ki_protected, retry
from .._types import SocketType
from ._base import Pattern
from ._topics import Topics, subscription

if TYPE_CHECKING:
    from ._base import Upstream

__all__ = ["XSubMethods", "XSubPattern"]


class XSubMethods:
    """XSUB's sends: upstream, as control messages (``Pattern.socket_methods``)."""

    __slots__ = ()

    if TYPE_CHECKING:
        _pattern: XSubPattern
        _hub: Upstream

        def _check_open(self) -> None: ...

    def _upstream(self, frames: list[bytes]) -> None:
        self._check_open()
        check_control(frames)
        if self._pattern.upstream(frames):
            self._hub.send_control(frames)

    @ki_protected
    def send_nowait(self, data: bytes) -> None:
        """Send a (un)subscription, or another message, to every publisher; never waits.

        Raises:
            MessageTooLarge: over 1 KiB.
            TypeError: *data* is not bytes-like.
            trio.ClosedResourceError: the socket is closed.
        """
        self._upstream([as_bytes(data)])

    @ki_protected
    async def send(self, data: bytes) -> None:
        """As :meth:`send_nowait`, with a checkpoint (cancelled: nothing is sent)."""
        await retry(self._upstream, _never, [as_bytes(data)])

    @ki_protected
    def send_multipart_nowait(self, frames: Iterable[bytes]) -> None:
        """Send a message of several frames upstream (see :meth:`send_nowait`)."""
        self._upstream(frames_of(frames))

    @ki_protected
    async def send_multipart(self, frames: Iterable[bytes]) -> None:
        """As :meth:`send_multipart_nowait`, with a checkpoint."""
        await retry(self._upstream, _never, frames_of(frames))


async def _never() -> bool:  # pragma: no cover - an upstream send never waits
    raise AssertionError("an XSUB's send never waits")


class XSubPattern(Pattern):
    kind = SocketType.XSUB
    can_send = True
    can_recv = True
    batch_recv = True
    plain_recv = True
    reads_data = True
    sends_control = True
    greets = True
    compatible = frozenset({SocketType.PUB, SocketType.XPUB})
    socket_methods = XSubMethods

    def __init__(self) -> None:
        super().__init__()
        self.topics = Topics()

    def upstream(self, frames: list[bytes]) -> bool:
        sub = subscription(frames)
        if sub is None:
            return True
        subscribe, prefix = sub
        if subscribe:
            self.topics.subscribe(prefix)
            return True
        return self.topics.unsubscribe(prefix)

    def greeting(self) -> list[list[bytes]]:
        return [[b"\x01" + prefix] for prefix in self.topics]
