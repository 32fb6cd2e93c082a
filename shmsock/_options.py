"""Socket options: names, defaults, ranges and validation."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Final

KiB: Final = 1024
MiB: Final = 1024 * KiB

RING_SIZE_MIN: Final = 4 * KiB
RING_SIZE_MAX: Final = 64 * MiB
MAX_MSG_SIZE_MAX: Final = 1 << 40
SPIN_US_MAX: Final = 1_000_000


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


_NAMES: Final = tuple(f.name for f in fields(Options))


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
            raise TypeError(f"unknown option {name!r}; the options are {', '.join(_NAMES)}")
    values: dict[str, Any] = {}
    if "ring_size" in options:
        size = _int("ring_size", options["ring_size"], 1, RING_SIZE_MAX)
        size = max(RING_SIZE_MIN, 1 << (size - 1).bit_length())
        values["ring_size"] = size
    if "max_msg_size" in options:
        values["max_msg_size"] = _int("max_msg_size", options["max_msg_size"], 0, MAX_MSG_SIZE_MAX)
    if "spin_us" in options:
        values["spin_us"] = _int("spin_us", options["spin_us"], 0, SPIN_US_MAX)
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
