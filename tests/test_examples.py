"""Every example runs, as its own processes, and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pipeline():
    out = run_example("pipeline.py")
    assert "ventilator: sent 100 tasks" in out
    assert "sink: 100 results, sum of squares 328350" in out
    done = [int(line.split()[3]) for line in out.splitlines() if line.startswith("worker")]
    assert len(done) == 3, out
    assert sum(done) == 100
    assert all(n > 0 for n in done)  # every worker got work


def test_pair():
    out = run_example("pair.py")
    assert out.splitlines() == [f"parent got pong {n}" for n in range(5)]


def test_rpc():
    out = run_example("rpc.py")
    assert "add(2, 3) = 5" in out
    assert "sqrt(2) = 1.414214" in out
    assert "upper('shm') = SHM" in out
    assert "sqrt(-1) failed: ValueError('math domain error')" in out


@pytest.mark.parametrize("name", ["pipeline.py", "pair.py", "rpc.py"])
def test_example_has_a_docstring_with_its_command(name):
    text = (EXAMPLES / name).read_text()
    assert text.startswith('"""')
    assert f"python examples/{name}" in text
