#!/bin/bash
# System calls and context switches per round trip, each side of a parked
# REQ/REP pair (docs/performance.md, issue 23): 4,200 round trips minus 200,
# counted by perf tracepoints.  Needs perf and the right to trace; run it
# with shmsock's venv active:  docs/measure/syscalls.sh [spin_us]
set -euo pipefail
cd "$(dirname "$0")"
spin=${1:-0}
out=$(mktemp -d)
EV=raw_syscalls:sys_enter,context-switches,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sched_yield,syscalls:sys_enter_poll
for n in 200 4200; do
    perf stat -e $EV -x, -o "$out/rep-$n" python roundtrip.py rep $n "$spin" "sc$n" &
    perf stat -e $EV -x, -o "$out/req-$n" python roundtrip.py req $n "$spin" "sc$n"
    wait
done
python - "$out" <<'PY'
import sys
def load(f):
    d = {}
    for line in open(f):
        p = line.strip().split(",")
        if len(p) > 3 and p[0].isdigit():
            d[p[2].split(":")[-1].replace("sys_enter_", "")] = int(p[0])
    return d
for side in ("rep", "req"):
    a, b = load(f"{sys.argv[1]}/{side}-200"), load(f"{sys.argv[1]}/{side}-4200")
    print(side, {k: round((b[k] - a[k]) / 4000, 2) for k in a})
PY
