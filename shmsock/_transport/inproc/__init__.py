"""``inproc://NAME``: sockets of one process and one ``trio.run``, in memory.

Like ZeroMQ's ``inproc://``: no shared memory, no descriptor, no system
call.  A connection is two queues of whole messages, one per direction.
Writing appends to the reader's queue; taking pops it.  The semantics are
those of ``shm://`` (see the rules of ``shmsock._transport``):

- **Either order.**  A process-global registry maps NAME to its binder.  A
  connect made before the bind waits in the registry and attaches when the
  bind comes, and again after each new bind, as a ``shm://`` connector
  does.  A second bind of a live name raises AddressInUse.
- **One trio.run.**  Sockets of different runs never connect: binding a
  name bound in another live run raises AddressInUse, connecting to one
  raises ConnectionRefusedError, and a connect waiting for its binder
  ignores binds made in other runs.  A run that ended without closing its
  sockets leaves nothing behind: its names are taken over.
- **Backpressure.**  Each queue holds at most the writer's ``ring_size``,
  each message charged what it would take of a ``shm://`` ring (24 bytes
  a frame more, rounded up to 8), so ``ring_size`` buys as many messages
  on either transport.  A larger message goes when the queue is empty, so
  nothing is too large to send but ``max_msg_size``.
- **Wake-ups on edges.**  A reader that found its queue empty marks it;
  the next write says "wake" (``try_write`` returns 1, ``offer`` reports it
  itself) and the reader's socket hears ``Events.ready(recv=True)``.  A
  writer refused for room marks the queue; the next take reports
  ``ready(send=True)`` to the writer's socket.  The queues call the *other*
  socket's Events directly: that is a different socket, in the same thread.
- **Close loses nothing sent.**  When a socket closes, its peers hear
  ``gone`` and keep taking what it sent; each pipe reports ``finished`` once
  drained.  What the closing socket had not taken itself is lost, and
  counted as dropped.
"""

from ._transport import InprocTransport

__all__ = ["InprocTransport"]
