# Type stub for the cffi extension module built from csrc/zmqbatch.c by
# _ffi_build.py.  cffi generates its functions at build time, so they are not
# typed here: shmsock/_transport/zmq/_calls.py, the only module that imports
# this one, annotates what it takes from them.
from typing import Any

ffi: Any
lib: Any
