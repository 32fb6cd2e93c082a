#!/bin/bash
# CPU time (task-clock) per round trip, each side of a REQ/REP pair
# (docs/performance.md, issue 23): 5,500 round trips minus 500.  Run it
# with shmsock's venv active:  docs/measure/cpu.sh [spin_us]
set -euo pipefail
cd "$(dirname "$0")"
spin=${1:-0}
out=$(mktemp -d)
for n in 500 5500; do
    perf stat -e task-clock,context-switches -x, -o "$out/rep-$n" python roundtrip.py rep $n "$spin" "cpu$n" &
    perf stat -e task-clock,context-switches -x, -o "$out/req-$n" python roundtrip.py req $n "$spin" "cpu$n"
    wait
done
python - "$out" <<'PY'
import sys
def load(f):
    d = {}
    for line in open(f):
        p = line.strip().split(",")
        if len(p) > 3 and p[0].replace(".", "").isdigit():
            d[p[2]] = float(p[0])
    return d
for side in ("rep", "req"):
    a, b = load(f"{sys.argv[1]}/{side}-500"), load(f"{sys.argv[1]}/{side}-5500")
    print(side, "task-clock us per round trip:", round((b["task-clock"] - a["task-clock"]) / 5000 * 1000, 1),
          "context switches:", round((b["context-switches"] - a["context-switches"]) / 5000, 2))
PY
