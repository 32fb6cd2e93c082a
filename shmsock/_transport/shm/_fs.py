"""Endpoint names, the per-user directory, and careful file handling.

Every file of every endpoint lives in one directory per user,
``$SHMSOCK_ROOT/shmsock-<uid>`` (the root defaults to ``/dev/shm``), which
is mode 0700.  Inside it, an endpoint ``NAME`` owns these names (``@`` can
not occur in an endpoint name, so names of different endpoints never
collide):

==========================  ===================================================
``NAME@lock``               bind lock: held (flock) by the live binder
``NAME@sock``               the binder's listening Unix socket
``NAME@<k>.lock``           slot k: created with O_EXCL and held by a connector
``NAME@<k>.c``              slot k: ring the connector writes, the binder reads
``NAME@<k>.b.<token>``      slot k: ring binder ``token`` writes, the connector
                            reads
==========================  ===================================================

Rules for every file operation here:

- names are resolved relative to an open descriptor of the verified
  directory, never through a path that could be swapped;
- files are created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and then ``fchmod``-ed,
  so the umask never decides their mode;
- files are opened with ``O_NOFOLLOW`` and checked with ``fstat``: a
  symlink, another kind of file, another owner or a mode other than the one
  shmsock creates is refused with :class:`UnsafeFile`;
- liveness comes from ``flock`` locks, which the kernel drops when their
  holder dies; PIDs stored in files are only ever displayed;
- every descriptor is close-on-exec.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from typing import Final

from ..._errors import InvalidEndpoint, UnsafeFile

DEFAULT_ROOT: Final = "/dev/shm"
ROOT_ENV: Final = "SHMSOCK_ROOT"
SCHEME: Final = "shm://"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_O_CLOEXEC: Final = os.O_CLOEXEC | os.O_NOFOLLOW


def parse_endpoint(endpoint: object) -> str:
    """Return NAME from ``shm://NAME`` or raise InvalidEndpoint.

    NAME is 1 to 64 characters from letters, digits, ``.``, ``_`` and
    ``-``, and is neither ``.`` nor ``..``.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str like 'shm://jobs', not {type(endpoint).__name__}")
    name = endpoint[len(SCHEME) :] if endpoint.startswith(SCHEME) else None
    if name is None or not _NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidEndpoint(
            f"invalid endpoint {endpoint!r}: expected 'shm://NAME', where NAME is 1 to 64"
            " characters from letters, digits, '.', '_' and '-', and not '.' or '..'"
        )
    return name


