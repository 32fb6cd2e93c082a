"""Socket options: names, defaults, ranges and validation."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields
from typing import Any, Final

KiB: Final = 1024
MiB: Final = 1024 * KiB

RING_SIZE_MIN: Final = 4 * KiB
RING_SIZE_MAX: Final = 64 * MiB
MAX_MSG_SIZE_MAX: Final = 1 << 40
SPIN_US_MAX: Final = 1_000_000
SCHEDULE_EVERY_US_MAX: Final = 1_000_000


@dataclass(frozen=True)
class Options:
    """The options of a socket, validated.

    ring_size
        Bytes of each ring this socket writes, one per connection (the peer
        sizes the ring in the other direction).  Rounded up to a power of
        two, from 4 KiB to 64 MiB.  Default 1 MiB.  A PULL socket never
        writes a message, so its rings take the smallest size whatever
        this says.
    max_msg_size
        Largest message, in payload bytes over all frames, that this socket
        sends or accepts.  Default 64 MiB; at most 2**40.
    spin_us
        Microseconds a receiver busy-polls its rings before it parks.
        Spinning holds the Trio thread, so it trades CPU for wake-up
        latency.  Default 0: park at once.
    checksum
        Whether this socket computes CRC32C over what it sends.  Receivers
        check every record that carries one.  Default True.
    schedule_every_us
        How often, at most, the message methods (``await send()``,
        ``await recv()`` and the like) let other tasks run, in microseconds
        of calls that never had to wait.  Every call checks for
        cancellation; a call that did not wait goes through Trio's
        scheduler only if this thread has not yielded for that long.
        Default 100; 0 yields on every call (Trio's strictest reading of
        its checkpoint rule, and what ``trio.testing.assert_checkpoints``
        expects).  A deadline that passes while a task sends or receives
        without ever waiting is noticed up to this much late.
    linger
        Seconds ``aclose()`` waits for the readers to take what this socket
        sent; ``0`` does not wait, ``None`` waits without bound.  Default
        1.0.  A reader that is attached gets everything whatever the wait
        did: it reads the rest after the close.  Only where this socket
        connected and its binder is gone is the end of the wait final:
        the messages still in that ring are lost then, and counted in
        ``dropped``.
    """

    ring_size: int = 1 * MiB
    max_msg_size: int = 64 * MiB
    spin_us: int = 0
    checksum: bool = True
    linger: float | None = 1.0
    schedule_every_us: int = 100


_NAMES: Final = tuple(f.name for f in fields(Options))


class SocketOption(enum.StrEnum):
    """The names of the options, for ``setsockopt`` and ``getsockopt``.

    The members are strings, so ``shmsock.LINGER == "linger"``, and either
    spelling names the option.  Unlike pyzmq's numbered constants, only the
    options shmsock has exist: see :doc:`pyzmq` for the others.
    """

    RING_SIZE = "ring_size"
    MAX_MSG_SIZE = "max_msg_size"
    SPIN_US = "spin_us"
    CHECKSUM = "checksum"
    LINGER = "linger"
    SCHEDULE_EVERY_US = "schedule_every_us"


#: Options that may change only before the socket first binds or connects.
FIXED_ONCE_ATTACHED: Final = frozenset({"ring_size", "max_msg_size"})

_FAIL_AFTER = (
    "for a {what} timeout, put the call in a Trio cancel scope: `with trio.fail_after(seconds):`"
    " raises trio.TooSlowError, `with trio.move_on_after(seconds):` gives up quietly;"
    " a cancelled {call} {effect}"
)
_HWM = (
    "the high-water mark is the ring: set ring_size, in bytes (the ring this socket writes"
    " to each peer; send waits while it is full)"
)

#: pyzmq's socket options that shmsock does not have, by lower-case name,
#: with what to do instead.  The errors for each spelling quote them.
PYZMQ_HINTS: Final = {
    "rcvtimeo": _FAIL_AFTER.format(what="receive", call="recv", effect="takes nothing"),
    "sndtimeo": _FAIL_AFTER.format(what="send", call="send", effect="sends nothing"),
    "sndhwm": _HWM,
    "rcvhwm": _HWM + "; what waits for this socket is bounded by its peers' ring_size",
    "hwm": _HWM,
    "sndbuf": _HWM,
    "rcvbuf": _HWM,
    "maxmsgsize": "it is called max_msg_size (in bytes; there is no -1 for no limit)",
    "immediate": "send always waits for an attached peer, as with IMMEDIATE set",
    "reconnect_ivl": (
        "a connecting socket attaches as soon as a binder appears: there is no interval to set"
    ),
    "rcvmore": "recv_multipart returns every frame of a message at once",
    "identity": "there is no DEALER or ROUTER socket yet",
    "routing_id": "there is no DEALER or ROUTER socket yet",
    "subscribe": "there is no PUB or SUB socket yet",
    "unsubscribe": "there is no PUB or SUB socket yet",
}


def no_such_option(name: str) -> str:
    """Why *name* is not an option, and for pyzmq's options, what to do instead."""
    hint = PYZMQ_HINTS.get(name.lower())
    if hint is not None:
        return f"shmsock has no option {name!r}: {hint}"
    return f"unknown option {name!r}; the options are {', '.join(_NAMES)}"


