"""A socket's options: attributes, and pyzmq's setsockopt/getsockopt.

Each option is an attribute (``sock.linger = 0``) and, as in pyzmq,
setsockopt/getsockopt take its name.  ``linger``, ``spin_us`` and
``checksum`` may change at any time; ``ring_size`` and ``max_msg_size``
until the first bind or connect, since the connections are made with them.
pyzmq's options that shmsock lacks raise an error that says what to do
instead, whichever way they are spelled.  The options of ``tcp://`` and
``ipc://`` (libzmq's) are attributes too, read and set by name.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, NoReturn

from ._errors import StateError
from ._options import (
    FIXED_ONCE_ATTACHED,
    PYZMQ_HINTS,
    ZMQ_OPTIONS,
    Options,
    SocketOption,
    make_options,
    no_such_option,
    option_name,
)
from ._types import SocketType

if TYPE_CHECKING:
    from ._hub import Hub
    from ._outbox import Outbox
    from ._patterns import Pattern

__all__ = ["SocketOptions", "refuse_pyzmq_options"]


class SocketOptions:
    """The option attributes and methods of :class:`shmsock.Socket` (a mixin)."""

    if not TYPE_CHECKING:  # (mypy would refuse the attributes Socket's slots hold)
        __slots__ = ()

    _kind: SocketType
    _options: Options
    _attached_once: bool
    _hub: Hub
    _outbox: Outbox
    _pattern: Pattern

    if TYPE_CHECKING:  # the socket's own

        def _check_open(self) -> None: ...

        def _derive(self) -> None: ...

    @property
    def type(self) -> SocketType:
        """The socket's type, as given to :func:`shmsock.socket`."""
        return self._kind

    @property
    def ring_size(self) -> int:
        """The ``ring_size`` option, rounded up: bytes of each ring this socket writes.

        A PULL socket never writes a message, so its rings take the
        smallest size whatever this says.  Settable until the first bind or
        connect (see :meth:`setsockopt`).
        """
        return self._options.ring_size

    @ring_size.setter
    def ring_size(self, value: int) -> None:
        self._set_option("ring_size", value)

    @property
    def max_msg_size(self) -> int:
        """Largest message, in bytes over all frames, sent or accepted.

        Settable until the first bind or connect (see :meth:`setsockopt`).
        """
        return self._options.max_msg_size

    @max_msg_size.setter
    def max_msg_size(self, value: int) -> None:
        self._set_option("max_msg_size", value)

    @property
    def spin_us(self) -> int:
        """Microseconds a receiver busy-polls before it parks.

        Settable at any time; a receive call started before the change
        spins as it started.
        """
        return self._options.spin_us

    @spin_us.setter
    def spin_us(self, value: int) -> None:
        self._set_option("spin_us", value)

    @property
    def schedule_every_us(self) -> int:
        """Microseconds of calls that never wait between two schedule points, at most.

        0: a schedule point on every call.  Settable at any time; see
        :class:`shmsock.Options`.
        """
        return self._options.schedule_every_us

    @schedule_every_us.setter
    def schedule_every_us(self, value: int) -> None:
        self._set_option("schedule_every_us", value)

    @property
    def checksum(self) -> bool:
        """Whether this socket computes CRC32C over what it sends.

        Settable at any time: it applies from the next record this socket
        writes, on every connection.
        """
        return self._options.checksum

    @checksum.setter
    def checksum(self, value: bool) -> None:
        self._set_option("checksum", value)

    @property
    def linger(self) -> float | None:
        """Seconds :meth:`aclose` waits for readers to take what was sent (None: no bound).

        Settable at any time before the socket is closed.
        """
        return self._options.linger

    @linger.setter
    def linger(self, value: float | None) -> None:
        self._set_option("linger", value)

    @property
    def nodrop(self) -> bool:
        """PUB, XPUB: whether a send waits for room in every matching subscriber.

        Settable at any time (see :class:`shmsock.Options`).
        """
        return self._options.nodrop

    @nodrop.setter
    def nodrop(self, value: bool) -> None:
        self._set_option("nodrop", value)

    @property
    def conflate(self) -> bool:
        """SUB: whether only the latest message of each subscription is kept.

        Settable at any time (see :class:`shmsock.Options`).
        """
        return self._options.conflate

    @conflate.setter
    def conflate(self, value: bool) -> None:
        self._set_option("conflate", value)

    @property
    def routing_id(self) -> bytes | None:
        """The routing id this socket asks its ROUTER peers to call it by, or None.

        1 to 255 bytes, not starting with a zero byte; None lets each
        ROUTER make up an id.  Settable until the
        first bind or connect (see :meth:`setsockopt`).
        """
        return self._options.routing_id

    @routing_id.setter
    def routing_id(self, value: bytes | None) -> None:
        self._set_option("routing_id", value)

    @property
    def router_mandatory(self) -> bool:
        """ROUTER: whether a routing id that names no peer raises HostUnreachable.

        False drops such messages silently and counts them, as libzmq's
        ROUTER does by default.  Settable at any time.
        """
        return self._options.router_mandatory

    @router_mandatory.setter
    def router_mandatory(self, value: bool) -> None:
        self._set_option("router_mandatory", value)

    def setsockopt(self, option: SocketOption | str, value: Any) -> None:
        """Set an option, as pyzmq does: ``sock.setsockopt(shmsock.LINGER, 0)``.

        *option* is a :class:`SocketOption` (``shmsock.LINGER`` and the
        like) or its name as a str, in any case; ``sock.linger = 0`` does
        the same.  The value is checked as :func:`shmsock.socket` checks
        it, and ``ring_size`` is rounded up the same way.  ``linger``,
        ``spin_us``, ``checksum`` and ``router_mandatory`` may change at any
        time; ``ring_size``, ``max_msg_size`` and ``routing_id`` only before
        the first ``bind`` or ``connect``,
        since the socket's connections are made with them.  Synchronous:
        never a checkpoint.  Nothing changes when it raises.

        Raises:
            ValueError: a name that is not one of shmsock's options (for
                one of pyzmq's, the message says what to do instead: a Trio
                cancel scope for ``"rcvtimeo"``, ``ring_size`` for
                ``"sndhwm"``), or a bad value.
            TypeError: a name that is not a str (pyzmq's numbered
                constants included), or a value of the wrong type.
            StateError: ``ring_size``, ``max_msg_size`` or ``routing_id``
                once the socket has bound or connected.
            trio.ClosedResourceError: the socket is closed.
        """
        self._set_option(option_name(option), value)

    def getsockopt(self, option: SocketOption | str) -> Any:
        """The value of an option, as pyzmq's ``getsockopt``: ``sock.getsockopt(shmsock.LINGER)``.

        The same as reading the attribute (``sock.linger``): the value in
        force, after rounding.  Works on a closed socket too.

        Raises:
            ValueError, TypeError: a bad name, as for :meth:`setsockopt`.
        """
        return getattr(self._options, option_name(option))

    def _set_option(self, name: str, value: object) -> None:
        self._check_open()
        if name in FIXED_ONCE_ATTACHED and self._attached_once:
            why = {
                "ring_size": "the rings of its connections are made that size",
                "routing_id": "its peers know it by the id it stated when it connected",
            }.get(name, "its connections are set up with that limit")
            raise StateError(
                f"{name} cannot change once the socket has bound or connected: {why}; set it"
                f" before the first bind or connect, or pass {name}= to shmsock.socket()"
            )
        checked = getattr(make_options(**{name: value}), name)
        options = self._options = dataclasses.replace(self._options, **{name: checked})
        hub = self._hub
        hub.spec = dataclasses.replace(hub.spec, options=options)
        for transport in hub.transports.values():
            transport.set_options(options)
        self._outbox.configure(options)
        self._pattern.set_options(options)
        self._derive()


