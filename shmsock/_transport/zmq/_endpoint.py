"""``tcp://`` and ``ipc://`` endpoints: what we check before libzmq, and its errors in ours.

libzmq checks most of an endpoint itself; we check what it gets wrong or
does silently: a port above 65535 (libzmq wraps it), ``tcp://*:port`` given
to connect, and an ``ipc://`` path where a live socket or another file is
(libzmq unlinks whatever is there and binds in its place, stealing the
path from a live binder; shmsock refuses, as it does for ``shm://``).
"""

from __future__ import annotations

import errno
import os
import socket
import stat

import zmq

from ..._errors import AddressInUse, InvalidEndpoint

__all__ = ["check_bind", "check_connect", "error_from", "is_ipv6"]

_FORMS = (
    "'tcp://HOST:PORT' (HOST an address, a name, [an IPv6 address], or for bind '*' or an"
    " interface; PORT a number, or for bind 0 or '*' for any free port) or 'ipc://PATH'"
)
#: sockaddr_un's sun_path holds 108 bytes, the last a NUL.
_IPC_MAX = 107


def _invalid(endpoint: str, why: str) -> InvalidEndpoint:
    return InvalidEndpoint(f"invalid endpoint {endpoint!r}: {why}; expected {_FORMS}")


def is_ipv6(endpoint: str) -> bool:
    """Whether a ``tcp://`` endpoint names an IPv6 address in brackets."""
    host = endpoint.partition("://")[2].rpartition(";")[2].rpartition(":")[0]
    return host.startswith("[") and host.endswith("]")


def _tcp(endpoint: str, rest: str, bind: bool) -> None:
    target = rest.rpartition(";")[2] if not bind else rest  # connect may name a source first
    host, colon, port = target.rpartition(":")
    if not colon or not host:
        raise _invalid(endpoint, "no HOST:PORT")
    if port == "*" or port == "0":
        if not bind:
            raise _invalid(endpoint, "connect needs a port other than 0 or '*'")
        return
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise _invalid(endpoint, f"port {port!r} is not a number from 1 to 65535")
    if host == "*" and not bind:
        raise _invalid(endpoint, "connect needs a host, not '*'")


def _ipc(endpoint: str, path: str) -> None:
    if not path:
        raise _invalid(endpoint, "no PATH")
    if len(os.fsencode(path)) > _IPC_MAX:
        raise _invalid(endpoint, f"the path is longer than {_IPC_MAX} bytes")


def check_connect(endpoint: str) -> None:
    """Raise InvalidEndpoint for a connect endpoint libzmq would take wrongly."""
    scheme, _, rest = endpoint.partition("://")
    if scheme == "tcp":
        _tcp(endpoint, rest, bind=False)
    else:
        _ipc(endpoint, rest)


def check_bind(endpoint: str) -> None:
    """As :func:`check_connect`, for bind; for ``ipc://`` also refuse a path in use.

    Raises AddressInUse when a live socket listens at the path, and
    FileExistsError when something other than a socket is there.  A socket
    file nobody listens on is a dead binder's, and libzmq replaces it.
    """
    scheme, _, rest = endpoint.partition("://")
    if scheme == "tcp":
        _tcp(endpoint, rest, bind=True)
        return
    if rest == "*":
        return  # libzmq makes a fresh path
    _ipc(endpoint, rest)
    if rest.startswith("@"):
        return  # Linux's abstract names: the kernel refuses a second bind itself
    try:
        st = os.lstat(rest)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(
            errno.EEXIST,
            f"cannot bind {endpoint}: something other than a socket is at that path (libzmq"
            " would delete it); remove it or choose another path",
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(rest)
    except (ConnectionRefusedError, FileNotFoundError):
        return  # a dead binder's socket file
    except BlockingIOError:
        pass  # its backlog is full: very much alive
    finally:
        probe.close()
    raise AddressInUse(f"{endpoint} is bound by a live socket")


def error_from(exc: zmq.ZMQError, endpoint: str, action: str) -> Exception:
    """Our exception for libzmq's refusal to *action* (bind, connect) *endpoint*."""
    code = exc.errno
    if code == errno.EADDRINUSE:
        return AddressInUse(f"{endpoint} is in use: another socket is bound there")
    if code in (errno.EINVAL, errno.EPROTONOSUPPORT):
        return _invalid(endpoint, "libzmq refused it")
    if code == errno.ENODEV:
        return _invalid(
            endpoint,
            "no such interface or host here (an IPv6 address needs brackets, [::1])",
        )
    return OSError(code, f"cannot {action} {endpoint}: {exc.strerror}")
