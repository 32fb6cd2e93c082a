"""A publisher's fan-out over libzmq links: each link's pipe takes the message by itself.

``Transport.fan_out`` (``_transport.py``) makes a :class:`ZmqFanWriter`
for a PUB's or XPUB's live pipes, one per link.  libzmq's own PUB (or
XPUB) socket in each link filters for that link's subscribers and fans
out among them; what is left here is handing each link's pipe the message
(``ZmqPipe.fan_put``, ``ZmqPipe.offer``), and counting what a full link
misses.  With one live link, ``write_all`` is that pipe's ``offer``: a
full link refuses the message, and a ``nodrop`` send waits for its room.
libzmq cannot take back a message one link took, so over several links a
full one misses the message (``nodrop`` too), rather than the others
getting it twice when the send is tried again (see docs/pubsub.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._pipe import ZmqPipe

if TYPE_CHECKING:
    from array import array

__all__ = ["ZmqFanWriter"]


class ZmqFanWriter:
    """A PUB's fan-out over libzmq links (``FanWriter``): libzmq's PUB filters for its peers.

    ``write_all`` waits for room on one link only: libzmq cannot take a
    message back, so over several ``tcp://``/``ipc://`` endpoints a full
    link misses the message under ``nodrop`` too (see docs/pubsub.md).
    """

    __slots__ = ("pipes",)

    def __init__(self, pipes: Sequence[ZmqPipe]) -> None:
        self.pipes = tuple(pipes)

    def write(self, frames: list[bytes], aux: int) -> None:
        for pipe in self.pipes:
            pipe.fan_put(frames, aux)

    def write_all(self, frames: list[bytes], aux: int) -> bool:
        live = [pipe for pipe in self.pipes if pipe.alive]
        if len(live) == 1:
            return live[0].offer(frames, aux)
        # libzmq cannot take back what one link took: over several links a
        # full one misses the message (counted), rather than the others
        # getting it twice when the send is tried again.
        self.write(frames, aux)
        return True

    def room(self, frames: list[bytes]) -> bool:
        return all(pipe.writable or not pipe.alive for pipe in self.pipes)

    def miss(self, pipe: object) -> None:
        if isinstance(pipe, ZmqPipe):
            pipe.fan_missed += 1
            pipe.dropped += 1

    def write_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        # libzmq's PUB takes or drops each message by itself.
        for pipe in self.pipes:
            for m in messages:
                pipe.fan_put([m], 0)

    def write_many_all(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        live = [pipe for pipe in self.pipes if pipe.alive]
        if len(live) == 1:
            return live[0].offer_batch(data, lens)  # all of it: the rest waits in the link
        self.write_many(messages, data, lens)  # as write_all: a full link misses
        return True

    def check_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        pass  # libzmq takes each message by itself

    def room_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        return self.room([])
