"""A pytest plugin with the fixture ``shmsock_root``.

Enable it in your ``conftest.py``::

    pytest_plugins = ["shmsock.pytest_plugin"]

then ask for the fixture in a test, or use it for every test::

    @pytest.fixture(autouse=True)
    def _own_shmsock_root(shmsock_root):
        pass
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .testing import isolated_root

__all__ = ["shmsock_root"]


@pytest.fixture
def shmsock_root() -> Iterator[Path]:
    """A fresh shmsock root for this test, removed afterwards.

    See :func:`shmsock.testing.isolated_root`.
    """
    with isolated_root() as root:
        yield root
