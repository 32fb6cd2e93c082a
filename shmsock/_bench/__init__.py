"""Benchmarks behind ``shmsock bench``."""

# Here, not in suite.py, so the command line can list them without importing
# the benchmark itself.  KINDS is the order they run in; "fanin-nice",
# "fanin-quiet" and "sweep" are not in the default suite.
KINDS = (
    "throughput",
    "tcp",
    "large",
    "fanin",
    "fanin-nice",
    "fanin-quiet",
    "pubsub",
    "latency",
    "loaded",
    "router",
    "connect",
    "memory",
    "idle",
    "ring",
    "sweep",
)
DEFAULT_KINDS = tuple(k for k in KINDS if k not in ("fanin-nice", "fanin-quiet", "sweep"))
#: The message sizes of --sweep: 64 B to 16 MiB, powers of four.
SWEEP_SIZES = tuple(64 << (2 * i) for i in range(10))
