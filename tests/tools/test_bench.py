"""The benchmark's own tests: it runs, it checks its messages, and it reports.

Benchmarks are not tests: nothing here judges speed.  Short runs check that
every figure is there, finite and consistent, that every way's messages were
all checked, that the sweep, the charts and the comparison of two runs work
on tiny sizes and short trials, and that a missing peer is named and left
out while the rest of the run goes on, so that the README's first command
cannot rot.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shmsock._bench import DEFAULT_KINDS, KINDS, markdown, peers, protocol, report, suite

ROOT = Path(__file__).resolve().parents[2]

SHMSOCK_STYLES = ("await", "nowait", "batch", "iter")
LOADED_WAYS = {"shmsock-parked", "shmsock-spin", "pyzmq", "unix"}


def run_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "shmsock", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env or os.environ.copy(),
        check=False,
    )


def run_ok(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = run_bench(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result


def figures(data: dict, section: str) -> list[dict]:
    found = [f for f in data["figures"] if f["section"] == section]
    assert found, f"no {section} figure"
    return found


# -- the check every receiver makes -------------------------------------------------------


def _stream(size: int, senders: int = 1, pools: list | None = None) -> list[bytes]:
    """What *senders* senders send in a window, interleaved, each ending with its END."""
    pools = pools or [protocol.Pool(size, sid) for sid in range(senders)]
    n = 2 * pools[0].length + 5  # round the pool more than once
    out = [m for i in range(n) for m in (p.take(1)[0] for p in pools)]
    return out + [protocol.end_message(size, sid, n) for sid in range(senders)]


def _deliver(checker: protocol.Checker, messages: list[bytes], path: str) -> None:
    if path == "lists":
        for i in range(0, len(messages), 7):
            checker.take(messages[i : i + 7])
    else:
        chunk = protocol.one_by_one(iter(messages).__next__, checker, 5)
        while not checker.done:
            protocol.drive(chunk())


def _damaged(messages: list[bytes], i: int) -> list[bytes]:
    m = bytearray(messages[i])
    m[len(m) // 2] ^= 1
    return [*messages[:i], bytes(m), *messages[i + 1 :]]


BREAKAGES = {
    "lost": lambda ms: ms[:10] + ms[11:],
    "repeated": lambda ms: [*ms[:11], ms[10], *ms[11:]],
    "reordered": lambda ms: [*ms[:10], ms[11], ms[10], *ms[12:]],
    "damaged": lambda ms: _damaged(ms, 10),
    "a short count": lambda ms: [*ms[:-1], protocol.end_message(len(ms[0]), 0, len(ms))],
}


@pytest.mark.parametrize("path", ["lists", "one by one"])
@pytest.mark.parametrize("size", [64, 4096])  # whole messages compared; stamps only
def test_the_check_passes_every_message_sent_in_order(path, size):
    for senders in (1, 3):
        checker = protocol.Checker(size, senders)
        pools = [protocol.Pool(size, sid) for sid in range(senders)]
        for _ in range(2):  # the next window goes on where the last one ended
            checker.reset()
            sent = _stream(size, senders, pools)
            _deliver(checker, sent, path)
            assert checker.done and checker.data == len(sent) - senders


@pytest.mark.parametrize("path", ["lists", "one by one"])
@pytest.mark.parametrize("size", [64, 4096])
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_check_catches_a_lost_repeated_reordered_or_damaged_message(path, size, breakage):
    if breakage == "damaged" and size > protocol.FULL_CHECK_MAX:
        breakage = "reordered"  # only stamps are compared: damage there reads as disorder
    with pytest.raises(protocol.Mismatch):
        _deliver(protocol.Checker(size), BREAKAGES[breakage](_stream(size)), path)


def _fan_deliver(counter, messages, path):
    """Give *messages* to a fan-out counter as each kind of subscriber does."""
    from itertools import islice

    if path == "batches":
        for i in range(0, len(messages), 100):
            if counter.take(messages[i : i + 100]):
                return True
    elif path == "one by one":
        for m in messages:
            if counter.take_one(m):
                return True
    else:  # pyzmq's: POOL at a time from an iterator that receives each
        it = iter(iter(messages).__next__, None)
        while True:
            if counter.take(islice(it, peers.fanout.POOL)):
                return True
    return False


@pytest.mark.parametrize("path", ["batches", "one by one", "receiving iterator"])
def test_the_fanout_check_counts_each_way_alike_and_catches_disorder(path):
    fan = peers.fanout
    pool = fan._pool(1024)
    sent = pool * 3 + pool[:10]
    counter = fan._Counter({"warmup": 0.0, "seconds": 0.0}, 1024)
    assert _fan_deliver(counter, [*sent, fan.END], path)
    assert counter.checked == len(sent)
    assert counter.result is not None and 0 < counter.result["messages"] <= len(sent)
    bad = [*sent[:300], sent[301], sent[300], *sent[302:], fan.END]
    with pytest.raises(AssertionError, match="message 300: seq 45"):
        _fan_deliver(fan._Counter({"warmup": 0.0, "seconds": 0.0}, 1024), bad, path)


# -- the default suite, shmsock alone ----------------------------------------------------


@pytest.fixture(scope="module")
def own() -> tuple[dict, str]:
    """A short run of every default figure without peers: its JSON and its progress."""
    result = run_ok(
        "--only", ",".join(DEFAULT_KINDS), "--sizes", "64", "--seconds", "0.02",
        "--trials", "1", "--rounds", "100", "--no-peers", "--json",
    )  # fmt: skip
    return json.loads(result.stdout), result.stderr


def test_every_default_figure_is_a_finite_positive_number(own):
    data, _ = own
    # tcp:// is measured beside pyzmq, which --no-peers leaves out (and
    # shmsock's tcp:// needs pyzmq itself): test_the_tcp_section has it.
    assert {f["section"] for f in data["figures"]} == set(DEFAULT_KINDS) - {"loaded", "tcp"}
    for f in data["figures"]:
        assert f["na"] is None, f
        assert math.isfinite(f["value"]), f
        if f["section"] != "idle":
            assert f["value"] > 0, f


def test_a_run_says_how_busy_the_machine_was(own):
    data, _ = own
    before, after = data["machine"]["load"].split(" -> ")
    assert float(before) >= 0 and float(after) >= 0
    table = io.StringIO()
    report.render(suite.Run.from_json(data), table)
    assert f"over the run: {before} -> {after}." in table.getvalue()


def test_the_progress_counter_ends_at_its_total(own):
    _, progress = own
    steps = [tuple(map(int, m)) for m in re.findall(r"^\[\s*(\d+)/(\d+)\]", progress, re.M)]
    assert steps, progress
    total = steps[0][1]
    assert [n for n, _ in steps] == list(range(1, total + 1))
    assert all(t == total for _, t in steps)


def test_throughput_covers_every_call_style_with_and_without_checksums(own):
    data, _ = own
    labels = {f["label"] for f in figures(data, "throughput")}
    for style in ("await", "nowait", "batch"):
        for crc in ("on", "off"):
            assert f"shmsock {style}, CRC {crc}" in labels
    assert "shmsock iter, CRC on" in labels


def test_large_messages_are_measured_copied_and_zero_copy_at_every_large_size(own):
    data, _ = own
    cells = {(f["way"], f["size"]): f for f in figures(data, "large")}
    ways = ("shmsock-await", "shmsock-await-nocrc", "shmsock-zero-copy")
    assert set(cells) == {(w, s) for w in ways for s in suite.LARGE_SIZES}
    for (way, _), f in cells.items():
        assert f["zero_copy"] == (way == "shmsock-zero-copy"), f
    out = io.StringIO()
    report.render(suite.Run([suite.Figure.from_json(f) for f in figures(data, "large")]), out)
    assert "shmsock loan -> lease, CRC off *" in out.getvalue()
    assert "Large messages, 16 MiB each" in out.getvalue()


def test_every_message_of_every_trial_was_checked(own):
    data, _ = own
    for section in ("throughput", "large", "fanin"):
        for f in figures(data, section):
            checked, measured = f["metrics"]["checked"], f["metrics"]["messages"]
            assert all(c >= m > 0 for c, m in zip(checked, measured, strict=True)), f


def test_round_trips_quiet_and_loaded_have_ordered_percentiles(own):
    data, _ = own
    runs = figures(data, "latency")
    ways = {(f["load"], f["way"]) for f in runs}
    assert ways == {
        ("quiet", "shmsock-parked"), ("quiet", "shmsock-spin"), ("quiet", "floor"),
        ("half", "shmsock-parked"), ("half", "shmsock-spin"),
        ("all", "shmsock-parked"), ("all", "shmsock-spin"),
    }  # fmt: skip
    for f in runs:
        d = f["details"]
        assert d["count"] > 0
        assert 0 < f["value"] <= d["p99_us"] <= d["all_max_us"]
        assert d["all_p50_us"] <= d["all_p99_us"] <= d["all_p999_us"] <= d["all_max_us"]
        assert (d["busy"] > 0) == (f["load"] != "quiet")


def test_memory_and_connect_are_plausible(own):
    data, _ = own
    bound, per_connection = figures(data, "memory")
    assert bound["details"]["shm_bytes"] >= 0
    # The PUSH's ring of the default 1 MiB at least, and less than 3 MB.
    assert 1 <= per_connection["value"] < 3
    (connect,) = figures(data, "connect")
    assert connect["value"] <= connect["details"]["max_ms"]


def test_idle_peers_cost_almost_no_cpu(own):
    data, _ = own
    (idle,) = figures(data, "idle")
    assert 0 <= idle["value"] < 50  # percent of one CPU; a poller would show


def test_throughput_trials_say_where_the_cpu_went(own):
    data, _ = own
    keys = {"receiver_us_per_msg", "senders_us_per_msg", "receiver_cores", "senders_cores",
            "receiver_sleeps_per_s", "senders_sleeps_per_s"}  # fmt: skip
    for section in ("throughput", "large", "fanin"):
        for f in figures(data, section):
            assert keys <= f["details"].keys(), f
            for key in keys:
                assert math.isfinite(f["details"][key]) and f["details"][key] >= 0, (key, f)
    (fanin,) = figures(data, "fanin")
    out = io.StringIO()
    report.render(suite.Run([suite.Figure.from_json(fanin)]), out)
    assert "CPU per message:" in out.getvalue()
    assert f"{fanin['details']['senders_us_per_msg']:.2f} us" in out.getvalue()


# -- every peer: the sweep, round trips, fan-in, charts ----------------------------------

TINY_SWEEP = (64, 1 << 20)  # 1 MiB: more than half the ring, through the bulk region


@pytest.fixture(scope="module")
def everyone(tmp_path_factory) -> tuple[dict, str, Path]:
    """A short run of the sweep, round trips and fan-ins with every peer, saved and plotted."""
    where = tmp_path_factory.mktemp("bench")
    result = run_ok(
        "--only", "latency,loaded,fanin,fanin-nice,fanin-quiet", "--sweep",
        "--sweep-sizes", ",".join(map(str, TINY_SWEEP)), "--seconds", "0.02",
        "--trials", "2", "--rounds", "100", "--json", str(where / "run.json"),
        "--plot", str(where / "charts"),
    )  # fmt: skip
    return json.loads((where / "run.json").read_text()), result.stdout, where


def test_every_peer_is_installed_for_the_tests(everyone):
    data, _, _ = everyone
    assert data["missing"] == []  # pyzmq and iceoryx2 are in the test extra


def test_the_sweep_covers_every_way_at_every_size(everyone):
    data, table, _ = everyone
    cells = {(f["way"], f["size"]): f for f in figures(data, "sweep")}
    ways = {w.key for w in peers.STREAMS if w.sweep} | {"memcpy"}
    assert {(w, s) for w in ways for s in TINY_SWEEP} == set(cells)
    for (way, size), f in cells.items():
        # Every call style sends 1 MiB, more than half the ring: frames above
        # 64 KiB go whole through the bulk region, nowait and batches too.
        assert f["na"] is None and len(f["trials"]) == (1 if way == "memcpy" else 2), f
        assert all(v > 0 for v in f["trials"]), f
        assert f["details"]["gb_per_s"] == pytest.approx(f["value"] * size / 1e3, rel=0.5)
        if way != "memcpy":
            checked, measured = f["metrics"]["checked"], f["metrics"]["messages"]
            assert all(c >= m for c, m in zip(checked, measured, strict=True))
    assert "memcpy, one core" in table and "n/a" not in table


def test_every_peer_makes_round_trips_quiet_and_the_named_ones_loaded(everyone):
    data, table, _ = everyone
    runs = {(f["load"], f["way"]): f for f in figures(data, "latency")}
    assert {w for load, w in runs if load == "quiet"} == {w.key for w in peers.ECHOES}
    for load in ("half", "all"):
        assert {w for ld, w in runs if ld == load} == LOADED_WAYS
    for f in runs.values():
        assert f["na"] is None and len(f["trials"]) == 2 and f["value"] > 0, f
    assert "busy process" in table and "every core" in table


def test_fanins_compare_with_pyzmq_and_a_multiprocessing_queue(everyone):
    data, table, _ = everyone
    for kind in ("fanin", "fanin-nice"):
        assert {f["peer"] for f in figures(data, kind)} == {"shmsock", "pyzmq", "multiprocessing"}
        for f in figures(data, kind):
            assert f["na"] is None and len(f["trials"]) == 2 and f["value"] > 0, f
            checked, measured = f["metrics"]["checked"], f["metrics"]["messages"]
            assert all(c >= m for c, m in zip(checked, measured, strict=True))
    # The quiet sender speaks shmsock's and pyzmq's APIs only.
    assert {f["peer"] for f in figures(data, "fanin-quiet")} == {"shmsock", "pyzmq"}
    assert "multiprocessing.Queue" in table
    quiet = [f for f in figures(data, "fanin-quiet")]
    for f in quiet:
        d = f["details"]
        assert d["quiet_count"] > 0
        assert 0 < d["quiet_p50_ms"] <= d["quiet_p99_ms"] <= d["quiet_max_ms"]
    assert "its messages waited p50" in table and "nice 10" in table


def test_the_charts_are_png_files_with_every_way_in_them(everyone):
    from matplotlib.container import BarContainer
    from matplotlib.image import imread

    from shmsock._bench import plot

    data, _, where = everyone
    run = suite.Run.from_json(data)
    for name in ("throughput", "roundtrip", "fanin"):
        image = imread(where / "charts" / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 500
    charts = plot.charts(run)
    # Throughput: one line per way in the legend, drawn through its figures.
    msg_ax = charts["throughput"].axes[0]
    lines = {line.get_label(): line for line in msg_ax.get_lines()}
    legend = {t.get_text() for t in charts["throughput"].legends[0].get_texts()}
    for f in run.figures:
        if f.section == "sweep" and not f.na:
            assert f.label in legend and f.label in lines
            xs, ys = lines[f.label].get_data()
            assert ys[list(xs).index(f.size)] == pytest.approx(f.value * 1e6)
    # Round trips: a row per way, a bar per percentile, a panel per load.
    rt = charts["roundtrip"]
    assert len(rt.axes) == 3
    rows = [t.get_text() for t in rt.axes[0].get_yticklabels()]
    assert set(rows) == {f.label for f in run.figures if f.section == "latency"}
    assert [t.get_text() for t in rt.axes[0].get_legend().get_texts()] == ["p50", "p99", "p99.9"]
    parked = next(f for f in run.figures if f.id == "latency/quiet/shmsock-parked")
    widths = [bar.get_width() for bar in rt.axes[0].containers[0]]
    assert parked.value in widths
    # Fan-in: every way, a bar for each kind it ran (the queue has no quiet sender).
    fanin = charts["fanin"].axes[0]
    legend = [t.get_text() for t in fanin.get_legend().get_texts()]
    assert legend == ["shmsock (batch)", "pyzmq", "mp.Queue"]
    bars = [c for c in fanin.containers if isinstance(c, BarContainer)]
    assert [len(b) for b in bars] == [3, 3, 2]


# -- the load goes with the bench ---------------------------------------------------------

LOAD_MARKER = b"a busy process of the bench's load"


def _load_of(pid: int) -> set[int]:
    """The running busy processes that *pid* started for its load."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and LOAD_MARKER in cmdline:
            found.add(int(entry))
    return found


