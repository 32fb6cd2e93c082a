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
# The binding layer's own C, linked into shmsock._shmring: the spin, a
# waiting mechanism, which the ring in csrc/ must not have.
BINDING = ROOT / "shmsock"
SPIN_SOURCES = ["_spin.c"]

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
# this module.  The one call that runs long, the spin (shmsock/_spin.c),
# releases the GIL itself (SPIN_PREAMBLE), so that other threads (the
# exporter's) run meanwhile.
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


SPIN_PREAMBLE = """
#include "_spin.h"

int shmsock_spin(shm_consumer *const *rx, shm_producer *const *tx, const int *fds,
                 size_t n, uint64_t max_ns, uint64_t *spent_ns)
{
    PyThreadState *save = PyEval_SaveThread();
    int rc = shmsock_spin_rings(rx, tx, fds, n, max_ns, spent_ns);
    PyEval_RestoreThread(save);
    return rc;
}
"""


def _make(
    module: str,
    header: str,
    sources: list[str],
    preamble: str,
    relative: bool,
    binding: tuple[str, list[str]] | None = None,
) -> FFI:
    """A builder for *module*; *binding* is a header and sources in shmsock/ to link in."""

    def path(p: pathlib.Path) -> str:
        return os.path.relpath(p, ROOT) if relative else str(p)

    sanitize_compile, sanitize_link = sanitizer_args(os.environ.get("SHMSOCK_SANITIZE", ""))
    builder = FFI()
    builder.cdef(read_cdef(CSRC / header))
    paths = [path(CSRC / name) for name in sources]
    # The ring's header includes shm_internal.h's layout constants too.
    depends = [path(CSRC / h) for h in (header, *HEADERS.get(header, ()))]
    include_dirs = [path(CSRC)]
    if binding is not None:
        builder.cdef(read_cdef(BINDING / binding[0]))
        paths += [path(BINDING / name) for name in binding[1]]
        depends.append(path(BINDING / binding[0]))
        include_dirs.append(path(BINDING))
    builder.set_source(
        module,
        preamble,
        sources=paths,
        include_dirs=include_dirs,
        depends=depends,
        extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", *sanitize_compile],
        extra_link_args=sanitize_link,
    )
    return builder


def make_builder(*, relative: bool) -> FFI:
    """The FFI builder; setuptools wants paths relative to the project root."""
    return _make(
        "shmsock._shmring",
        "shmring.h",
        SOURCES,
        PREAMBLE + SPIN_PREAMBLE,
        relative,
        binding=("_spin.h", SPIN_SOURCES),
    )


def make_zmq_builder(*, relative: bool) -> FFI:
    """The FFI builder of ``shmsock._zmqbatch`` (libzmq's calls never block either)."""
    preamble = PREAMBLE.replace("shmring.h", "zmqbatch.h")
    return _make("shmsock._zmqbatch", "zmqbatch.h", ["zmqbatch.c"], preamble, relative)


ffibuilder = make_builder(relative=pathlib.Path.cwd() == ROOT)
zmqbuilder = make_zmq_builder(relative=pathlib.Path.cwd() == ROOT)
