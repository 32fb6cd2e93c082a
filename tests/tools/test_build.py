"""The C core builds cleanly and the binding exposes what the header says."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sysconfig
import tomllib
from pathlib import Path

import pytest

import shmsock
from shmsock._shmring import lib

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
# The binding layer's own C (the spin), compiled into the same module.
BINDING_C = [ROOT / "shmsock" / "_spin.c"]


@pytest.mark.parametrize(
    "source", sorted(p.name for p in CSRC.glob("*.c")) + [str(p) for p in BINDING_C]
)
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
            f"-I{ROOT / 'shmsock'}",
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
    spin = dict(
        re.findall(r"#define (SHMSOCK_\w+) (-?\w+)", (ROOT / "shmsock" / "_spin.h").read_text())
    )
    assert len(spin) == 3
    for name, value in spin.items():
        assert getattr(lib, name) == int(value, 0), name


def test_the_version_is_written_once_and_read_without_importing():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "shmsock.__version__"}
    # setuptools takes the attribute from the source without importing the
    # package (which needs the C core the build is making) only when it is
    # assigned a literal string at the top of the module.
    tree = ast.parse((ROOT / "shmsock" / "__init__.py").read_text())
    literals = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    assert literals == [shmsock.__version__]
    assert importlib.metadata.version("shmsock") == shmsock.__version__
