"""A peer the test drives one command at a time, in another process (see procs.py).

For the tests of unbind and disconnect, where the test decides when each
side sends, reads and looks at its peers.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import trio

import shmsock


def commanded(conn: Connection, kind: str, endpoint: str, bind: bool) -> None:
    """A socket of *kind* that binds or connects *endpoint*, reports "ready",
    then answers each command from the test:

    - ``("send", tag, count)``: send b"<tag>:<i>" for i < count; "sent".
    - ``("recv", count)``: receive that many messages (30 s at most); them.
    - ``("wait_peers", count, seconds)``: wait up to *seconds* for *count*
      live peers; the number of live peers then.
    - ``("wait_gone",)``: wait (30 s at most) until no live peer is left; "gone".
    - ``("exit",)``: close (lingering without bound) and exit.
    """

    async def main() -> None:
        async with shmsock.socket(shmsock.SocketType[kind], linger=None) as sock:
            if bind:
                sock.bind(endpoint)
            else:
                sock.connect(endpoint)
            conn.send("ready")
            while True:
                order = await trio.to_thread.run_sync(conn.recv)
                what, args = order[0], order[1:]
                if what == "exit":
                    break
                if what == "send":
                    tag, count = args
                    for i in range(count):
                        await sock.send(f"{tag}:{i}".encode())
                    conn.send("sent")
                elif what == "recv":
                    with trio.fail_after(30):
                        conn.send([await sock.recv() for _ in range(args[0])])
                elif what == "wait_peers":
                    count, seconds = args
                    with trio.move_on_after(seconds):
                        await sock.wait_peers(count)
                    conn.send(sock.peer_count)
                elif what == "wait_gone":
                    with trio.fail_after(30):
                        while sock.peer_count:  # noqa: ASYNC110 (the doorbell's end-of-file)
                            await trio.sleep(0.005)
                    conn.send("gone")
                else:
                    raise ValueError(f"unknown command {order!r}")

    trio.run(main)
