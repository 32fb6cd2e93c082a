"""A minimal inotify watch, so connectors learn at once that a binder appeared.

The standard library has no inotify, and three libc calls do not justify a
dependency: this is ctypes over ``inotify_init1`` and ``inotify_add_watch``.
The descriptor is non-blocking and close-on-exec; the caller polls it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from typing import Final

IN_MOVED_TO: Final = 0x00000080
IN_CREATE: Final = 0x00000100
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class DirWatch:
    """Reports the names created or moved into one directory."""

    def __init__(self, dir_fd: int) -> None:
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        path = f"/proc/self/fd/{dir_fd}".encode()
        if _libc.inotify_add_watch(fd, path, IN_CREATE | IN_MOVED_TO) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch: {os.strerror(err)}")

    def read_names(self) -> list[str]:
        """Names of the files that appeared since the last call."""
        names: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            pos = 0
            while pos + _EVENT.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, pos)
                raw = data[pos + _EVENT.size : pos + _EVENT.size + length]
                names.append(raw.rstrip(b"\0").decode(errors="replace"))
                pos += _EVENT.size + length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
