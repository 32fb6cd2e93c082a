"""Checking and converting what callers pass to a socket's methods.

Each function either returns the value in the form the socket works with,
or raises TypeError or ValueError naming what was wrong; none of them
touches a socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._types import SocketType

__all__ = ["as_bytes", "check_count", "frames_of", "sequence_of", "socket_type"]


def _doc_order(kind: SocketType) -> int:
    # The order the docs name the types in: pipeline, pair, request-reply.
    order = ("PUSH", "PULL", "PAIR", "REQ", "REP")
    return order.index(kind.name) if kind.name in order else len(order) + kind.value


def as_bytes(data: object) -> bytes:
    """*data* as bytes; any bytes-like object is accepted, as pyzmq does.

    Raises TypeError for anything else, str included (encode it first).
    """
    if type(data) is bytes:
        return data
    try:
        # tobytes() copies any buffer, strided or multi-dimensional ones too.
        return memoryview(data).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"a message must be a bytes-like object, not {type(data).__name__}"
        ) from None


def sequence_of(items: object, what: str) -> Sequence[Any]:
    """*items* as a list or tuple of messages or frames (for the batch calls).

    A bytes-like object or str is refused rather than taken for a sequence
    of ints or characters; any other iterable is read once, here, so that
    a call that has to wait and try again sees the same items.
    """
    if isinstance(items, list | tuple):
        return items
    if isinstance(items, str | bytes | bytearray | memoryview):
        raise TypeError(f"{what} takes a list of bytes-like objects, not a {type(items).__name__}")
    try:
        return list(items)  # type: ignore[call-overload,no-any-return]
    except TypeError:
        raise TypeError(
            f"{what} takes a list of bytes-like objects, not {type(items).__name__}"
        ) from None


def frames_of(frames: object) -> list[bytes]:
    """The frames of a multipart message, as bytes."""
    return [as_bytes(f) for f in sequence_of(frames, "send_multipart")]


def check_count(value: object, what: str, low: int) -> int:
    """*value* if it is an int of at least *low*; TypeError or ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{what} must be at least {low}, not {value}")
    return value


def socket_type(kind: object) -> SocketType:
    """A SocketType from a member, its number, or its name in any case.

    Raises TypeError for another type of object, ValueError for an unknown
    number or name.
    """
    if isinstance(kind, SocketType):
        return kind
    *most, last = (t.name for t in sorted(SocketType, key=_doc_order))
    names = f"{', '.join(most)} or {last}"
    found: SocketType | None
    if isinstance(kind, str):
        try:
            found = SocketType[kind.upper()]
        except KeyError:
            found = None
    elif isinstance(kind, int) and not isinstance(kind, bool):
        found = next((t for t in SocketType if t.value == kind), None)
    else:
        raise TypeError(f"socket type must be shmsock.{names}, not {type(kind).__name__}")
    if found is None:
        raise ValueError(f"unknown socket type {kind!r}; use shmsock.{names}")
    return found