def root_path() -> str:
    """The directory under which the per-user directory lives."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def user_dir_path(root: str | None = None) -> str:
    return os.path.join(root or root_path(), f"shmsock-{os.geteuid()}")


def _refuse(what: str, st: os.stat_result, *, mode: int, kinds: str) -> None:
    uid = os.geteuid()
    if st.st_uid != uid:
        raise UnsafeFile(f"{what} belongs to uid {st.st_uid}, not to this user ({uid})")
    if stat.S_IMODE(st.st_mode) != mode:
        raise UnsafeFile(
            f"{what} has mode {stat.S_IMODE(st.st_mode):04o}; shmsock only uses its own"
            f" {mode:04o} {kinds}"
        )


class UserDir:
    """The verified per-user directory, held open by descriptor."""

    def __init__(self, root: str | None = None) -> None:
        self.path = user_dir_path(root)
        created = False
        try:
            os.mkdir(self.path, 0o700)
            created = True
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise FileNotFoundError(
                errno.ENOENT, f"shmsock root {os.path.dirname(self.path)!r} does not exist"
            ) from None
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeFile(f"{self.path} is not a directory (a symlink?)") from None
            raise
        try:
            if created:
                os.fchmod(self.fd, 0o700)  # whatever the umask made of it
            st = os.fstat(self.fd)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeFile(f"{self.path} is not a directory")
            _refuse(self.path, st, mode=0o700, kinds="directories")
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def sockpath(self, name: str) -> str:
        """A short path to *name* for bind() and connect().

        Unix socket paths are limited to 107 bytes; going through the
        directory descriptor keeps them short whatever the root is.
        """
        return f"/proc/self/fd/{self.fd}/{name}"

    # -- files -------------------------------------------------------------

    def create(self, name: str, mode: int = 0o600) -> int:
        """Create *name* exclusively with exactly *mode*; return its fd.

        Raises FileExistsError when it exists (including as a symlink).
        """
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, mode, dir_fd=self.fd)
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_raw(self, name: str) -> int:
        """Open *name* without following a symlink; the caller checks it.

        Raises FileNotFoundError, UnsafeFile for a symlink, a directory or
        a socket, and OSError (PermissionError, say) for the rest.
        """
        try:
            return os.open(name, os.O_RDWR | os.O_NONBLOCK | _O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFile(f"{self.path}/{name} is a symlink") from None
            if exc.errno in (errno.EISDIR, errno.ENXIO):
                raise UnsafeFile(f"{self.path}/{name} is not a regular file") from None
            raise

    def open(self, name: str, mode: int = 0o600, *, create: bool = False) -> int:
        """Open an existing regular file of ours with exactly *mode*.

        With *create*, make it (with *mode*) if it does not exist.  Raises
        FileNotFoundError, or UnsafeFile for anything but our own regular
        file with that mode.  O_NONBLOCK keeps a FIFO planted in our place
        from blocking the open; the check then refuses it.
        """
        while True:
            try:
                fd = self.open_raw(name)
                break
            except FileNotFoundError:
                if not create:
                    raise
            try:
                return self.create(name, mode)
            except FileExistsError:
                continue  # someone else created it first: open theirs
        try:
            self.check(fd, name, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def check(self, fd: int, name: str, mode: int = 0o600) -> os.stat_result:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{self.path}/{name} is not a regular file")
        _refuse(f"{self.path}/{name}", st, mode=mode, kinds="files")
        return st

    def check_socket(self, name: str) -> None:
        """Check that *name* is a socket of ours (before connecting to it).

        Raises FileNotFoundError, or UnsafeFile.
        """
        st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISSOCK(st.st_mode):
            raise UnsafeFile(f"{self.path}/{name} is not a socket")
        if st.st_uid != os.geteuid():
            raise UnsafeFile(f"{self.path}/{name} belongs to uid {st.st_uid}")

    def unlink(self, name: str) -> bool:
        """Remove *name* if it is there; report whether it was.

        A directory planted in our place is left alone (False): shmsock
        removes names, never trees.
        """
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        except OSError:  # EISDIR, or EPERM for a directory on some systems
            if not self.is_dir(name):
                raise
            return False
        return True

    def is_dir(self, name: str) -> bool:
        """Is *name* a directory (not a symlink to one)?  False if it is gone."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return stat.S_ISDIR(st.st_mode)

    def is_same(self, fd: int, name: str) -> bool:
        """Does *name* still refer to the file open as *fd*?"""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def listdir(self) -> list[str]:
        return os.listdir(self.fd)


class LazyDir:
    """The per-user directory of one transport, opened on first use."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: UserDir | None = None

    def get(self) -> UserDir:
        """The directory, opened (and checked) now if it was not yet."""
        if self._d is None:
            self._d = UserDir()
        return self._d

    def is_open(self) -> bool:
        return self._d is not None

    def close(self) -> None:
        if self._d is not None:
            self._d.close()
            self._d = None


def try_lock(fd: int) -> bool:
    """Take an exclusive flock on *fd* without waiting; False if held."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_file(d: UserDir, name: str, *, create: bool) -> int | None:
    """Open *name* and take its flock, making sure it is still *name*.

    Returns the locked fd, or None when a live holder has it.  A file that
    was unlinked or replaced between our open and our lock is not the lock
    any more: we start over, so two processes never both believe they hold
    the lock for one name.  Raises FileNotFoundError when *name* does not
    exist and *create* is false.
    """
    while True:
        fd = d.open(name, create=create)
        try:
            if not try_lock(fd):
                os.close(fd)
                return None
            if d.is_same(fd, name):
                return fd
        except BaseException:
            os.close(fd)
            raise
        # Unlinked or replaced under us: try again with whatever is there
        # now (FileNotFoundError if nothing is and create is false).
        os.close(fd)
