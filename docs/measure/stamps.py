"""Where a parked round trip's time goes (docs/performance.md, issue 23).

    python stamps.py rep 3000 a & sleep 1; python stamps.py req 3000 a

Stamps CLOCK_MONOTONIC into each message; each side logs, per message received:
epoll_wait return (Trio's), wait_readable return (task resumed), recv return."""
import sys, time, struct, trio, statistics, shmsock
from trio._core import _io_epoll
role, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
EP = "shm://lat-stamp-" + tag
now = time.monotonic_ns
last = {"epoll": 0, "wait": 0}
orig_get = _io_epoll.EpollIOManager.get_events
def get_events(self, timeout):
    ev = orig_get(self, timeout)
    if ev:
        last["epoll"] = now()
    return ev
_io_epoll.EpollIOManager.get_events = get_events
from shmsock._transport.shm import _connection
orig_wake = _connection.Connection.wake
def wake(self):
    orig_wake(self)
    last["rang"] = now()
_connection.Connection.wake = wake
orig_ring = _connection.Connection.ring
def ring(self, what):
    orig_ring(self, what)
    last["rang"] = now()
_connection.Connection.ring = ring
blocks = []
def get_events2(self, timeout):
    if timeout > 0 and last.get("rang"):
        blocks.append(now() - last["rang"]); last["rang"] = 0
    return get_events(self, timeout)
_io_epoll.EpollIOManager.get_events = get_events2
orig_wr = trio.lowlevel.wait_readable
async def wait_readable(fd):
    try:
        await orig_wr(fd)
    finally:
        last["wait"] = now()
trio.lowlevel.wait_readable = wait_readable
rows = []
async def main():
    sock = shmsock.socket(shmsock.REP if role == "rep" else shmsock.REQ)
    async with sock as s:
        if role == "rep":
            s.bind(EP)
        else:
            s.connect(EP)
        pad = b"x" * 1016
        for i in range(n + 200):
            if role == "req":
                await s.send(struct.pack("q", now()) + pad)
            m = await s.recv()
            t = now()
            t0, = struct.unpack_from("q", m)
            if i >= 200:
                rows.append((last["epoll"] - t0, last["wait"] - t0, t - t0))
            if role == "rep":
                await s.send(struct.pack("q", now()) + pad)
    # only count rows where the wake came after the stamp (a parked wait)
    parked = [r for r in rows if r[0] > 0 and r[1] >= r[0]]
    def med(i): return statistics.median(r[i] for r in parked) / 1000
    print(f"{role}: {len(parked)}/{len(rows)} parked; from the peer's stamp (before its send) to: "
          f"epoll_wait returns {med(0):.1f} us, task resumes {med(1):.1f} us, recv returns {med(2):.1f} us")
trio.run(main)
print(f"{role}: doorbell written -> this process blocks in epoll_wait: median {statistics.median(blocks)/1000:.1f} us over {len(blocks)}")
