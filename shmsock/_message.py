"""Messages as the layers pass them, and the limits of control messages.

Below the patterns and the transports, which both hold messages: a
pattern that makes messages of its own (an XPUB's subscriptions) and a
transport that carries them use these, and ``shmsock._transport``
re-exports them as part of its contract.
"""

from __future__ import annotations

from typing import Final

from ._errors import MessageTooLarge

__all__ = ["MAX_CONTROL", "MAX_CONTROL_FRAMES", "Message", "Queued", "check_control"]

#: The most bytes a control message may carry over all its frames, and the
#: most frames (a subscription is one frame: a byte and its topic).  Every
#: transport takes a control message this large whole (shm://: a quarter of
#: its smallest ring).
MAX_CONTROL: Final = 1024
MAX_CONTROL_FRAMES: Final = 16


class Message:
    """A message with several frames, or with a non-zero aux word.

    A one-frame message with aux 0, the common case, travels as plain
    ``bytes`` instead (see :data:`Queued`).  *aux* is a 32-bit word that
    travels with the message; REQ and REP carry their request ids in it.
    """

    __slots__ = ("aux", "frames")

    def __init__(self, frames: list[bytes], aux: int) -> None:
        self.frames = frames
        self.aux = aux


#: What a pipe's ``inbox`` and ``take`` hold: a message as bytes (one frame,
#: aux 0) or as a :class:`Message`.
Queued = bytes | Message


def check_control(frames: list[bytes]) -> None:
    """Raise ValueError (no frame) or MessageTooLarge unless *frames* may be a control message."""
    if not frames:
        raise ValueError("a message needs at least one frame")
    size = sum(map(len, frames))
    if size > MAX_CONTROL or len(frames) > MAX_CONTROL_FRAMES:
        raise MessageTooLarge(
            f"a subscription, or a message an XSUB sends upstream, is at most {MAX_CONTROL}"
            f" bytes in at most {MAX_CONTROL_FRAMES} frames (this one: {size} bytes in"
            f" {len(frames)} frames)"
        )
