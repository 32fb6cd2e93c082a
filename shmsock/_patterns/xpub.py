"""XPUB: a PUB that receives the subscriptions, as messages, to forward them.

Sends as a PUB does (``pub``).  Receives, as libzmq's XPUB does:

- ``b"\\x01" + prefix`` when a subscriber subscribes to a prefix nobody
  held (each prefix once, however many subscribe to it);
- ``b"\\x00" + prefix`` when the last subscriber that held it unsubscribes
  or goes;
- any other message a subscriber sent upstream (an XSUB may), as it came.

So an XSUB/XPUB forwarder passes exactly the subscriptions its
publishers need: ``xsub.send(await xpub.recv())`` for the subscriptions,
``xpub.send_multipart(await xsub.recv_multipart())`` for the data.  What
arrives waits in the socket until received, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import cast

from .._message import Message, Queued
from .._types import SocketType
from ._held import Held
from ._queues import PipeView
from .pub import PubPattern


class XPubPattern(PubPattern):
    kind = SocketType.XPUB
    can_recv = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: deque[Queued] = deque()
        self._held = Held(self._give_back, SocketType.SUB)

    def _give_back(self, items: Sequence[object]) -> None:
        self.pending.extendleft(cast("list[Queued]", list(reversed(items))))

    def subscribed(self, message: bytes, first: bool) -> None:
        if first:
            self.pending.append(message)

    def unsubscribed(self, prefixes: list[bytes]) -> None:
        self.pending.extend(b"\x00" + prefix for prefix in prefixes)

    def upstream_message(self, frames: list[bytes]) -> None:
        self.pending.append(frames[0] if len(frames) == 1 else Message(list(frames), 0))

    def next_message(self) -> tuple[PipeView, object] | None:
        if self.pending:
            return self._held, self.pending.popleft()
        return None
