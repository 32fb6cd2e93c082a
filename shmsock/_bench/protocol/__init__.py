"""What every benchmark worker shares: its messages, their checks, its loops, its conversation.

A worker is one side of one way of moving messages (a shmsock call style or
a peer), in a process of its own.  Three modules, one idea each:

- ``messages``: the messages every sender sends (``Pool``) and the check
  of every message received (``Checker``), the same for every way, and the
  percentiles of round trips (``summary``);
- ``loops``: the loops of the figures, written once: a throughput window
  of a receiver or a sender, and timed round trips;
- ``wire``: the conversation with the coordinator (``rigs.py``) over a
  pipe, and the roles that serve it (``receiving``, ``sending``,
  ``echoing``, ``timing``).

A peer imports what it needs from here: ``from ..protocol import Checker,
Pool, receiving, ...``.
"""

from .loops import (
    Chunk,
    EndSender,
    Params,
    drive,
    one_by_one,
    one_by_one_async,
    receive_window,
    rounds_async,
    rounds_sync,
    send_each,
    send_window,
)
from .messages import (
    END,
    END_MARK,
    FULL_CHECK_MAX,
    MIN_SIZE,
    POOL_BYTES,
    POOL_MAX,
    QUIET,
    QUIET_GAP,
    STAMP,
    STOP,
    Checker,
    Mismatch,
    NotApplicable,
    Pool,
    end_message,
    now,
    pool_length,
    samples_of,
    step,
    summary,
)
from .wire import (
    Spec,
    Wait,
    commands,
    commands_async,
    echoing,
    echoing_async,
    entry,
    fail,
    receiving,
    receiving_async,
    sending,
    sending_async,
    timing,
    timing_async,
)

__all__ = [
    "END",
    "END_MARK",
    "FULL_CHECK_MAX",
    "MIN_SIZE",
    "POOL_BYTES",
    "POOL_MAX",
    "QUIET",
    "QUIET_GAP",
    "STAMP",
    "STOP",
    "Checker",
    "Chunk",
    "EndSender",
    "Mismatch",
    "NotApplicable",
    "Params",
    "Pool",
    "Spec",
    "Wait",
    "commands",
    "commands_async",
    "drive",
    "echoing",
    "echoing_async",
    "end_message",
    "entry",
    "fail",
    "now",
    "one_by_one",
    "one_by_one_async",
    "pool_length",
    "receive_window",
    "receiving",
    "receiving_async",
    "rounds_async",
    "rounds_sync",
    "samples_of",
    "send_each",
    "send_window",
    "sending",
    "sending_async",
    "step",
    "summary",
    "timing",
    "timing_async",
]
