"""Round trips REQ->REP between two processes (docs/performance.md, issue 23).

Run the REP first, then the REQ, with the same N, spin_us and tag:
    python roundtrip.py rep 3000 0 a & python roundtrip.py req 3000 0 a
"""
import sys, time, trio, shmsock
role, n = sys.argv[1], int(sys.argv[2])
spin = int(sys.argv[3]) if len(sys.argv) > 3 else 0
EP = "shm://lat-strace-" + (sys.argv[4] if len(sys.argv) > 4 else "x")
async def main():
    if role == "rep":
        async with shmsock.socket(shmsock.REP, spin_us=spin) as s:
            s.bind(EP)
            for _ in range(n + 100):
                m = await s.recv()
                await s.send(m)
    else:
        async with shmsock.socket(shmsock.REQ, spin_us=spin) as s:
            s.connect(EP)
            msg = b"x" * 1024
            for _ in range(100):
                await s.send(msg); await s.recv()
            ts = []
            for _ in range(n):
                t = time.perf_counter_ns()
                await s.send(msg); await s.recv()
                ts.append(time.perf_counter_ns() - t)
            ts.sort()
            p = s._waiter.spin_policy; print("policy", p.hit_ns, p.park_ns, p.misses, p.skip)
            print(f"p50 {ts[len(ts)//2]/1000:.1f} p99 {ts[len(ts)*99//100]/1000:.1f} us")
trio.run(main)
