"""Plain pyzmq peers, for the tcp:// tests to run in other OS processes (see procs.py).

Each function takes the pipe to the test, the endpoint and whether to bind
it first, then its own arguments.  It makes one pyzmq socket
of a libzmq type (by name: "PULL", "REP", ...), binds or connects it,
reports ``("ready", endpoint)`` with the endpoint libzmq bound (the port a
``:0`` got), and then does its part.  *options* are pyzmq socket options by
constant name, e.g. ``{"REQ_CORRELATE": 1, "CURVE_SERVER": 1}``.  Nothing
here uses shmsock: these are the ZeroMQ programs shmsock must talk to.
"""

from __future__ import annotations

import hashlib
import os
from multiprocessing.connection import Connection
from typing import Any

import zmq


def _socket(kind: str, endpoint: str, bind: bool, options: dict[str, Any] | None) -> Any:
    ctx = zmq.Context()
    s = ctx.socket(getattr(zmq, kind))
    s.setsockopt(zmq.LINGER, 2000)
    for name, value in (options or {}).items():
        s.setsockopt(getattr(zmq, name), value)
    if endpoint.startswith("tcp://[") or (options or {}).get("IPV6"):
        s.setsockopt(zmq.IPV6, 1)
    if bind:
        s.bind(endpoint)
        endpoint = s.getsockopt(zmq.LAST_ENDPOINT).decode()
    else:
        s.connect(endpoint)
    return s, endpoint


def _until_told(conn: Connection, s: Any, handle: Any) -> None:
    """Serve *handle* whenever *s* is readable, until the test sends anything."""
    poller = zmq.Poller()
    poller.register(s, zmq.POLLIN)
    while not conn.poll():
        if poller.poll(20):
            handle()


def _view(frames: list[bytes], digest: bool) -> Any:
    if digest:
        return [(len(f), hashlib.sha256(f).hexdigest()) for f in frames]
    return frames


def sink(
    conn: Connection,
    endpoint: str,
    bind: bool,
    kind: str,
    count: int,
    options: dict[str, Any] | None = None,
    digest: bool = False,
) -> None:
    """Receive *count* messages and report them (as digests, with *digest*)."""
    s, endpoint = _socket(kind, endpoint, bind, options)
    conn.send(("ready", endpoint))
    got = [_view(s.recv_multipart(), digest) for _ in range(count)]
    conn.send(("got", got))
    conn.recv()
    s.close(0)


def collect(
    conn: Connection, endpoint: str, bind: bool, kind: str, options: dict[str, Any] | None = None
) -> None:
    """Receive until the message b"END" (not reported), then report everything before it."""
    s, endpoint = _socket(kind, endpoint, bind, options)
    conn.send(("ready", endpoint))
    got: list[list[bytes]] = []
    while (frames := s.recv_multipart()) != [b"END"]:
        got.append(frames)
    conn.send(("got", got))
    conn.recv()
    s.close(0)


def source(
    conn: Connection,
    endpoint: str,
    bind: bool,
    kind: str,
    messages: list[list[bytes]],
    options: dict[str, Any] | None = None,
    wait: bool = False,
) -> None:
    """Send *messages* (lists of frames), say "sent", and stay until told.

    With *wait*, send only once the test says "go".
    """
    s, endpoint = _socket(kind, endpoint, bind, options)
    conn.send(("ready", endpoint))
    if wait:
        conn.recv()
    for frames in messages:
        s.send_multipart(frames)
    conn.send("sent")
    conn.recv()
    s.close()
    s.context.term()  # waits (for up to LINGER) until libzmq has sent it all


def big_source(conn: Connection, endpoint: str, bind: bool, sizes: list[int]) -> None:
    """PUSH one message of each size, of random bytes; report their digests."""
    s, endpoint = _socket("PUSH", endpoint, bind, None)
    conn.send(("ready", endpoint))
    digests = []
    for size in sizes:
        data = os.urandom(size)
        digests.append(_view([data], True))
        s.send(data)
    conn.send(("sent", digests))
    conn.recv()
    s.close()


def echo(
    conn: Connection, endpoint: str, bind: bool, kind: str, options: dict[str, Any] | None = None
) -> None:
    """Answer each message with b"re:" before each body frame, until told.

    A REP answers its request; a ROUTER keeps the envelope (everything up
    to the empty frame) and answers the body; PAIR and DEALER answer as REP.
    """
    s, endpoint = _socket(kind, endpoint, bind, options)
    conn.send(("ready", endpoint))
    router = kind == "ROUTER"

    def answer() -> None:
        while True:
            try:
                frames = s.recv_multipart(zmq.DONTWAIT)
            except zmq.Again:
                return
            if router:
                i = frames.index(b"")
                s.send_multipart(frames[: i + 1] + [b"re:" + f for f in frames[i + 1 :]])
            else:
                s.send_multipart([b"re:" + f for f in frames])

    _until_told(conn, s, answer)
    conn.recv()
    s.close(0)


def requester(
    conn: Connection,
    endpoint: str,
    bind: bool,
    count: int,
    options: dict[str, Any] | None = None,
) -> None:
    """A REQ: *count* requests b"q<i>", each answered before the next; report the replies."""
    s, endpoint = _socket("REQ", endpoint, bind, options)
    conn.send(("ready", endpoint))
    replies = []
    for i in range(count):
        s.send_multipart([b"q%d" % i, b"part2"] if i % 3 == 2 else [b"q%d" % i])
        replies.append(s.recv_multipart())
    conn.send(("replies", replies))
    conn.recv()
    s.close(0)


