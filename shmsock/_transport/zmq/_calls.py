"""libzmq's batch calls (``csrc/zmqbatch.c``), bound to the libzmq that pyzmq loaded.

This is the only module that calls into ``shmsock._zmqbatch``.  The C side
is built without libzmq; here it gets libzmq's functions, taken from the
library pyzmq itself loaded (found in ``/proc/self/maps``, opened again with
RTLD_NOLOAD so that no second copy is loaded), and checked to be the same
libzmq version pyzmq reports.  Where any of that fails, :data:`API` is None
and the transport uses pyzmq's own calls, one per frame: slower, the same
behaviour.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any, Final

import zmq

__all__ = ["API", "ZB_AGAIN", "ZB_HELD", "Batch", "handle", "lens_of"]

ffi: Any
lib: Any

_SIGNATURES: Final = {
    "msg_init": ("zmq_msg_init", "int(*)(void *)"),
    "msg_recv": ("zmq_msg_recv", "int(*)(void *, void *, int)"),
    "msg_data": ("zmq_msg_data", "void *(*)(void *)"),
    "msg_size": ("zmq_msg_size", "size_t(*)(const void *)"),
    "msg_more": ("zmq_msg_more", "int(*)(const void *)"),
    "msg_close": ("zmq_msg_close", "int(*)(void *)"),
    "send": ("zmq_send", "int(*)(void *, const void *, size_t, int)"),
    "getsockopt": ("zmq_getsockopt", "int(*)(void *, int, void *, size_t *)"),
    "zerrno": ("zmq_errno", "int(*)(void)"),
}


def _libzmq_path() -> str | None:
    """The file of the libzmq mapped into this process (pyzmq's), if exactly one."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.rstrip("\n").partition("/")[2]
            if path and os.path.basename(path).startswith("libzmq"):
                paths.add("/" + path)
    return paths.pop() if len(paths) == 1 else None


def _load() -> Any:
    global ffi, lib
    try:
        from ..._zmqbatch import ffi, lib
    except ImportError:  # pragma: no cover - a build without the module
        return None
    path = _libzmq_path()
    if path is None:  # pragma: no cover - pyzmq linked statically, or twice
        return None
    try:
        libzmq = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
        major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        libzmq.zmq_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    except (OSError, AttributeError):  # pragma: no cover
        return None
    if (major.value, minor.value, patch.value) != zmq.zmq_version_info():  # pragma: no cover
        return None
    api = ffi.new("zb_api *")
    for field, (name, ctype) in _SIGNATURES.items():
        address = ctypes.cast(getattr(libzmq, name), ctypes.c_void_p).value
        setattr(api, field, ffi.cast(ctype, address))
    return api


#: libzmq's functions for the C side, or None: use pyzmq's calls instead.
API: Final = _load()


def handle(sock: zmq.Socket[Any]) -> Any:
    """The ``void *`` of a pyzmq socket, for the C calls."""
    return ffi.cast("void *", sock.underlying)


_splitters: dict[tuple[int, int], struct.Struct] = {}


def _splitter(size: int, count: int) -> struct.Struct:
    """A Struct that cuts *count* payloads of *size* bytes apart (as ``_ring`` does)."""
    key = (size, count)
    s = _splitters.get(key)
    if s is None:
        if len(_splitters) >= 256:
            _splitters.clear()
        s = _splitters[key] = struct.Struct(f"{size}s" * count)
    return s


class Batch:
    """The C calls on one libzmq socket, with the buffers they fill.

    Not thread-safe, as the socket it serves is not.
    """

    __slots__ = (
        "_err",
        "_handle",
        "_held",
        "_lens",
        "_out",
        "_size",
        "_view",
        "max_count",
        "send1_args",
    )

    def __init__(self, sock: zmq.Socket[Any], size: int = 256 << 10, max_count: int = 256) -> None:
        self._handle = handle(sock)
        self._size = size
        self.max_count = max_count
        self._out = ffi.new("uint8_t[]", size)
        self._view = ffi.buffer(self._out, size)
        self._lens = ffi.new("uint32_t[]", max_count)
        self._held = ffi.new("zb_held *")
        self._err = ffi.new("int *")
        #: The first arguments of ``lib.zb_send1``, for a caller that calls
        #: it directly (a pipe's fast path): ``lib.zb_send1(*send1_args, data, n)``.
        self.send1_args = (API, self._handle)

    def recv(self, max_count: int) -> tuple[list[bytes], int, int]:
        """Up to *max_count* one-frame messages: ``(messages, flags, their bytes)``.

        Flags: ``ZB_AGAIN`` (libzmq had no more), ``ZB_HELD`` (a frame is
        held: take it with :meth:`take_held`).  Raises zmq.ZMQError for
        libzmq's other errors.
        """
        count = min(max_count, self.max_count)
        rc: int = lib.zb_recv(
            API, self._handle, self._held, self._out, self._size, self._lens, count
        )
        if rc < 0:
            raise zmq.ZMQError(-rc)
        n = rc >> 2
        if n == 0:
            return [], rc & 3, 0
        raw = self._view
        lens = self._lens
        first = lens[0]
        if n == 1:
            return [raw[:first]], rc & 3, first
        sizes = ffi.unpack(lens, n)
        if sizes.count(first) == n:
            return list(_splitter(first, n).unpack_from(raw)), rc & 3, first * n
        out: list[bytes] = []
        append = out.append
        pos = 0
        for size in sizes:
            end = pos + size
            append(raw[pos:end])
            pos = end
        return out, rc & 3, pos

    def take_held(self) -> tuple[bytes, bool]:
        """The held frame's data and whether more frames follow it; lets go of it."""
        held = self._held
        data: bytes = ffi.buffer(lib.zb_held_data(API, held), lib.zb_held_size(API, held))[:]
        more = bool(lib.zb_held_more(API, held))
        lib.zb_held_close(API, held)
        return data, more

    def close(self) -> None:
        """Let go of a held frame, if any (before the socket closes)."""
        lib.zb_held_close(API, self._held)

    def send(self, data: bytes, lens: Any, count: int) -> tuple[int, int]:
        """Send *count* one-frame messages back to back in *data*: ``(sent, errno)``."""
        sent: int = lib.zb_send(API, self._handle, data, lens, count, self._err)
        return sent, int(self._err[0])

    def send1(self, data: bytes, n: int) -> int:
        """Send one one-frame message: 0, or the errno that stopped it."""
        rc: int = lib.zb_send1(API, self._handle, data, n)
        return rc

    def events(self) -> int:
        """ZMQ_EVENTS, as ``getsockopt(zmq.EVENTS)`` would read it."""
        rc: int = lib.zb_events(API, self._handle)
        if rc < 0:
            raise zmq.ZMQError(-rc)
        return rc


def lens_of(lens: Any) -> Any:
    """*lens* (an ``array('I')`` or a list of ints) as the C side's ``uint32_t[]``."""
    if isinstance(lens, list):
        return ffi.new("uint32_t[]", lens)
    return ffi.from_buffer("uint32_t[]", lens)


ZB_AGAIN: Final = 1
ZB_HELD: Final = 2
