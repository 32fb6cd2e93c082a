"""Receiving without waiting: take a message now, or raise WouldBlock.

The general path of every receive (the socket's ``recv_nowait`` fast path
pops a plain message from the head pipe's inbox before it comes here):

1. the socket is open and the pattern allows a receive now;
2. the pattern takes the next message from its ready queues (a pipe
   hands over what its transport holds) and says whether it may be
   delivered (a REQ drops a late reply), and in what shape (a ROUTER puts
   the routing id in front);
3. a multipart message asked for with ``recv`` goes back where it was,
   and MultipartMessage says why;
4. "nothing now" becomes WouldBlock, after the pattern and the transports
   have had their say (a REQ whose REP died, a connect that was refused).

Pipes that finished while we read are retired here, between messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, cast

import trio

from ._errors import MultipartMessage
from ._hub import Hub
from ._patterns import Pattern
from ._transport import HeldMessage, Message, Pipe, Queued

__all__ = ["Inbox"]


class Inbox:
    """The non-waiting receive paths of one socket."""

    __slots__ = ("_check_open", "_hub", "_pattern")

    def __init__(self, pattern: Pattern, hub: Hub, check_open: Callable[[], None]) -> None:
        self._pattern = pattern
        self._hub = hub
        self._check_open = check_open

    def take(
        self,
        multipart: bool,
        poll: bool | None = True,
        forward: Callable[[list[bytes]], None] | None = None,
    ) -> Queued:
        """The next message that may be delivered now, or WouldBlock.

        *poll* False skips handling events the background task has not
        handled yet: only a caller about to wait on the descriptor that
        would bring them may skip it.  None: skip when the socket has one
        pipe (an async receive, which would wait on it directly).

        *forward* (``shmsock.proxy``'s) is handed the message's frames
        before it counts as received; if it raises, the message goes back
        where it was, first in its pipe, and the error propagates.
        """
        self._check_open()
        self._pattern.check_recv()
        hub = self._hub
        if poll is None:
            if hub.only_pipe() is None:
                return self._take(multipart, False, forward)
            bells = hub.bells
            if bells is not None and hub.direct is None and not bells.keep:
                # A WouldBlock leads to a wait on that pipe's descriptor:
                # what it reads before announcing may stay as the wait needs it.
                return bells.keeping(self._take, multipart, True, forward)
            return self._take(multipart, True, forward)
        return self._take(multipart, not poll, forward)

    def _take(
        self, multipart: bool, polled: bool, forward: Callable[[list[bytes]], None] | None
    ) -> Queued:
        """:meth:`take` once checked; *polled*: do not poll the transports."""
        pattern = self._pattern
        hub = self._hub
        while True:
            got = pattern.next_message()
            if got is None:
                if not polled and hub.poll():  # events that came meanwhile
                    polled = True
                    continue
                break
            pipe, item = got
            if type(item) is HeldMessage and (pattern.shapes_recv or forward is not None):
                # The routing id goes in front (ROUTER), or a proxy passes
                # the frames on: bytes throughout, so the frames are copied.
                item = item.copied()
            aux = 0 if type(item) is bytes else item.aux  # type: ignore[attr-defined]
            if not pattern.accept(pipe, aux):
                continue  # a late reply to an abandoned request
            taken = item
            if pattern.shapes_recv:  # (ROUTER: the routing id in front)
                given: list[bytes] = [item] if type(item) is bytes else item.frames  # type: ignore[attr-defined]
                frames = pattern.incoming(pipe, given, aux)
                if frames is None:
                    continue  # not a message of this type's (a REP's request without envelope)
                item = frames[0] if len(frames) == 1 else Message(frames, 0)
            if not multipart and type(item) is not bytes and len(item.frames) > 1:  # type: ignore[attr-defined]
                cast(Pipe, pipe).push_back([taken])  # type: ignore[list-item]
                raise MultipartMessage(
                    f"the next message has {len(item.frames)} frames: use recv_multipart"  # type: ignore[attr-defined]
                )
            if forward is not None:
                try:
                    forward([item] if type(item) is bytes else item.frames)  # type: ignore[attr-defined]
                except BaseException:
                    cast(Pipe, pipe).push_back([taken])  # type: ignore[list-item]
                    raise
            pattern.received(pipe, aux)
            if hub.finished_pipes:
                hub.reap()
            return item  # type: ignore[return-value]
        hub.reap()
        self.nothing_to_recv()

    def nothing_to_recv(self) -> NoReturn:
        pipes = self._hub.pipes
        self._pattern.no_message(pipes)
        for p in pipes:  # (a loop, not any(): this runs before every wait)
            if p.alive:
                break
        else:
            self._hub.check_usable()
        raise trio.WouldBlock

    def take_many(self, max_count: int) -> list[bytes]:
        """Up to *max_count* one-frame messages from one pipe, now, or WouldBlock."""
        self._check_open()
        pattern = self._pattern
        pattern.check_recv_many()
        hub = self._hub
        got = pattern.next_batch(max_count)
        if got is None and hub.poll():  # events that came meanwhile
            got = pattern.next_batch(max_count)
        if hub.finished_pipes:
            hub.reap()
        if got is None:
            self.nothing_to_recv()
        pipe, batch = got
        items: list[Queued]
        plain: bool
        items, plain = batch  # type: ignore[misc]
        if plain:
            return items  # type: ignore[return-value]
        for i, item in enumerate(items):
            if type(item) is not bytes:
                return _unwrap(cast(Pipe, pipe), items, i)
        return items  # type: ignore[return-value]


def _unwrap(pipe: Pipe, items: list[Queued], start: int) -> list[bytes]:
    """Turn one-frame Messages into bytes; stop before a multipart one."""
    out: list[bytes] = items[:start]  # type: ignore[assignment]
    for i in range(start, len(items)):
        item = items[i]
        if type(item) is HeldMessage and len(item.frames) == 1:
            item = item.copied()
        if type(item) is bytes:
            out.append(item)
        elif len(item.frames) == 1:  # type: ignore[union-attr]
            out.append(item.frames[0])  # type: ignore[union-attr]
        else:
            pipe.push_back(items[i:])
            if not out:
                raise MultipartMessage(
                    f"the next message has {len(item.frames)} frames: use recv_multipart"  # type: ignore[union-attr]
                )
            break
    return out
