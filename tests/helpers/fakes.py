"""Pipes without a transport, for driving the patterns with no I/O.

A :class:`FakePipe` holds the messages its peer "sent" in a list; ``take``
and ``take_batch`` hand them out as a transport's pipe would, and set
``readable`` false once it is empty (a transport would then report it
again when more arrives: ``arrive`` does that here).
"""

from __future__ import annotations

from shmsock._patterns import Pattern


class FakePipe:
    #: What the peer said when it connected (a test sets them as it needs).
    peer_type: object = None
    peer_identity = b""
    carries_ids = False

    def __init__(self, name: str, *messages: bytes) -> None:
        self.name = name
        self.messages = list(messages)
        self.alive = True
        self.readable = bool(messages)
        self.writable = True
        self.streaming = False
        self.in_send = False
        self.in_recv = False
        self.busy = False

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def take(self) -> bytes | None:
        if not self.messages:
            self.readable = False
            return None
        return self.messages.pop(0)

    def take_batch(self, max_count: int) -> list[bytes] | None:
        if not self.messages:
            self.readable = False
            return None
        batch, self.messages = self.messages[:max_count], self.messages[max_count:]
        return batch

    def drained(self) -> bool:
        return not self.messages

    def arrive(self, pattern: Pattern, *messages: bytes) -> None:
        """The peer sent *messages*: the transport reports the pipe readable."""
        self.messages.extend(messages)
        self.readable = True
        pattern.queues.want_recv(self)


def attach(pattern: Pattern, *pipes: FakePipe) -> None:
    """Attach *pipes* as the socket does: both queues, then the hook."""
    for pipe in pipes:
        pattern.queues.want_send(pipe)
        pattern.queues.want_recv(pipe)
        pattern.attached(pipe)


def check_invariant(pattern: Pattern, pipes: list[FakePipe]) -> None:
    """Rule 1 of _queues: queue membership and the flags agree, no duplicates."""
    send, recv = list(pattern.queues.send), list(pattern.queues.recv)
    assert len(set(map(id, send))) == len(send)
    assert len(set(map(id, recv))) == len(recv)
    for pipe in pipes:
        assert pipe.in_send == (pipe in send)
        assert pipe.in_recv == (pipe in recv)
