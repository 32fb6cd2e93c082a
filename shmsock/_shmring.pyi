# Type stub for the cffi extension module built from csrc/ by _ffi_build.py.
# cffi generates its functions and constants at build time, so they are not
# typed here: shmsock/_ring.py and shmsock/_bulkring.py, the only modules
# that import this one, annotate what they take from them.
from typing import Any

ffi: Any
lib: Any