def option_name(option: object) -> str:
    """The name of the option *option* stands for: a SocketOption or its name.

    Names are matched in any case.  Raises ValueError for a name that is
    not one of shmsock's options (for one of pyzmq's, the message says what
    to do instead) and TypeError for anything but a str.
    """
    if isinstance(option, SocketOption):
        return option.value
    if not isinstance(option, str):
        raise TypeError(
            f"an option is named by shmsock.{SocketOption.LINGER.name} and the like, or by"
            f" its name as a str, not by {type(option).__name__} {option!r} (pyzmq's numbered"
            " constants are not shmsock's, and its units differ: linger is in seconds)"
        )
    name = option.lower()
    if name not in _NAMES:
        raise ValueError(no_such_option(option))
    return name


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"option {name} must be an int from {low} to {high}, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"option {name} must be from {low} to {high}, not {value}")
    return value


def make_options(**options: Any) -> Options:
    """Validate keyword options into an Options, naming any bad one.

    Raises TypeError for an unknown name or a value of the wrong type, and
    ValueError for a value out of range.
    """
    for name in options:
        if name not in _NAMES:
            raise TypeError(no_such_option(name))
    values: dict[str, Any] = {}
    if "ring_size" in options:
        size = _int("ring_size", options["ring_size"], 1, RING_SIZE_MAX)
        size = max(RING_SIZE_MIN, 1 << (size - 1).bit_length())
        values["ring_size"] = size
    if "max_msg_size" in options:
        values["max_msg_size"] = _int("max_msg_size", options["max_msg_size"], 0, MAX_MSG_SIZE_MAX)
    if "spin_us" in options:
        values["spin_us"] = _int("spin_us", options["spin_us"], 0, SPIN_US_MAX)
    if "schedule_every_us" in options:
        values["schedule_every_us"] = _int(
            "schedule_every_us", options["schedule_every_us"], 0, SCHEDULE_EVERY_US_MAX
        )
    if "checksum" in options:
        if not isinstance(options["checksum"], bool):
            raise TypeError(f"option checksum must be True or False, not {options['checksum']!r}")
        values["checksum"] = options["checksum"]
    if "linger" in options:
        linger = options["linger"]
        if linger is not None:
            if isinstance(linger, bool) or not isinstance(linger, int | float):
                raise TypeError(
                    f"option linger must be None or a number of seconds >= 0, not {linger!r}"
                )
            if not (linger >= 0 and not math.isnan(linger)):
                raise ValueError(f"option linger must be None or >= 0 seconds, not {linger}")
            linger = float(linger)
        values["linger"] = linger
    return Options(**values)