def _running(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_the_load_ends_when_the_bench_is_interrupted_or_killed(sig):
    before = set(os.listdir("/dev/shm"))
    bench = subprocess.Popen(
        [sys.executable, "-P", "-m", "shmsock", "bench", "--only", "loaded", "--no-peers",
         "--trials", "1", "--rounds", "1000000", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        load: set[int] = set()
        while not load:  # until the bench has started its load
            assert bench.poll() is None, "the bench ended before its load started"
            assert time.monotonic() < deadline, "no load in 60 s"
            load = _load_of(bench.pid)
            time.sleep(0.01)
        bench.send_signal(sig)
        bench.wait(30)
        deadline = time.monotonic() + 10
        while _running(load) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _running(load)
    finally:
        bench.kill()
        bench.wait()
        for name in set(os.listdir("/dev/shm")) - before:  # what a SIGKILL leaves
            if name.startswith("shmsock-bench-"):
                shutil.rmtree(os.path.join("/dev/shm", name), ignore_errors=True)


# -- a missing peer -------------------------------------------------------------------------


def test_a_missing_peer_is_named_once_and_the_rest_runs(tmp_path):
    # A module that fails to import stands in for iceoryx2 not being installed.
    (tmp_path / "iceoryx2").mkdir()
    (tmp_path / "iceoryx2" / "__init__.py").write_text("raise ImportError('simulated')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = run_ok(
        "--only", "throughput,latency", "--sizes", "1024", "--seconds", "0.02", "--trials", "1",
        "--rounds", "50", env=env,
    )  # fmt: skip
    line = "note: iceoryx2 is not installed, so its figures are left out: pip install"
    assert result.stdout.count(line) == 1
    assert result.stderr.count(line) == 1
    assert "iceoryx2," not in result.stdout and "iceoryx2 busy" not in result.stdout
    others = [w.label for w in peers.STREAMS + peers.ECHOES if w.peer != "shmsock"]
    for label in others:
        if "iceoryx2" not in label:
            assert f"  {label} " in result.stdout, label


def test_the_tcp_section_measures_shmsock_beside_pyzmq_on_the_same_wire():
    result = run_ok(
        "--only", "tcp", "--sizes", "1024", "--seconds", "0.05", "--trials", "1", "--json",
    )  # fmt: skip
    data = json.loads(result.stdout)
    figs = figures(data, "tcp")
    assert {f["way"] for f in figs} == {w.key for w in peers.TCP_STREAMS}
    for f in figs:
        assert f["na"] is None, f
        assert f["value"] > 0, f
        assert f["details"]["checked"] > 0, f  # every message checked, on either end
    table = io.StringIO()
    report.render(suite.Run.from_json(data), table)
    assert "tcp:// on loopback" in table.getvalue()
    assert "against issue 21's goals" in table.getvalue()
    # Each way's line gives both sides' CPU time per message, as measured.
    for f in figs:
        d = f["details"]
        line = next(ln for ln in table.getvalue().splitlines() if ln.startswith(f"  {f['label']} "))
        assert f"{d['receiver_us_per_msg']:5.2f} / {d['senders_us_per_msg']:.2f} us" in line


def test_the_router_section_measures_router_dealer_round_trips_beside_pyzmq():
    result = run_ok("--only", "router", "--trials", "1", "--rounds", "100", "--json")
    data = json.loads(result.stdout)
    figs = figures(data, "router")
    assert {f["way"] for f in figs} == {w.key for w in peers.ROUTER_ECHOES}
    for f in figs:
        assert f["na"] is None, f
        d = f["details"]
        assert d["count"] > 0
        assert 0 < f["value"] <= d["p99_us"] <= d["all_max_us"]
    table = io.StringIO()
    report.render(suite.Run.from_json(data), table)
    assert "ROUTER <-> DEALER round trip" in table.getvalue()
    assert "pyzmq ROUTER/DEALER ipc://" in table.getvalue()


# -- two runs compared ----------------------------------------------------------------------


def _run(**trials: list[float]) -> suite.Run:
    figs = []
    for name, values in trials.items():
        section, higher = ("latency", False) if name.startswith("rtt") else ("throughput", True)
        f = suite.Figure(f"{section}/{name}", section, name, "x", higher, size=1024, load="quiet")
        for v in values:
            f.add(v, p99_us=v * 2) if section == "latency" else f.add(v)
        figs.append(f)
    return suite.Run(figs, started=f"run of {len(figs)}")


def test_verdict_marks_a_change_beyond_the_spread_of_the_trials():
    assert report.verdict([1.0, 1.1, 1.2], [2.0, 2.1, 2.2], True) == "better"
    assert report.verdict([1.0, 1.1, 1.2], [2.0, 2.1, 2.2], False) == "WORSE"
    assert report.verdict([1.0, 1.1, 1.2], [1.05, 1.15, 1.25], True) == ""
    # The new median outside the old range is not enough if the ranges overlap so.
    assert report.verdict([1.0, 1.1, 1.2], [1.0, 1.3, 1.4], True) == ""
    assert report.verdict([1.0], [2.0], True) == "?"


def test_compare_flags_what_moved_beyond_the_spread_and_passes_the_rest(tmp_path):
    old = _run(moved=[1.0, 1.1, 1.2], steady=[5.0, 5.5, 6.0], rtt=[50.0, 52.0, 54.0])
    new = _run(moved=[2.0, 2.1, 2.2], steady=[5.2, 5.6, 5.9], rtt=[80.0, 82.0, 90.0])
    (tmp_path / "old.json").write_text(json.dumps(old.to_json()))
    (tmp_path / "new.json").write_text(json.dumps(new.to_json()))
    out = run_ok("--compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")).stdout
    rows = {line.split()[2]: line for line in out.splitlines() if line.startswith("  1 KiB")}
    assert rows["moved"].rstrip().endswith("1.91x  better"), rows
    assert rows["steady"].rstrip().endswith("1.02x"), rows
    rtt = [line for line in out.splitlines() if "quiet: rtt" in line]
    assert len(rtt) == 2 and all(line.rstrip().endswith("WORSE") for line in rtt)  # p50, p99
    assert "1 better, 2 worse, 1 within the spread" in out


def test_a_run_is_compared_with_a_saved_one(tmp_path):
    saved = tmp_path / "before.json"
    short = ("--only", "throughput", "--sizes", "64", "--no-peers", "--seconds", "0.02",
             "--trials", "2", "--quiet")  # fmt: skip
    run_ok(*short, "--json", str(saved))
    out = run_ok(*short, "--compare", str(saved)).stdout
    compared = [line for line in out.splitlines() if line.startswith("  64 B shmsock ")]
    assert len(compared) == 7  # every call style, CRC on and off, and iter
    assert all(re.search(r" \d+\.\d\dx", line) for line in compared)


# -- the registry -----------------------------------------------------------------------


def test_every_section_has_a_kind_and_a_plan_and_its_figures_a_table():
    """The recipe of docs/performance.md, "Adding a section", held for every section."""
    assert set(KINDS) == set(suite.SECTIONS), "a kind without a plan, or a plan without a kind"
    assert set(DEFAULT_KINDS) <= set(KINDS)
    run = _charted_run()  # every default section and the sweep
    for section in {f.section for f in run.figures}:
        assert report._table_of(section) in report.TABLES, f"{section} has no table"


# -- the figures quoted in the README and the docs ---------------------------------------


def _charted_run() -> suite.Run:
    return suite.Run.from_json(json.loads((ROOT / "docs/bench/run.json").read_text()))


@pytest.mark.parametrize("page", ["README.md", "docs/performance.md"])
def test_the_readme_and_the_docs_quote_the_run_the_charts_come_from(page):
    text = (ROOT / page).read_text()
    assert "<!-- bench:speed -->" in text and "<!-- bench:about -->" in text
    assert markdown.fill(text, _charted_run()) == text, (
        f"{page}'s figures are not those of docs/bench/run.json: run"
        " shmsock bench --from docs/bench/run.json --update README.md docs/performance.md"
    )


def test_the_docs_show_every_chart_of_the_run():
    text = (ROOT / "docs/performance.md").read_text()
    shown = set(re.findall(r"\]\((bench/\w+\.png)\)", text))
    assert shown == {"bench/throughput.png", "bench/roundtrip.png", "bench/fanin.png"}
    for path in shown:
        assert (ROOT / "docs" / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_speed_table_names_each_call_and_every_peer_of_the_run():
    table = markdown.speed_table(_charted_run())
    for _, calls in markdown.CALLS:
        assert calls in table
    header = table.splitlines()[0]
    for _, heading in markdown.PEERS:
        assert heading in header


def test_a_peer_missing_from_the_run_is_left_out_of_the_table_and_named():
    figs = []
    for way, value in (("shmsock-nowait", 2.0), ("shmsock-batch", 4.0), ("pyzmq", 0.5)):
        f = suite.Figure(f"throughput/1024/{way}", "throughput", way, "M msg/s", True,
                         peer=way.split("-")[0], way=way, size=1024)  # fmt: skip
        f.add(value)
        figs.append(f)
    run = suite.Run(figs, missing=["iceoryx2 is not installed: pip install iceoryx2"])
    table = markdown.speed_table(run)
    assert f"| `send_many` / `recv_many`, batches of 64 | 4 | 8.00{markdown.TIMES} |" in table
    assert "iceoryx2, copying" not in table and "`await send()`" not in table
    assert "iceoryx2 is not installed" in table


def test_update_rewrites_only_the_blocks_of_a_file(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- bench:speed -->\nstale\n<!-- /bench:speed -->\nafter\n")
    run = run_ok("--from", str(ROOT / "docs/bench/run.json"), "--update", str(page), "--quiet")
    assert f"updated 1 bench block in {page}" in run.stderr
    text = page.read_text()
    assert text.startswith("before\n<!-- bench:speed -->\n| shmsock call |")
    assert text.endswith("<!-- /bench:speed -->\nafter\n") and "stale" not in text
    page.write_text("no blocks here\n")
    bad = run_bench("--from", str(ROOT / "docs/bench/run.json"), "--update", str(page))
    assert bad.returncode != 0 and "has no <!-- bench:NAME -->" in bad.stderr


# -- the command line -----------------------------------------------------------------------


def test_the_help_explains_every_figure():
    helped = run_ok("--help").stdout
    for kind in KINDS:
        assert kind in helped
    for option in ("--sweep", "--plot", "--compare", "--json", "--trials", "--from"):
        assert option in helped


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--only", "nonsense"), "unknown figure"),
        (("--sizes", "4"), "sizes must be from 8"),
        (("--trials", "0"), "must be more than 0"),
        (("--compare", "a.json", "b.json", "c.json"), "one saved run"),
        (("--from", "/nonexistent/run.json"), "No such file"),
    ],
)
def test_bad_arguments_fail_with_one_line(args, says):
    result = run_bench(*args)
    assert result.returncode != 0
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
