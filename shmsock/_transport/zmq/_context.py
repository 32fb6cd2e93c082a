"""The process's libzmq context, its end at exit, and the ZAP handler for ``curve_clients``.

shmsock keeps one ``zmq.Context`` of its own per process (one I/O thread),
not ``zmq.Context.instance()``: a program's own pyzmq code may terminate its
contexts whenever it likes without taking shmsock's sockets along.

At exit the context is destroyed: sockets still open are closed with their
LINGER (the socket's ``linger``), and the process waits, for at most that
long per socket, while libzmq sends what closed sockets still hold.  That
holds in a multiprocessing child too, which ends with ``os._exit`` and so
runs no atexit handler: multiprocessing's own exit function runs its
finalizers first, and one of them is this.  A fork() child forgets the
parent's context without touching it (pyzmq itself never closes a parent's
socket in a child).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import zmq

__all__ = ["allow_clients", "context", "forget_clients"]

_lock = threading.Lock()
_ctx: zmq.Context[Any] | None = None
_auth: Any = None  # zmq.auth.thread.ThreadAuthenticator, made on first use
_domains: dict[str, frozenset[bytes]] = {}
_registered = False
_orphans: list[object] = []


def context() -> zmq.Context[Any]:
    """This process's context for shmsock's libzmq sockets, made on first use."""
    global _ctx, _registered
    ctx = _ctx
    if ctx is not None:
        return ctx
    with _lock:
        if _ctx is None:
            _ctx = zmq.Context(io_threads=1)
            if not _registered:
                _registered = True
                atexit.register(_at_exit)
            _finalize_in_multiprocessing_child()
        return _ctx


def _finalize_in_multiprocessing_child() -> None:
    """Run :func:`_at_exit` when multiprocessing ends this process, too.

    A multiprocessing child (fork, forkserver or spawn) returns from its
    target and ends with ``os._exit``, after multiprocessing's exit function
    ran its finalizers; atexit handlers never run there.  A finalizer only
    runs in the process that registered it, so each process that makes a
    context registers one (in the main process it runs at exit as well,
    before or after the atexit handler: the second call finds nothing).
    """
    from multiprocessing import util

    util.Finalize(None, _at_exit, exitpriority=0)


class _Keys:
    """pyzmq's credentials provider: may this client's key into *domain*?"""

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = _domains.get(domain)
        # Domains shmsock did not make (a server without curve_clients asks
        # for none) let every client that completed the handshake in.
        return allowed is None or key in allowed


def allow_clients(domain: str, keys: frozenset[bytes]) -> None:
    """Let only clients with these CURVE public keys (Z85) into ZAP *domain*.

    Starts the ZAP handler (pyzmq's ThreadAuthenticator, a thread) on first
    use.  Once it runs, libzmq asks it about every CURVE server of the
    context; those without a list are let in (``_Keys``).
    """
    global _auth
    ctx = context()
    with _lock:
        _domains[domain] = keys
        if _auth is None:
            from zmq.auth.thread import ThreadAuthenticator

            auth = ThreadAuthenticator(ctx)
            auth.start()
            auth.configure_curve_callback("*", _Keys())
            _auth = auth
        _auth.configure_curve_callback(domain, _Keys())


def forget_clients(domain: str) -> None:
    """The server of *domain* closed: drop its list."""
    with _lock:
        _domains.pop(domain, None)
        if _auth is not None:
            _auth.credentials_providers.pop(domain, None)


def _at_exit() -> None:
    global _ctx, _auth
    with _lock:
        ctx, auth = _ctx, _auth
        _ctx = _auth = None
    if auth is not None:
        auth.stop()
    if ctx is not None and not ctx.closed:
        # Open sockets close with the LINGER each was given; term() then
        # waits for what lingering sockets still send.
        ctx.destroy()


def _forget_after_fork() -> None:
    # The child has the parent's context object but not its I/O thread: it
    # must never be used or terminated here.  A new one is made on demand.
    global _ctx, _auth, _lock
    _lock = threading.Lock()
    _orphans.append((_ctx, _auth))  # kept, so that no finalizer runs on them here
    _ctx = None
    _auth = None
    _domains.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
