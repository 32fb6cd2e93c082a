"""Optional capabilities of a transport: fan-out writers and direct wake-ups.

Part of the contract in ``shmsock._transport`` (which re-exports every
name here); kept apart so that module stays about pipes and transports.
A transport offers :class:`FanWriter` objects through ``Transport.fan_out``
(a PUB's messages, written into several pipes at once) and, optionally,
:class:`WakeUps` (pipes a task can wait on directly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import socket
    from array import array

    from . import Pipe

__all__ = ["FanWriter", "WakeUps"]

_T = TypeVar("_T")


class FanWriter(Protocol):
    """Writes one message into several pipes of one transport at once (a PUB's fan-out).

    Made by ``Transport.fan_out`` for a fixed list of live pipes; the
    socket keeps it while the list stays the same, and never uses it once
    one of them is gone.
    """

    def write(self, frames: list[bytes], aux: int) -> None:
        """Write the message into each pipe that has room now.

        Each pipe without room misses it, and the transport counts it in
        that pipe's ``dropped``.  A pipe found broken is ended (``gone``).
        """

    def write_all(self, frames: list[bytes], aux: int) -> bool:
        """Write the message into every pipe, or into none and return False.

        False: some pipe has no room now; each such pipe is marked as
        :meth:`room` marks it.  (One call, where ``room`` then ``write``
        would be two.)
        """

    def room(self, frames: list[bytes]) -> bool:
        """Whether every pipe has room for the message now.

        Each that has not is marked not ``writable`` and reports
        ``ready(send=True)`` once it may have room (rule 2), as after a
        refused ``offer``.
        """

    def miss(self, pipe: Pipe) -> None:
        """Count a message *pipe* (one of the list) misses unoffered (over its peer_limit)."""

    def write_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        """Write a batch of one-frame messages into each pipe that has room for all of it.

        *data* is *messages* back to back, *lens* their lengths (each
        transport uses the form it writes fastest).  Each pipe without room
        for the whole batch misses all of it, each message counted in its
        ``dropped``.
        """

    def write_many_all(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        """Write the batch into every pipe, or into none and return False (as ``write_all``)."""

    def check_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> None:
        """Raise MessageTooLarge if some pipe could never take the batch at once.

        Looks at nothing else and marks nothing: so that a batch written
        with several calls is refused before any of them writes.
        """

    def room_many(self, messages: list[bytes], data: bytes, lens: array[int]) -> bool:
        """Whether every pipe has room for the whole batch now (those without: as ``room``)."""


class WakeUps(Protocol):
    """A transport's pipes that a task can wait on directly: an optional capability.

    The shm transport has one (``shm/_doorbell.py``, whose rules say what
    each step means); inproc does not.  The socket's waiter uses it, when
    the socket's only pipe is one of this transport's, to wait on that
    pipe's descriptor itself, and to spin on the rings before it parks.
    Issue 23 reworks both behind these methods.
    """

    #: A pipe whose descriptor a woken task left muted and unread, if any.
    held: object | None
    #: Inside :meth:`keeping`.
    keep: bool

    def doorbell(self, pipe: object) -> socket.socket | None:
        """The descriptor a task may wait on for *pipe*, or None if not ours."""

    def mute(self, pipe: Any) -> None:
        """Before a task waits on *pipe*'s descriptor: the reactor stops watching it."""

    def release(self) -> None:
        """No direct wait follows: a descriptor :meth:`keeping` kept muted is watched again."""

    def keeping(self, take: Callable[..., _T], *args: Any) -> _T:
        """``take(*args)`` by a receiver that waits on its one pipe's descriptor on WouldBlock.

        A held descriptor read meanwhile may stay muted for that wait; any
        other outcome unmutes it before returning.
        """

    def unmute(self, pipe: Any) -> None:
        """The wait was cancelled: the reactor watches the descriptor again."""

    def rang(self, pipe: Any) -> None:
        """The descriptor woke a receiver: assume data, leave it held and unread."""

    def reopen(self, pipe: Any) -> None:
        """The descriptor woke another waiter: read it, and unmute it."""

    def settle(self) -> None:
        """Read the held descriptor, if any, and unmute it."""

    def spin(self, spin_us: float) -> bool:
        """Watch the idle pipes for up to *spin_us*; True if one has data.

        Without holding the CPU a peer needs, and ending early when no
        answer can come; a spin of 0 looks once.  Either way the pipes
        found empty are announced (their writers ring) when it returns.
        """

    def look(self, take: Callable[..., _T], *args: Any) -> _T:
        """``take(*args)`` without announcing waits on what it finds empty."""
