"""One epoll set per socket: every descriptor its transports watch.

However many transports and connections a socket has, it has one epoll
descriptor and one background task waiting on it (the socket owns the
task; this object never waits).  A transport registers a descriptor with
a handler, and the handler runs when the socket calls :meth:`poll`: from
its background task when the epoll descriptor is readable, and from any
call that is about to report WouldBlock, so that an event that already
happened counts even if the background task has not run since.

Handlers run in the socket's thread and must not raise: an exception is
logged and the others still run (a bug must not take the socket down).
Registration is level-triggered (``EPOLLIN | EPOLLRDHUP``).  A descriptor
that is *muted* stays registered but reports nothing except a hang-up,
which epoll always reports (see ``shm/_doorbell.py``, which mutes the
doorbell a task waits on itself).

A transport may also ask for a handler to run at the next poll with
:meth:`Reactor.soon`, for news it learned inside a call the socket made to
it, where it may not report (the transport contract's rule 1), and that no
descriptor will announce again.  libzmq is the case: any call into a
libzmq socket may consume the signal of its descriptor (``zmq/``'s rules).
The epoll set then turns readable through an eventfd of its own, made on
first use, so a background task waiting on it wakes as for a descriptor.
"""

from __future__ import annotations

import logging
import os
import select
from collections.abc import Callable
from typing import Final

import trio

log = logging.getLogger("shmsock")

_IN: Final = select.EPOLLIN | select.EPOLLRDHUP


class Reactor:
    """The epoll set of one socket and the handlers of its descriptors."""

    __slots__ = ("_epoll", "_handlers", "_kick", "_soon", "closed")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._handlers: dict[int, Callable[[], None]] = {}
        # soon(): handlers to run at the next poll, and the eventfd that
        # makes the epoll set readable meanwhile (-1 until first needed).
        self._soon: list[Callable[[], None]] = []
        self._kick = -1
        self.closed = False

    def fileno(self) -> int:
        """The epoll descriptor: readable when some handler has work."""
        return self._epoll.fileno()

    def register(self, fd: int, handler: Callable[[], None]) -> None:
        """Call *handler* whenever *fd* is readable or hung up."""
        self._handlers[fd] = handler
        self._epoll.register(fd, _IN)

    def unregister(self, fd: int) -> None:
        """Forget *fd* (a no-op if it is not registered)."""
        if self._handlers.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def registered(self, fd: int) -> bool:
        return fd in self._handlers

    def mute(self, fd: int) -> None:
        """Stop reporting *fd* readable (a hang-up is still reported)."""
        self._epoll.modify(fd, 0)

    def unmute(self, fd: int) -> None:
        """Undo :meth:`mute`, unless *fd* was unregistered or the reactor closed."""
        if not self.closed and fd in self._handlers:
            self._epoll.modify(fd, _IN)

    def soon(self, handler: Callable[[], None]) -> None:
        """Run *handler* at the next :meth:`poll`, and make the epoll set readable till then.

        For a transport that learned, inside a call the socket made to it,
        something it must report and that no descriptor will signal again.
        Several requests before a poll run in order, each once.
        """
        if self.closed:
            return
        if not self._soon:
            if self._kick < 0:
                self._kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                self._epoll.register(self._kick, _IN)
            os.eventfd_write(self._kick, 1)
        self._soon.append(handler)

    def poll(self) -> bool:
        """Run the handlers of the descriptors that are ready now; never waits.

        Handlers asked for with :meth:`soon` run first.  Returns whether
        there was anything to handle.
        """
        if self.closed:
            return False
        soon = self._soon
        if soon:
            self._soon = []
            try:
                os.eventfd_read(self._kick)
            except BlockingIOError:
                pass
            for handler in soon:
                self._run(handler)
        events = self._epoll.poll(0)
        for fd, _events in events:
            found = self._handlers.get(fd)
            if found is not None:
                self._run(found)
        return bool(events) or bool(soon)

    @staticmethod
    def _run(handler: Callable[[], None]) -> None:
        try:
            handler()
        except Exception:  # a bug must not take the whole socket down
            log.exception("shmsock: error in the event handler %r", handler)

    def close(self) -> None:
        """Unregister everything and close the epoll descriptor.

        A task waiting on it is woken with ClosedResourceError.
        """
        if self.closed:
            return
        self.closed = True
        self._handlers.clear()
        self._soon.clear()
        try:
            trio.lowlevel.notify_closing(self._epoll.fileno())
        except RuntimeError:
            pass  # outside of Trio: nobody can be waiting on it
        self._epoll.close()
        if self._kick >= 0:
            os.close(self._kick)
            self._kick = -1
