"""Compile the C test programs of tests/ring/c/ against the ring in csrc/.

``SHMSOCK_SANITIZE`` (say ``address,undefined``, as ``tox -e asan`` sets
it) builds them with those sanitizers, like the extension module.  The
compiler never runs with the sanitizer runtime preloaded into it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
SANITIZE = os.environ.get("SHMSOCK_SANITIZE", "")


def cc() -> str:
    return (sysconfig.get_config_var("CC") or "cc").split()[0]


def clean_env() -> dict[str, str]:
    """The environment without a preloaded sanitizer runtime (tox -e asan sets one)."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def sanitizer_flags(sanitize: str) -> list[str]:
    if not sanitize:
        return []
    return [
        f"-fsanitize={sanitize}",
        "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=all",
        "-g",
    ]


@functools.cache
def can_sanitize(sanitize: str) -> bool:
    """Whether the compiler builds and links a program with -fsanitize=*sanitize*."""
    probe = subprocess.run(
        [cc(), f"-fsanitize={sanitize}", "-x", "c", "-", "-o", os.devnull],
        input="int main(void) { return 0; }\n",
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    return probe.returncode == 0


@functools.cache
def accepts(*flags: str) -> bool:
    """Whether the compiler takes *flags* without a warning."""
    probe = subprocess.run(
        [cc(), "-Werror", *flags, "-c", "-x", "c", "-", "-o", os.devnull],
        input="int x;\n",
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    return probe.returncode == 0


def compile_c(
    exe: Path, program: str, *, sanitize: str = SANITIZE, extra: tuple[str, ...] = ()
) -> Path:
    """Build tests/ring/c/*program* with the ring into *exe*, warnings as errors."""
    cmd = [
        cc(),
        "-std=c11",
        "-O1" if sanitize else "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        *sanitizer_flags(sanitize),
        f"-I{CSRC}",
        str(ROOT / "tests" / "ring" / "c" / program),
        str(CSRC / "shmring.c"),
        str(CSRC / "shmbulk.c"),
        str(CSRC / "crc32c.c"),
        "-o",
        str(exe),
        *extra,
    ]
    subprocess.run(cmd, check=True, env=clean_env())
    return exe
