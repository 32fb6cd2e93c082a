# The build is configured in pyproject.toml.  This file exists only because
# cffi's setuptools hook (cffi_modules) is a setup() keyword: it compiles
# csrc/ into the private extension modules shmsock._shmring and
# shmsock._zmqbatch.
from setuptools import setup

setup(
    cffi_modules=[
        "shmsock/_ffi_build.py:ffibuilder",
        "shmsock/_ffi_build.py:zmqbuilder",
    ]
)
