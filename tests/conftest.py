"""Shared test configuration.

Every test runs with its own shmsock root (SHMSOCK_ROOT) and, when it
ends, must have left no file of shmsock's behind in it.

The suite tests the shmsock that imports: the checkout itself after
``pip install -e .`` (which builds the C core in place), or the installed
package after ``pip install .``.  ``python -m pytest`` puts the checkout
first on sys.path, where its source tree, with no C core built, would hide
the installed package; this file then takes the checkout off sys.path
before anything imports shmsock.
"""

from __future__ import annotations

import os
import signal
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent


def _built(package: Path) -> bool:
    return any((package / f"_shmring{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def _prefer_a_built_shmsock() -> None:
    """Take the checkout off sys.path if its shmsock is unbuilt and a built one is installed."""
    if "shmsock" in sys.modules or _built(CHECKOUT / "shmsock"):
        return
    others = [entry for entry in sys.path if Path(entry or ".").resolve() != CHECKOUT]
    saved = sys.path[:]
    sys.path[:] = others
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = find_spec("shmsock", None) if find_spec is not None else None
        if spec is not None:
            if any(_built(Path(p)) for p in spec.submodule_search_locations or ()):
                return  # sys.path stays without the checkout
            break
    sys.path[:] = saved  # nothing better: the import error says what to run


_prefer_a_built_shmsock()


def _let_ctrl_c_through() -> None:
    """Give SIGINT Python's handler back if this run inherited it ignored.

    A shell starts a background job (``nohup tox &``, a CI step with
    ``&``) with SIGINT ignored, and an ignored signal stays ignored in
    every process started from it: the Ctrl-C tests (tests/sockets/
    test_interrupt.py, the examples stopped with SIGINT) would wait for a
    KeyboardInterrupt that never comes.  A handled signal is reset to its
    default in a new program, where Python installs its own.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_let_ctrl_c_through()


def pytest_configure(config: pytest.Config) -> None:
    # One clear line instead of the same import error from every test file.
    try:
        import shmsock  # noqa: F401
    except ImportError as exc:
        if exc.name != "shmsock._shmring":
            raise
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    import shmsock

    return f"shmsock {shmsock.__version__} from {Path(shmsock.__file__).parent}"


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


@pytest.fixture(autouse=True)
def _spin_whatever_the_load(monkeypatch):
    """Spinning receivers in this process spin however busy the machine is.

    The spin policy does not spin while the machine has more runnable
    threads than CPUs (shmsock/_waiting.py, rule 5), so on a loaded machine
    a test of what a spin does would take the parked way instead, and the
    tests would cover different paths from run to run.  Rule 5 itself is
    tested in tests/sockets/test_spin.py.
    """
    from shmsock import _waiting

    monkeypatch.setattr(_waiting, "runnable_threads", lambda: 0)


@pytest.fixture
def userdir(shm_root):
    """Path of the per-user directory inside this test's root."""
    return shm_root / f"shmsock-{os.geteuid()}"