def stubborn_requester(
    conn: Connection, endpoint: str, bind: bool, options: dict[str, Any]
) -> None:
    """A REQ_RELAXED REQ that gives up on its first request and sends a second.

    With REQ_CORRELATE, the reply to the first (sent late) must never be
    taken for the second's.  Reports the reply it took.
    """
    s, endpoint = _socket("REQ", endpoint, bind, options)
    conn.send(("ready", endpoint))
    s.send(b"first")
    conn.recv()  # the test lets the first go unanswered for now
    s.send(b"second")
    conn.send("resent")
    conn.send(("reply", s.recv_multipart()))
    conn.recv()
    s.close(0)


def hold(
    conn: Connection, endpoint: str, bind: bool, kind: str, options: dict[str, Any] | None = None
) -> None:
    """Receive one message, report it, and never answer: a REP that holds a request."""
    s, endpoint = _socket(kind, endpoint, bind, options)
    conn.send(("ready", endpoint))
    conn.send(("got", s.recv_multipart()))
    conn.recv()
    s.close(0)


def idle(
    conn: Connection, endpoint: str, bind: bool, kind: str, options: dict[str, Any] | None = None
) -> None:
    """Bind or connect, and read nothing until told; then report all that came."""
    s, endpoint = _socket(kind, endpoint, bind, options)
    conn.send(("ready", endpoint))
    conn.recv()
    got = []
    while s.poll(500):
        got.append(s.recv_multipart())
    conn.send(("got", got))
    conn.recv()
    s.close(0)


def burst(
    conn: Connection,
    endpoint: str,
    bind: bool,
    kind: str,
    messages: list[list[bytes]],
    options: dict[str, Any] | None = None,
) -> None:
    """Send *messages* as soon as a peer is there, close, and exit at once.

    The close waits (LINGER) until libzmq has written them all: the peer
    then sees them and the end of the connection nearly together.
    """
    s, endpoint = _socket(kind, endpoint, bind, options)
    s.setsockopt(zmq.LINGER, -1)
    conn.send(("ready", endpoint))
    for frames in messages:
        s.send_multipart(frames)  # a bound PUSH waits here for its first peer
    s.close()
    s.context.term()
    conn.send("sent")


# -- PUB/SUB and XPUB/XSUB peers ---------------------------------------------------------
# Over tcp:// a subscription reaches a publisher some time after the
# connection (libzmq's slow joiner): these publishers send probes, [topic,
# b"probe"], until the test says "go", and these subscribers report
# "flowing" at their first probe, so that the test knows when data goes
# through and checks that nothing after it is lost.


def probing_publisher(
    conn: Connection,
    endpoint: str,
    bind: bool,
    kind: str,
    topics: list[bytes],
    count: int,
    options: dict[str, Any] | None = None,
) -> None:
    """Send [t, b"probe"] for each of *topics* until told; then *count* rounds of
    [t, b"%d"], and [t, b"END"] for each; say "sent" and stay until told.

    An XPUB reports each subscription message it receives as ("upstream", msg)."""
    s, endpoint = _socket(kind, endpoint, bind, options)
    conn.send(("ready", endpoint))
    while not conn.poll(0.005):
        for t in topics:
            s.send_multipart([t, b"probe"])
        if kind == "XPUB":
            while s.poll(0):
                conn.send(("upstream", s.recv()))
    conn.recv()
    for i in range(count):
        for t in topics:
            s.send_multipart([t, b"%d" % i])
    for t in topics:
        s.send_multipart([t, b"END"])
    conn.send("sent")
    conn.recv()
    s.close()
    s.context.term()


def collecting_subscriber(
    conn: Connection,
    endpoint: str,
    bind: bool,
    kind: str,
    topics: list[bytes],
    ends: int,
    options: dict[str, Any] | None = None,
) -> None:
    """Subscribe to *topics* (a SUB by option, an XSUB by message); report "flowing"
    at the first probe; collect what is not a probe until *ends* messages [t, b"END"]
    came; report ("got", those messages); stay until told, then leave."""
    s, endpoint = _socket(kind, endpoint, bind, options)
    for t in topics:
        if kind == "XSUB":
            s.send(b"\x01" + t)
        else:
            s.setsockopt(zmq.SUBSCRIBE, t)
    conn.send(("ready", endpoint))
    flowing = False
    got: list[list[bytes]] = []
    while ends:
        frames = s.recv_multipart()
        if frames[-1] == b"probe":
            if not flowing:
                flowing = True
                conn.send("flowing")
            continue
        if frames[-1] == b"END":
            ends -= 1
            continue
        got.append(frames)
    conn.send(("got", got))
    conn.recv()
    s.close(0)


def upstream_listener(conn: Connection, endpoint: str, bind: bool, options: dict[str, Any]) -> None:
    """An XPUB: report every message its subscribers send upstream until b"STOP" came
    (not reported), as ("upstream", [messages]); stay until told."""
    s, endpoint = _socket("XPUB", endpoint, bind, options)
    conn.send(("ready", endpoint))
    got: list[bytes] = []
    while (msg := s.recv()) != b"STOP":
        got.append(msg)
    conn.send(("upstream", got))
    conn.recv()
    s.close(0)


def upstream_sender(
    conn: Connection, endpoint: str, bind: bool, messages: list[list[bytes]]
) -> None:
    """An XSUB: send *messages* (lists of frames) upstream, say "sent", stay until told."""
    s, endpoint = _socket("XSUB", endpoint, bind, None)
    conn.send(("ready", endpoint))
    for frames in messages:
        s.send_multipart(frames)
    conn.send("sent")
    conn.recv()
    s.close()
