"""A socket's life: ``async with`` or a system task, closing, and lingering.

A socket is its own async context manager: ``async with`` runs its
background task (the reactor's poller) in a nursery of the block and
closes the socket when the block ends.  Used without the block, the socket
runs that task as a Trio system task from its first ``bind`` or
``connect``; ``aclose()`` or ``close()`` end it, and one nobody closed is
closed (as by ``close()``) when ``trio.run`` ends, so it leaves no files.

Closing takes nothing back: every ring (every queue) this socket wrote is
read to its end by the peers attached now.  ``aclose`` first waits up to
``linger`` for them to take it.  What is lost is counted in ``dropped``.

Sockets do not survive ``fork()``: in a child, every socket it inherited
counts as closed, every use raises StateError, and nothing the parent
shares (files, rings, descriptors) is touched (see ``_disown``).
"""

from __future__ import annotations

import logging
import os
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from . import _stats
from ._errors import StateError
from ._options import Options
from ._trio import ki_protected, require_trio
from ._types import SocketType

if TYPE_CHECKING:
    from ._hub import Hub
    from ._waiting import Waiter

__all__ = ["Lifetime", "open_sockets"]

# Inside Socket, `type` is the socket type's property.
_ExceptionType = type[BaseException]


class Lifetime:
    """The life of :class:`shmsock.Socket`: start, ``async with``, close (a mixin)."""

    if not TYPE_CHECKING:  # (mypy would refuse the attributes Socket's slots hold)
        __slots__ = ()

    _kind: SocketType
    _pid: int
    _options: Options
    _hub: Hub
    _waiter: Waiter
    _closed: bool
    _entered: bool
    _started: bool
    _nursery: trio.Nursery | None
    _nursery_manager: Any
    _plain_limit: int
    _fan_limit: int
    _plain_recv: bool

    def _check_open(self) -> None:
        if self._closed:
            if self._pid != os.getpid():
                raise StateError(
                    f"this socket belongs to the parent process (pid {self._pid}) that"
                    " forked this one: Trio and shmsock sockets do not survive fork();"
                    " create new sockets in the child (or start the child with"
                    " multiprocessing's 'spawn' or 'forkserver' method)"
                )
            raise trio.ClosedResourceError("the socket is closed")

    def _disown(self) -> None:
        """This process is a fork() child and the socket is its parent's.

        Called by the at-fork hook below, in the child.  The socket counts
        as closed there, so closing it does nothing, and every use takes
        the general path to _check_open and raises StateError.  The hub and
        its transports let go of everything without touching what the
        parent uses.  No Trio call here: the child may have forked from a
        thread that runs no Trio loop.
        """
        self._closed = True
        self._plain_limit, self._plain_recv = -1, False
        self._fan_limit = -1
        self._hub.disown()

    @property
    def closed(self) -> bool:
        """Whether the socket has been closed."""
        return self._closed

    @ki_protected
    async def __aenter__(self) -> Any:
        """Run the socket's background task in a nursery of the block.

        Leaving the block closes the socket as :meth:`aclose` does, however
        it is left; an exception raised in the block comes out as it is,
        not wrapped in an ExceptionGroup.  A socket already started outside
        a block (by ``bind`` or ``connect``) keeps its task, and is closed
        on leaving all the same.

        Raises:
            trio.ClosedResourceError: the socket is closed.
            RuntimeError: the socket is in an ``async with`` block already.
            NotInTrio: outside ``trio.run``.

        On cancel:
            The block is not entered, and the socket stays as it was.
        """
        require_trio("`async with`")
        self._check_open()
        if self._entered:
            raise RuntimeError("this socket is in an `async with` block already")
        self._entered = True
        if not self._started:
            self._started = True
            manager = trio.open_nursery()
            nursery = await manager.__aenter__()
            self._nursery_manager, self._nursery = manager, nursery
            self._hub.start(nursery.start_soon)
            nursery.start_soon(self._hub.run)
        return self

    @ki_protected
    async def __aexit__(
        self,
        exc_type: _ExceptionType | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Close the socket as :meth:`aclose` does, and end its background task.

        Raises:
            Nothing of its own: an exception raised in the block comes out
            as it is.

        On cancel:
            The socket is closed all the same, without lingering.
        """
        # The body's own exception must come out as it is, not wrapped in an
        # ExceptionGroup by the nursery: the background tasks never raise,
        # so the nursery is exited as if the body had finished cleanly.
        manager, self._nursery_manager = self._nursery_manager, None
        try:
            await self.aclose()
        finally:
            if manager is not None:
                # The body is over, so only the socket's own tasks are left
                # in the nursery; cancelling them guarantees the exit never
                # waits.
                nursery = self._nursery
                if nursery is not None:
                    nursery.cancel_scope.cancel()
                await manager.__aexit__(None, None, None)
        return False

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "a shmsock socket is an async resource: use `async with shmsock.socket(...) as sock:`,"
            " or close it with `await sock.aclose()`"
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ raises
        pass

    def __await__(self) -> NoReturn:
        raise TypeError(
            "a socket is not awaited: use `async with shmsock.socket(...) as sock:`,"
            " or `sock = shmsock.socket(...)` and later `await sock.aclose()`"
        )

    def _start_system_task(self) -> None:
        """Start the background task of a socket used outside `async with`.

        It runs as a Trio system task, as do the short tasks the transports
        ask for later (dials, spare rings).  Only from a Trio task.
        """
        self._started = True
        spawn = trio.lowlevel.spawn_system_task
        self._hub.start(spawn)
        spawn(self._serve_until_closed, name=f"shmsock {self._kind.name} socket")

    @ki_protected
    async def _serve_until_closed(self) -> None:
        # System tasks are cancelled when trio.run's main task has returned
        # (or raised): a socket still open then is closed here, so that it
        # leaves no files behind.  Nothing else cancels a system task.
        try:
            await self._hub.run()
        finally:
            self.close()

    # -- closing ---------------------------------------------------------------------

    @ki_protected
    def close(self) -> None:
        """Close now, without waiting.

        Wakes every task blocked on the socket with ClosedResourceError and
        removes this socket's files.  Nothing sent is taken back: the peers
        attached now read what this socket sent them to the end.  What is
        lost is counted in ``dropped`` (see :meth:`aclose`).  Idempotent,
        and may be called outside Trio.

        Raises:
            Nothing: it never raises, even when called again.
        """
        if self._closed:
            return
        self._mark_closed()
        self._teardown()

    @ki_protected
    async def aclose(self) -> None:
        """Close, first waiting up to ``linger`` for readers to take what was sent.

        Blocked tasks are woken with ClosedResourceError at once.  The wait
        ends once every live peer has read all this socket sent it, and
        every endpoint this socket connected to has a binder that read its
        ring.  Its end decides nothing for a peer that is attached: that
        peer reads the rest after the close.  It decides for a connected
        endpoint whose binder is gone (dead, or closed): the messages still
        in its ring are lost when the socket closes, and counted in
        ``dropped``, as are messages taken from rings and never returned
        and those a peer that went left unread.  Idempotent.

        Raises:
            NotInTrio: outside ``trio.run``, before it does anything.

        On cancel:
            The socket is closed all the same (the wait ends there), and
            Cancelled propagates.
        """
        require_trio("aclose()")
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._mark_closed()
        try:
            await self._waiter.linger(self._options.linger)
        finally:
            self._teardown()

    def _mark_closed(self) -> None:
        self._closed = True
        self._plain_limit, self._plain_recv = -1, False  # the general paths raise
        self._fan_limit = -1
        self._hub.wake_all()

    def _teardown(self) -> None:
        hub = self._hub
        try:
            try:
                for transport in hub.transports.values():
                    transport.count_lost()
            finally:
                _stats.closing(self)  # type: ignore[arg-type]  # keep this socket's counts
        except Exception:  # statistics must never keep a socket from closing
            logging.getLogger("shmsock").exception("shmsock: could not keep the counts")
        # The background task ends by itself once the hub is closed.
        # Cancelling its nursery here would cancel the caller too: the
        # nursery that ``async with`` opened also runs the body of the block.
        hub.close()
        open_sockets.discard(self)


#: The sockets of this process whose transports are not closed yet,
#: lingering ones included: what a fork() child must let go of.
open_sockets: weakref.WeakSet[Lifetime] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Runs in the child of every os.fork() (multiprocessing's "fork" method
    # included), before it returns to Python code.  Costs nothing per
    # message: the sockets are poisoned here, once, and the checks that
    # send and receive make anyway (closed, _plain_limit) do the rest.
    for sock in list(open_sockets):
        sock._disown()
    open_sockets.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
