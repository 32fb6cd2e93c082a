"""Build script for the private cffi modules ``shmsock._shmring`` and ``shmsock._zmqbatch``.

It compiles the C ring in ``csrc/`` in API (out-of-line) mode.  The
declarations given to cffi are read from ``csrc/shmring.h`` between its
CFFI markers, so the header stays the single source of truth.  The same
goes for ``csrc/zmqbatch.h``, libzmq's batch calls for ``tcp://`` and
``ipc://``, built into a module of their own: they need neither libzmq's
headers nor libzmq at build time (libzmq's functions are handed to them at
run time), and a program that never uses ``tcp://`` never loads them.

Run by setuptools through ``cffi_modules`` (see ``setup.py``); for
development, ``pip install -e .`` builds the module in place.

``SHMSOCK_SANITIZE`` set to a list of sanitizers (``address,undefined``,
as ``tox -e asan`` does) builds an instrumented module for testing only:
it needs the sanitizer's runtime preloaded into Python (see
``tests/run_sanitized.py``), so never ship or install one in place.
"""

from __future__ import annotations

import os
import pathlib
import re

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
SOURCES = ["shmring.c", "shmbulk.c", "crc32c.c"]
#: Headers a module's sources include besides its own (rebuild when they change).
HEADERS = {"shmring.h": ("shm_internal.h",)}

_MARKERS = re.compile(r"/\* CFFI-BEGIN \*/(.*?)/\* CFFI-END \*/", re.S)


def read_cdef(header: pathlib.Path) -> str:
    """Return the cffi-readable part of *header* (between its markers)."""
    match = _MARKERS.search(header.read_text())
    if match is None:
        raise RuntimeError(f"{header}: no CFFI-BEGIN/CFFI-END markers")
    return match.group(1)


def sanitizer_args(sanitize: str) -> tuple[list[str], list[str]]:
    """Extra (compile, link) arguments for a build with -fsanitize=*sanitize*."""
    if not sanitize:
        return [], []
    flag = f"-fsanitize={sanitize}"
    # -O1 keeps the reports' stacks readable; no recovery: the first report fails.
    return [flag, "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", "-O1", "-g"], [flag]


# cffi's wrappers release the GIL and save and restore errno around every
# call.  The ring's functions never block, never touch errno and return in
# well under a microsecond, so that bracket cost more than the call itself:
# about 130 ns of the 180 ns a one-argument call took on the 2-core CI
# machine (docs/performance.md).  The wrappers come after this preamble in
# the generated source, so defining the bracket away here keeps the GIL
# held.  Anything added to csrc/ that can block must not be called through
# this module.
PREAMBLE = """
#include "shmring.h"

#undef Py_BEGIN_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#undef Py_END_ALLOW_THREADS
#define Py_END_ALLOW_THREADS }
#undef _cffi_restore_errno
#define _cffi_restore_errno() ((void)0)
#undef _cffi_save_errno
#define _cffi_save_errno() ((void)0)
"""


def _make(module: str, header: str, sources: list[str], preamble: str, relative: bool) -> FFI:
    def path(p: pathlib.Path) -> str:
        return os.path.relpath(p, ROOT) if relative else str(p)

    sanitize_compile, sanitize_link = sanitizer_args(os.environ.get("SHMSOCK_SANITIZE", ""))
    builder = FFI()
    builder.cdef(read_cdef(CSRC / header))
    builder.set_source(
        module,
        preamble,
        sources=[path(CSRC / name) for name in sources],
        include_dirs=[path(CSRC)],
        # The ring's header includes shm_internal.h's layout constants too.
        depends=[path(CSRC / h) for h in (header, *HEADERS.get(header, ()))],
        extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", *sanitize_compile],
        extra_link_args=sanitize_link,
    )
    return builder


def make_builder(*, relative: bool) -> FFI:
    """The FFI builder; setuptools wants paths relative to the project root."""
    return _make("shmsock._shmring", "shmring.h", SOURCES, PREAMBLE, relative)


def make_zmq_builder(*, relative: bool) -> FFI:
    """The FFI builder of ``shmsock._zmqbatch`` (libzmq's calls never block either)."""
    preamble = PREAMBLE.replace("shmring.h", "zmqbatch.h")
    return _make("shmsock._zmqbatch", "zmqbatch.h", ["zmqbatch.c"], preamble, relative)


ffibuilder = make_builder(relative=pathlib.Path.cwd() == ROOT)
zmqbuilder = make_zmq_builder(relative=pathlib.Path.cwd() == ROOT)
