"""Run pytest against a sanitized build of shmsock (``tox -e asan``).

Python itself is not instrumented, so AddressSanitizer's runtime has to be
in the process before anything else: this asks the C compiler where the
runtime is and runs ``python -m pytest ARGS`` with it in LD_PRELOAD (child
processes inherit it).  It refuses to run when the shmsock that pytest
will import is not a sanitized build, which would pass without checking
anything.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from helpers import cbuild


def asan_runtime() -> str:
    found = subprocess.run(
        [cbuild.cc(), "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found):
        sys.exit(f"{cbuild.cc()} has no AddressSanitizer runtime (libasan.so)")
    return found


def main() -> None:
    spec = importlib.util.find_spec("shmsock")  # finds it without importing it
    if spec is None or spec.origin is None:
        sys.exit("shmsock is not installed")
    modules = sorted(Path(spec.origin).parent.glob("_shmring*.so"))
    if not modules or b"libasan.so" not in modules[0].read_bytes():
        sys.exit(
            f"{Path(spec.origin).parent} has no sanitized _shmring module: install shmsock"
            " with SHMSOCK_SANITIZE=address,undefined"
        )
    env = dict(os.environ, LD_PRELOAD=asan_runtime())
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    # -P: import shmsock from where it is installed, not from the checkout.
    os.execve(sys.executable, [sys.executable, "-P", "-m", "pytest", *sys.argv[1:]], env)


if __name__ == "__main__":
    main()
