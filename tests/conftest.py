"""Shared test configuration.

Every test runs with its own shmsock root (SHMSOCK_ROOT) and, when it
ends, must have left no file of shmsock's behind in it.
"""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A selection that matches no test (say, `tox -- -k name` on a test
    # that lives elsewhere) is not a failure of the suite.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK


@pytest.fixture(autouse=True)
def shm_root(tmp_path_factory, monkeypatch):
    """A fresh root for this test; asserts it is left clean."""
    root = tmp_path_factory.mktemp("shmroot")
    monkeypatch.setenv("SHMSOCK_ROOT", str(root))
    yield root
    userdir = root / f"shmsock-{os.geteuid()}"
    left = sorted(os.listdir(userdir)) if userdir.exists() else []
    assert left == [], f"files left behind: {left}"


@pytest.fixture
def userdir(shm_root):
    """Path of the per-user directory inside this test's root."""
    return shm_root / f"shmsock-{os.geteuid()}"
