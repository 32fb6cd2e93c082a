"""tcp:// on loopback: shmsock's sockets over libzmq beside pyzmq's, on the same wire.

The ways of the ``tcp`` section reuse the roles of ``shm.py`` and
``pyzmq.py``, given a ``tcp://`` endpoint instead of their own: shmsock's
sockets then speak through libzmq (issue 21), and pyzmq does what it does
anyway.  Mixing a role of each (shmsock receiving from pyzmq, and the
reverse) is the same ZMTP on the wire.  Both sides get libzmq's high-water
marks as the pyzmq peer sets them.
"""

from __future__ import annotations

import socket
from typing import Any

from .pyzmq import queue_length


def shared(ctx: Any, params: dict[str, Any], size: int) -> dict[str, Any]:
    """A loopback endpoint on a port the OS hands out, for both processes of a rig."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return {"endpoint": f"tcp://127.0.0.1:{port}", "hwm": queue_length(size)}
