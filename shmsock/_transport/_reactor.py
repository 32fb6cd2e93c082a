"""One epoll set per socket: every descriptor its transports watch.

However many transports and connections a socket has, it has one epoll
descriptor and one background task waiting on it (the socket owns the
task; this object never waits).  The epoll descriptor is made when the
first descriptor is registered, so a socket whose transports watch none
(``inproc://``) has none; the socket's task waits for :attr:`opened`.

A transport registers a descriptor with a handler, and the handler runs
when the socket calls :meth:`poll`: from its background task when the
epoll descriptor is readable, and from any call that is about to report
WouldBlock, so that an event that already happened counts even if the
background task has not run since.

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
first use, so that the background task wakes as for a descriptor.
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

    __slots__ = ("_epoll", "_handlers", "_kick", "_soon", "closed", "opened")

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None  # None until needed, and once closed
        self._handlers: dict[int, Callable[[], None]] = {}
        # soon(): handlers to run at the next poll, and the eventfd that
        # makes the epoll set readable meanwhile (-1 until first needed).
        self._soon: list[Callable[[], None]] = []
        self._kick = -1
        self.closed = False
        #: Set when the epoll descriptor is made (or the reactor closed first).
        self.opened = trio.Event()

    def fileno(self) -> int:
        """The epoll descriptor: readable when some handler has work.

        Only once :attr:`opened` is set and while the reactor is open.
        """
        assert self._epoll is not None
        return self._epoll.fileno()

    def _open(self) -> select.epoll:
        epoll = self._epoll
        if epoll is None:
            if self.closed:
                raise trio.ClosedResourceError("the socket is closed")
            epoll = self._epoll = select.epoll()
            self.opened.set()
        return epoll

    def register(self, fd: int, handler: Callable[[], None]) -> None:
        """Call *handler* whenever *fd* is readable or hung up."""
        epoll = self._open()
        self._handlers[fd] = handler
        epoll.register(fd, _IN)

    def unregister(self, fd: int) -> None:
        """Forget *fd* (a no-op if it is not registered)."""
        if self._handlers.pop(fd, None) is not None and self._epoll is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def registered(self, fd: int) -> bool:
        return fd in self._handlers

    def mute(self, fd: int) -> None:
        """Stop reporting *fd* readable (a hang-up is still reported)."""
        if self._epoll is not None:
            self._epoll.modify(fd, 0)

    def unmute(self, fd: int) -> None:
        """Undo :meth:`mute`, unless *fd* was unregistered or the reactor closed."""
        if self._epoll is not None and fd in self._handlers:
            self._epoll.modify(fd, _IN)

    def soon(self, handler: Callable[[], None]) -> None:
        """Run *handler* at the next :meth:`poll`, and make the epoll set readable till then.

        For a transport that learned, inside a call the socket made to it,
        something it must report and that no descriptor will signal again.
        Several requests before a poll run in order, each once.  Does
        nothing once the reactor is closed.
        """
        if self.closed:
            return
        if not self._soon:
            if self._kick < 0:
                epoll = self._open()
                self._kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                epoll.register(self._kick, _IN)
            os.eventfd_write(self._kick, 1)
        self._soon.append(handler)

    def poll(self) -> bool:
        """Run the handlers of the descriptors that are ready now; never waits.

        Handlers asked for with :meth:`soon` run first.  Returns whether
        there was anything to handle.
        """
        epoll = self._epoll
        if epoll is None:
            return False
        soon = self._soon
        if soon:
            self._soon = []
            try:
                os.eventfd_read(self._kick)
            except BlockingIOError:
                pass
            for handler in soon:
                _run(handler)
        events = epoll.poll(0)
        for fd, _events in events:
            found = self._handlers.get(fd)
            if found is not None:
                _run(found)
        return bool(events) or bool(soon)

    def disown(self) -> None:
        """This process is a fork() child of the socket's: let go, touch nothing.

        The epoll set and every descriptor in it are shared with the parent
        (an epoll_ctl here would edit the parent's set), so each becomes a
        descriptor of /dev/null (see :func:`blank_descriptors`).
        """
        if self.closed:
            return
        self.closed = True
        fds = set(self._handlers)
        if self._epoll is not None:
            fds.add(self._epoll.fileno())
            self._epoll = None
        fds.add(self._kick)
        self._kick = -1
        self._handlers.clear()
        self._soon.clear()
        blank_descriptors(fds)

    def close(self) -> None:
        """Unregister everything and close the epoll descriptor.

        A task waiting on it is woken with ClosedResourceError; one waiting
        for :attr:`opened` is woken too.
        """
        if self.closed:
            return
        self.closed = True
        self._handlers.clear()
        self._soon.clear()
        epoll, self._epoll = self._epoll, None
        if epoll is None:
            self.opened.set()
            return
        try:
            trio.lowlevel.notify_closing(epoll.fileno())
        except RuntimeError:
            pass  # outside of Trio: nobody can be waiting on it
        epoll.close()
        if self._kick >= 0:
            os.close(self._kick)
            self._kick = -1


def _run(handler: Callable[[], None]) -> None:
    try:
        handler()
    except Exception:  # a bug must not take the whole socket down
        log.exception("shmsock: error in the event handler %r", handler)


def blank_descriptors(fds: set[int]) -> None:
    """Make each of *fds* a descriptor of /dev/null, in a fork() child.

    That drops the child's hold on what the parent shares (open files,
    locks, sockets), as closing would, without freeing the numbers:
    whatever closes them later, or an epoll_ctl on them by the child's copy
    of the parent's Trio loop, meets only /dev/null, which epoll refuses.
    Never raises.
    """
    fds.discard(-1)
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:  # out of descriptors: closing is the next safest
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        return
    try:
        for fd in fds:
            try:
                os.dup2(null, fd, inheritable=False)
            except OSError:
                pass
    finally:
        os.close(null)
