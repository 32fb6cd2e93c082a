"""The test commands work from a checkout, and an unbuilt source tree says what to run.

After ``pip install .`` the checkout's ``shmsock/`` is source only, with no
C core; ``python -m pytest`` puts the checkout first on sys.path, where it
would hide the installed package.  These tests build that situation from
copies: an "installed" shmsock (the package under test, C core included)
on PYTHONPATH, and a checkout whose ``shmsock/`` has no ``_shmring``.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shmsock
from shmsock import _ringcore

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(shmsock.__file__).resolve().parent

PROBE = """\
from pathlib import Path

import shmsock
from shmsock._shmring import lib


def test_the_c_core_is_there():
    assert lib.SHM_RING_HEADER_SIZE > 0
    Path("imported-from").write_text(str(Path(shmsock.__file__).parent))
"""


def _no_core(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n.startswith("_shmring.") and not n.endswith(".pyi")} | {
        "__pycache__"
    }


def _checkout(tmp_path: Path, *, built: bool) -> Path:
    """A checkout-like tree: the package, the suite's conftest, pyproject and one probe test."""
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__") if built else _no_core
    shutil.copytree(PACKAGE if built else ROOT / "shmsock", checkout / "shmsock", ignore=ignore)
    (checkout / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", checkout / "tests")
    (checkout / "tests" / "test_probe.py").write_text(PROBE)
    shutil.copy(ROOT / "pyproject.toml", checkout)
    return checkout


def _installed(tmp_path: Path) -> Path:
    """A site directory holding a built copy of the package under test."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "shmsock", ignore=shutil.ignore_patterns("__pycache__"))
    assert _ringcore._built(site / "shmsock")
    return site


def _run(command: list[str], cwd: Path, site: Path | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONSAFEPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


# An editable install's finder (on sys.meta_path) would supply the C core
# that the copied source tree lacks; the import as a plain install sees it
# has only the standard finders.
IMPORT_WITHOUT_EDITABLE_FINDERS = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if f.__module__.startswith("_frozen_importlib")]
import shmsock
"""

PYTEST_SCRIPT = str(Path(sys.executable).with_name("pytest"))

COMMANDS = {
    "python -m pytest": [sys.executable, "-m", "pytest"],
    "python -m pytest -x -q tests": [sys.executable, "-m", "pytest", "-x", "-q", "tests"],
    "pytest": [PYTEST_SCRIPT],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_after_pip_install_the_suite_runs_against_the_installed_package(tmp_path, command):
    assert Path(PYTEST_SCRIPT).is_file()
    checkout = _checkout(tmp_path, built=False)
    site = _installed(tmp_path)
    result = _run(COMMANDS[command], checkout, site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert (checkout / "imported-from").read_text() == str(site / "shmsock")


def test_after_an_editable_install_the_suite_runs_against_the_checkout(tmp_path):
    checkout = _checkout(tmp_path, built=True)
    site = _installed(tmp_path)
    result = _run([sys.executable, "-m", "pytest"], checkout, site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (checkout / "imported-from").read_text() == str(checkout / "shmsock")


def test_importing_a_source_tree_that_hides_an_installed_shmsock_says_what_to_run(tmp_path):
    checkout = _checkout(tmp_path, built=False)
    site = _installed(tmp_path)
    result = _run([sys.executable, "-c", IMPORT_WITHOUT_EDITABLE_FINDERS], checkout, site)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: shmsock's C core"), result.stderr
    assert f"is not built in {checkout / 'shmsock'}" in last
    assert f"hides the shmsock installed in {site / 'shmsock'}" in last
    assert "`python -P`" in last
    assert "`pip install -e .`" in last


def test_a_source_tree_with_nothing_installed_says_how_to_build(tmp_path, monkeypatch):
    checkout = _checkout(tmp_path, built=False)
    # Only the standard path finder, so that no install of shmsock (an
    # editable one's finder included) is found beside the checkout.
    monkeypatch.setattr(sys, "meta_path", [importlib.machinery.PathFinder])
    message = _ringcore._not_built(checkout / "shmsock", [str(checkout)], ImportError("no"))
    assert f"is not built in {checkout / 'shmsock'}, a source tree." in message
    assert "`pip install -e .`" in message
    assert "`pip install .`" in message


def test_a_core_that_does_not_load_stops_pytest_with_one_message(tmp_path):
    checkout = _checkout(tmp_path, built=False)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (checkout / "shmsock" / f"_shmring{suffix}").write_bytes(b"not an ELF file")
    result = _run([sys.executable, "-c", IMPORT_WITHOUT_EDITABLE_FINDERS], checkout, None)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: shmsock's C core"), result.stderr
    assert "does not load" in last
    assert "rebuild it" in last

    result = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], checkout, None)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "ERROR: shmsock's C core" in result.stderr
    assert "does not load" in result.stderr


def test_a_run_started_with_ctrl_c_ignored_still_runs_the_ctrl_c_tests():
    # `nohup tox &` and CI steps run with `&` start with SIGINT ignored,
    # which every child inherits: the Ctrl-C tests hung until conftest.py
    # gave SIGINT its handler back.
    start = (
        "import os, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
    )
    interrupt = "tests/sockets/test_interrupt.py"
    test = f"{interrupt}::test_ctrl_c_in_a_blocked_recv_interrupts_it_like_a_cancel"
    done = subprocess.run(
        [sys.executable, "-c", start, "-m", "pytest", "-p", "no:cacheprovider", "-q", test],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
