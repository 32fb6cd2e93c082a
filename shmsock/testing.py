"""Helpers for testing programs that use shmsock.

:func:`isolated_root` gives a test its own shmsock root, so endpoint names
never collide between tests, test runs in parallel never see each other's
sockets, and whatever a test leaves behind is removed::

    from shmsock.testing import isolated_root

    def test_something():
        with isolated_root() as root:
            ...  # sockets made here live under root

For pytest, ``shmsock.pytest_plugin`` turns it into the fixture
``shmsock_root``; add this line to your ``conftest.py``::

    pytest_plugins = ["shmsock.pytest_plugin"]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._transport.shm._fs import DEFAULT_ROOT, ROOT_ENV

__all__ = ["isolated_root"]


@contextlib.contextmanager
def isolated_root(dir: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Run the block with a fresh, empty shmsock root; remove it afterwards.

    Sets the environment variable ``SHMSOCK_ROOT`` to a new private
    directory (mode 0700) made under *dir*, by default ``/dev/shm`` when
    it is a writable directory (shared memory, like the default root) and
    the system's temporary directory otherwise.  Sockets created inside the
    block, and child processes started there, use it.  On exit, however the
    block ends, the previous value of ``SHMSOCK_ROOT`` comes back and the
    directory is removed with everything in it (without following
    symlinks).  Yields the directory's path.

    Close the sockets made inside the block before it ends: the directory
    goes away with their files.  The variable is process-wide, so blocks in
    concurrent threads or tasks of one process must not overlap; separate
    processes (pytest-xdist workers, say) are independent.
    """
    if dir is None:
        dir = DEFAULT_ROOT if os.access(DEFAULT_ROOT, os.W_OK | os.X_OK) else None
    path = tempfile.mkdtemp(prefix="shmsock-test-", dir=dir)
    previous = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = path
    try:
        yield Path(path)
    finally:
        if previous is None:
            os.environ.pop(ROOT_ENV, None)
        else:
            os.environ[ROOT_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
