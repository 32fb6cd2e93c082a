"""Messages as the transport contract carries them, and memory lent or leased.

Part of the contract in ``shmsock._transport`` (which re-exports every
name here); kept apart so that module stays about pipes and transports.

Rules:

1. **Two shapes of message.**  A one-frame message with aux 0 travels as
   plain ``bytes``; anything else (several frames, or a non-zero aux word)
   as a :class:`Message`.  :data:`Queued` is either.
2. **Held frames are taken once.**  A transport that still holds a
   received frame (shm's bulk regions) queues a :class:`HeldMessage`; the
   socket takes each :class:`HeldFrame` once, as a copy or as a
   :class:`Lease`, and one dropped untaken is released.
3. **A lease pins its sender's memory until released.**  Release it
   explicitly, by ``with``, or by dropping the last reference.
4. **A loan is all or nothing.**  Nothing of a :class:`Loan` is visible to
   the peer before ``commit``; ``abandon`` gives the room back.
5. **This module imports nothing of the transports** (not even
   ``shmsock._transport``), so the contract can re-export it without a cycle.
   :class:`Message` and :data:`Queued` themselves live in ``shmsock._message``
   (below the patterns, which make messages too) and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# Message and Queued live below the patterns (an XPUB makes messages of its
# own, and patterns never import a transport): one home, re-exported here.
from .._message import Message, Queued

__all__ = [
    "HeldFrame",
    "HeldMessage",
    "Lease",
    "Lends",
    "Loan",
    "Message",
    "Queued",
]


# -- messages ------------------------------------------------------------------------


class Lease:
    """A received frame read in place: a read-only view of memory its sender wrote.

    Returned by ``recv(copy=False)`` and ``recv_lease()`` (and their
    multipart forms).  ``buffer`` is a read-only memoryview of the frame;
    ``bytes`` copies it.  Release it with :meth:`release`, or by leaving
    ``with lease:``; dropping the last reference releases it too.  Until
    it is released, the sender cannot reuse that memory: hold leases
    briefly, since a sender whose memory is all leased waits.

    A lease trusts its sender.  The frame's checksum (when the sender
    sends one) is checked once, when the lease is made; a sender that
    writes to that memory afterwards changes what the view shows.  After
    :meth:`release` the view is gone (a view taken from it may show later
    messages' bytes).  A frame that came without shared memory to lease
    (a small one, say) is a lease of a private copy, with no such caveat.
    """

    __slots__ = ("__weakref__", "_done", "_view")

    def __init__(self, view: memoryview, done: Callable[[], None] | None = None) -> None:
        self._view = view
        self._done = done

    @property
    def buffer(self) -> memoryview:
        """The frame, read-only.  Raises ValueError once released."""
        return self._view

    @property
    def bytes(self) -> bytes:
        """A copy of the frame."""
        return self._view.tobytes()

    def __len__(self) -> int:
        return self._view.nbytes

    def __buffer__(self, flags: int, /) -> memoryview:
        return self._view

    def release(self) -> None:
        """Give the memory back to the sender.  Idempotent."""
        done, self._done = self._done, None
        self._view.release()
        if done is not None:
            done()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        if self._done is not None:
            self.release()

    def __repr__(self) -> str:
        try:
            size = f"{len(self)} bytes"
        except ValueError:
            size = "released"
        return f"<shmsock.Lease {size}>"


class HeldFrame(Protocol):
    """A received frame its transport still holds (shm's frames in a bulk region).

    It is taken once, by :meth:`copy` or :meth:`lease`; one dropped
    untaken is released.
    """

    def __len__(self) -> int: ...

    def copy(self) -> bytes:
        """The frame as new bytes (one copy; the checksum checked on it); released.

        Raises CorruptMessage when the copy fails its checksum (the pipe is
        then closed).
        """

    def lease(self) -> Lease:
        """The frame in place; raises CorruptMessage as :meth:`copy`."""


class HeldMessage(Message):
    """A :class:`Message` some of whose frames are :class:`HeldFrame` objects.

    A transport queues one whenever a message has a frame it holds, even
    a one-frame message with aux 0: the socket tells it by its type and
    takes its frames with :meth:`copied` or :meth:`leased`.
    """

    __slots__ = ()

    def __init__(self, frames: list[bytes | HeldFrame], aux: int) -> None:
        super().__init__(frames, aux)  # type: ignore[arg-type]

    def copied(self) -> Queued:
        """The message with every frame as bytes: bytes itself for one frame and aux 0."""
        frames = [f if type(f) is bytes else f.copy() for f in self.frames]  # type: ignore[attr-defined]
        if len(frames) == 1 and not self.aux:
            return frames[0]
        return Message(frames, self.aux)

    def leased(self) -> list[Lease]:
        """Every frame as a :class:`Lease` (those that are bytes, of themselves)."""
        out: list[Lease] = []
        try:
            for f in self.frames:
                held: Any = f
                out.append(Lease(memoryview(f)) if type(f) is bytes else held.lease())
        except BaseException:
            for lease in out:
                lease.release()
            raise
        return out


# -- memory lent to a sender -----------------------------------------------------


class Loan(Protocol):
    """Room for one message in a pipe's memory, for the sender to fill in place.

    Made by a pipe's optional ``loan(size)`` (:class:`Lends`).  The pipe
    is ``streaming`` (no other message goes to it) until :meth:`commit` or
    :meth:`abandon`; nothing is visible to the peer before :meth:`commit`.
    """

    #: The writable view to fill; the socket releases it before commit.
    buffer: memoryview

    def commit(self) -> bool:
        """Send what was written, whole.  False: the pipe is gone, nothing sent.

        The room was reserved when the loan was made, so it never waits.
        After False the buffer is still readable: the socket copies it and
        sends the copy elsewhere, then calls :meth:`abandon`.
        """

    def abandon(self) -> None:
        """Send nothing, and give the room back.  Idempotent; also after commit.

        (The socket wakes its senders after either: the pipe takes other
        messages again.)
        """


class Lends(Protocol):
    """An optional capability of a pipe: messages filled in place (``Socket.loan``)."""

    def loan(self, size: int) -> Loan | None:
        """Room for a one-frame message of *size* bytes, or None (no room now).

        None marks the pipe not writable, and it reports
        ``ready(send=True)`` once there may be room, as for ``offer``.
        Raises what ``offer`` raises (SharedMemoryFull for the memory to
        lend).
        """
