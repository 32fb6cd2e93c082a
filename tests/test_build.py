"""The C core builds cleanly and the binding exposes what the header says."""

from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path

import pytest

from shmsock._shmring import lib

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"


@pytest.mark.parametrize("source", sorted(p.name for p in CSRC.glob("*.c")))
def test_c_source_compiles_without_warnings(tmp_path, source):
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    result = subprocess.run(
        [
            cc,
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            f"-I{CSRC}",
            "-c",
            str(CSRC / source),
            "-o",
            str(tmp_path / "out.o"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_header_constants_reach_the_binding():
    header = (CSRC / "shmring.h").read_text()
    defines = dict(re.findall(r"#define (SHM_\w+) (-?\w+)", header))
    assert len(defines) > 20
    for name, value in defines.items():
        assert getattr(lib, name) == int(value, 0), name