class _PyzmqOption:
    """An option of pyzmq's that shmsock lacks, as an attribute of Socket.

    Reading or setting it raises AttributeError that says what to do
    instead, where a plain attribute would silently take the value
    (``sock.rcvtimeo = 1000`` is a pyzmq habit).
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, obj: object, objtype: type | None = None) -> NoReturn:
        raise AttributeError(no_such_option(self._name))

    def __set__(self, obj: object, value: object) -> NoReturn:
        raise AttributeError(no_such_option(self._name))


class _ZmqOption:
    """An option of tcp:// and ipc:// (libzmq's), as an attribute: ``sock.sndhwm = 10``.

    The same as ``getsockopt`` and ``setsockopt`` by its name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self.__doc__ = f"The ``{name}`` option (tcp:// and ipc://; see :class:`shmsock.Options`)."

    def __get__(self, obj: SocketOptions | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.getsockopt(self._name)

    def __set__(self, obj: SocketOptions, value: object) -> None:
        obj.setsockopt(self._name, value)


def refuse_pyzmq_options(cls: type) -> None:
    """Give *cls* an attribute for each pyzmq option it lacks, one that says so.

    And one for each option of tcp:// and ipc://, which reads and sets it.
    """
    for name in PYZMQ_HINTS:
        setattr(cls, name, _PyzmqOption(name))
    for name in ZMQ_OPTIONS:
        setattr(cls, name, _ZmqOption(name))
