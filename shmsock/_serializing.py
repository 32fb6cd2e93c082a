"""Serialization helpers: pyzmq's ``send_json``, ``send_pyobj`` and the rest (a mixin).

Each sends one message made from an object, or receives one message and
makes an object of it, with the send or receive method it names (so the
same rules hold: checkpoints, atomic cancellation, ``*_nowait`` raising
``trio.WouldBlock``).  Rules:

1. **Encoding first.**  A send encodes before anything is sent: an object
   that cannot be encoded raises (TypeError, ValueError, PicklingError)
   and nothing is sent.
2. **Decoding last.**  A receive takes the message, then decodes it: a
   message that cannot be decoded is consumed, and the decoder's error
   propagates (``json.JSONDecodeError``, ``UnicodeDecodeError``,
   ``pickle.UnpicklingError``...), as in pyzmq.
3. **Pickle trusts the peer.**  ``recv_pyobj`` unpickles, and unpickling
   data from an untrusted peer can run any code it likes.  Use it only
   between processes that trust each other (on shm:// and inproc://, the
   same user's; over tcp://, anyone who can connect).
4. **JSON is fast where it can be.**  With ``orjson`` installed (the
   ``shmsock[json]`` extra), ``send_json`` and ``recv_json`` without
   keyword arguments use it: compact UTF-8, several times faster than
   the standard library (docs/proxy.md has the figures).  What
   orjson refuses (integers over 64 bits, keys that are not str, ...) is
   handed to the standard library, so whatever ``json`` encodes or
   decodes still works; orjson also encodes dataclasses, datetimes and
   UUIDs, which ``json`` refuses, and writes NaN and infinities as null.
   With keyword arguments, or without orjson, it is ``json.dumps(obj,
   **kwargs)`` and ``json.loads``, as pyzmq does.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._trio import ki_protected

if TYPE_CHECKING:
    from collections.abc import Iterable

try:  # the shmsock[json] extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - tested with it, and with it hidden
    _orjson = None  # type: ignore[assignment]

__all__ = ["Serializing", "json_dumps", "json_loads"]

T = TypeVar("T")


def json_dumps(obj: Any, **kwargs: Any) -> bytes:
    """*obj* as JSON in UTF-8 (rule 4)."""
    if _orjson is not None and not kwargs:
        try:
            return _orjson.dumps(obj)
        except TypeError:
            pass  # (orjson's JSONEncodeError) what json may still encode
    return json.dumps(obj, **kwargs).encode()


def json_loads(data: bytes, **kwargs: Any) -> Any:
    """The object the JSON *data* stands for (rule 4)."""
    if _orjson is not None and not kwargs:
        try:
            return _orjson.loads(data)
        except ValueError:
            pass  # (orjson's JSONDecodeError) what json may still decode, or its error
    return json.loads(data, **kwargs)


class Serializing:
    """The serialization helpers of :class:`shmsock.Socket` (a mixin; see the module rules)."""

    if not TYPE_CHECKING:  # (mypy would refuse the attributes Socket's slots hold)
        __slots__ = ()

    if TYPE_CHECKING:  # the socket's own

        async def send(self, data: bytes) -> None: ...

        def send_nowait(self, data: bytes) -> None: ...

        async def send_multipart(self, frames: Iterable[bytes]) -> None: ...

        def send_multipart_nowait(self, frames: Iterable[bytes]) -> None: ...

        async def recv(self) -> bytes: ...

        def recv_nowait(self) -> bytes: ...

        async def recv_multipart(self) -> list[bytes]: ...

        def recv_multipart_nowait(self) -> list[bytes]: ...

    # -- JSON ----------------------------------------------------------------------------

    @ki_protected
    async def send_json(self, obj: Any, **kwargs: Any) -> None:
        """Send *obj* as one JSON message (UTF-8); *kwargs* go to ``json.dumps``.

        Raises:
            TypeError, ValueError: *obj* cannot be encoded (nothing is sent).
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send`.

        On cancel:
            Nothing is sent.
        """
        await self.send(json_dumps(obj, **kwargs))

    @ki_protected
    def send_json_nowait(self, obj: Any, **kwargs: Any) -> None:
        """:meth:`send_json` now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            TypeError, ValueError: *obj* cannot be encoded (nothing is sent).
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send_nowait`.
        """
        self.send_nowait(json_dumps(obj, **kwargs))

    @ki_protected
    async def recv_json(self, **kwargs: Any) -> Any:
        """Receive one message and decode it as JSON; *kwargs* go to ``json.loads``.

        Raises:
            ValueError: the message is not JSON (``json.JSONDecodeError``,
                or ``UnicodeDecodeError``); it is consumed all the same.
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv`.
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.

        On cancel:
            Nothing is consumed.
        """
        return json_loads(await self.recv(), **kwargs)

    @ki_protected
    def recv_json_nowait(self, **kwargs: Any) -> Any:
        """:meth:`recv_json` now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no message now.
            ValueError: as for :meth:`recv_json`.
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv_nowait`.
            trio.ClosedResourceError: the socket is closed.
        """
        return json_loads(self.recv_nowait(), **kwargs)

    # -- pickle --------------------------------------------------------------------------

    @ki_protected
    async def send_pyobj(self, obj: Any, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
        """Send *obj* pickled, as one message.

        Raises:
            TypeError, AttributeError: *obj* cannot be pickled (nothing is
                sent; ``pickle.PicklingError`` is an Exception too).
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send`.

        On cancel:
            Nothing is sent.
        """
        await self.send(pickle.dumps(obj, protocol))

    @ki_protected
    def send_pyobj_nowait(self, obj: Any, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
        """:meth:`send_pyobj` now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            TypeError, AttributeError: as for :meth:`send_pyobj`.
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send_nowait`.
        """
        self.send_nowait(pickle.dumps(obj, protocol))

    @ki_protected
    async def recv_pyobj(self) -> Any:
        """Receive one message and unpickle it.

        Unpickling runs whatever code the data asks for: use this only
        with peers you trust (see the module rules).

        Raises:
            Exception: what unpickling raises (``pickle.UnpicklingError``
                for what is not a pickle); the message is consumed all the same.
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv`.
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.

        On cancel:
            Nothing is consumed.
        """
        return pickle.loads(await self.recv())

    @ki_protected
    def recv_pyobj_nowait(self) -> Any:
        """:meth:`recv_pyobj` now, or trio.WouldBlock (trusts the peer as it does).

        Raises:
            trio.WouldBlock: no message now.
            Exception: what unpickling raises, as for :meth:`recv_pyobj`.
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv_nowait`.
            trio.ClosedResourceError: the socket is closed.
        """
        return pickle.loads(self.recv_nowait())

    # -- str -------------------------------------------------------------------------------

    @ki_protected
    async def send_string(self, text: str, encoding: str = "utf-8") -> None:
        """Send *text*, encoded, as one message.

        Raises:
            TypeError: *text* is not a str (nothing is sent).
            UnicodeEncodeError: *text* has no *encoding* (nothing is sent).
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send`.

        On cancel:
            Nothing is sent.
        """
        await self.send(_encode(text, encoding))

    @ki_protected
    def send_string_nowait(self, text: str, encoding: str = "utf-8") -> None:
        """:meth:`send_string` now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            TypeError, UnicodeEncodeError: as for :meth:`send_string`.
            MessageTooLarge, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`send_nowait`.
        """
        self.send_nowait(_encode(text, encoding))

    @ki_protected
    async def recv_string(self, encoding: str = "utf-8") -> str:
        """Receive one message and decode it as text.

        Raises:
            UnicodeDecodeError: it is not *encoding*; it is consumed all the same.
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv`.
            trio.ClosedResourceError: the socket is closed, or closes meanwhile.

        On cancel:
            Nothing is consumed.
        """
        return (await self.recv()).decode(encoding)

    @ki_protected
    def recv_string_nowait(self, encoding: str = "utf-8") -> str:
        """:meth:`recv_string` now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no message now.
            UnicodeDecodeError: as for :meth:`recv_string`.
            MultipartMessage, CorruptMessage, StateError, trio.BrokenResourceError:
                as for :meth:`recv_nowait`.
            trio.ClosedResourceError: the socket is closed.
        """
        return self.recv_nowait().decode(encoding)

    # -- any codec ---------------------------------------------------------------------

    @ki_protected
    async def send_serialized(self, msg: T, serialize: Callable[[T], Sequence[bytes]]) -> None:
        """Send ``serialize(msg)``, a list of frames, as one message.

        Raises:
            Exception: what *serialize* raises (nothing is sent).
            ValueError, TypeError, MessageTooLarge, StateError, trio.ClosedResourceError:
                as for :meth:`send_multipart`.

        On cancel:
            Nothing is sent.
        """
        await self.send_multipart(serialize(msg))

    @ki_protected
    def send_serialized_nowait(self, msg: T, serialize: Callable[[T], Sequence[bytes]]) -> None:
        """:meth:`send_serialized` now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no peer has room now (nothing was sent).
            Exception: what *serialize* raises (nothing is sent).
            ValueError, TypeError, MessageTooLarge, StateError, trio.ClosedResourceError:
                as for :meth:`send_multipart_nowait`.
        """
        self.send_multipart_nowait(serialize(msg))

    @ki_protected
    async def recv_serialized(self, deserialize: Callable[[list[bytes]], T]) -> T:
        """Receive one message and return ``deserialize(frames)``.

        Raises:
            Exception: what *deserialize* raises (the message is consumed all the same).
            CorruptMessage, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`recv_multipart`.

        On cancel:
            Nothing is consumed.
        """
        return deserialize(await self.recv_multipart())

    @ki_protected
    def recv_serialized_nowait(self, deserialize: Callable[[list[bytes]], T]) -> T:
        """:meth:`recv_serialized` now, or trio.WouldBlock.

        Raises:
            trio.WouldBlock: no message now.
            Exception: what *deserialize* raises (the message is consumed all the same).
            CorruptMessage, StateError, trio.BrokenResourceError, trio.ClosedResourceError:
                as for :meth:`recv_multipart_nowait`.
        """
        return deserialize(self.recv_multipart_nowait())


def _encode(text: str, encoding: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"send_string takes a str, not {type(text).__name__}")
    return text.encode(encoding)
