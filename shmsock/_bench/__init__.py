"""Benchmarks behind ``shmsock bench``."""

# Here, not in suite.py, so the command line can list them without importing
# the benchmark itself.  "fanin-nice" and "fanin-quiet" are not in the
# default suite.
DEFAULT_KINDS = ("throughput", "large", "fanin", "latency", "connect", "memory", "idle", "ring")
KINDS = (*DEFAULT_KINDS, "fanin-nice", "fanin-quiet")
