"""The benchmark's smoke test: it runs and reports sane numbers.

Benchmarks are not tests: nothing here judges speed.  It checks that every
figure of a short run is there, finite and internally consistent, so that
the README's first command cannot rot.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import pytest

from shmsock._bench import suite

KINDS = ["throughput", "large", "fanin", "latency", "connect", "memory", "idle", "ring"]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "shmsock", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=False,
    )


def run_json(kinds: list[str], seconds: str = "0.05") -> dict:
    """A short run of *kinds* without peers, as JSON."""
    result = run_bench(
        "--only", ",".join(kinds), "--sizes", "64", "--seconds", seconds, "--no-peers",
        "--json", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def report() -> dict:
    return run_json(KINDS)


def figures(report: dict, section: str) -> list[dict]:
    found = [f for f in report["figures"] if f["section"] == section]
    assert found, f"no {section} figure"
    return found


def test_every_figure_is_a_finite_positive_number(report):
    assert {f["section"] for f in report["figures"]} == set(KINDS)
    for f in report["figures"]:
        assert math.isfinite(f["value"]), f
        if f["section"] != "idle":
            assert f["value"] > 0, f


def test_throughput_covers_every_api_with_and_without_checksums(report):
    labels = {f["label"] for f in figures(report, "throughput")}
    for mode in ("await", "nowait", "batch"):
        for crc in ("on", "off"):
            assert f"64 B {mode} CRC {crc}" in labels
    assert "64 B iter CRC on" in labels


def test_latency_percentiles_are_ordered(report):
    runs = figures(report, "latency")
    assert len(runs) == 3  # parked, spinning, and the floor
    for f in runs:
        d = f["details"]
        assert d["count"] > 0
        assert 0 < d["p50_us"] <= d["p99_us"] <= d["p999_us"] <= d["max_us"]


def test_memory_and_connect_are_plausible(report):
    bound, per_connection = figures(report, "memory")
    assert bound["details"]["shm_bytes"] >= 0
    # The PUSH's ring of the default 1 MiB at least, and less than 3 MB.
    assert 1 <= per_connection["value"] < 3
    (connect,) = figures(report, "connect")
    assert connect["value"] <= connect["details"]["max_ms"]


def test_idle_peers_cost_almost_no_cpu(report):
    (idle,) = figures(report, "idle")
    assert 0 <= idle["value"] < 50  # percent of one CPU; a poller would show


def test_throughput_trials_say_where_the_cpu_went(report):
    keys = {"receiver_us_per_msg", "senders_us_per_msg", "receiver_cores", "senders_cores",
            "receiver_sleeps_per_s", "senders_sleeps_per_s"}  # fmt: skip
    for section in ("throughput", "large", "fanin"):
        for f in figures(report, section):
            assert keys <= f["details"].keys(), f
            for key in keys:
                assert math.isfinite(f["details"][key]) and f["details"][key] >= 0, (key, f)
    (fanin,) = figures(report, "fanin")
    out = io.StringIO()
    suite.render([suite.Figure(**fanin)], out)
    assert "CPU per message:" in out.getvalue()
    assert f"{fanin['details']['senders_us_per_msg']:.2f} us" in out.getvalue()


def test_fanin_with_nice_producers_is_its_own_opt_in_figure():
    plain, niced = figures(run_json(["fanin", "fanin-nice"]), "fanin")
    assert "nice" not in plain["label"] and niced["label"].endswith("nice 10")
    assert plain["value"] > 0 and niced["value"] > 0
    assert plain["key"] != niced["key"]  # each is compared with its own pyzmq run


def test_fanin_with_a_quiet_producer_says_how_long_its_messages_waited():
    (quiet,) = figures(run_json(["fanin-quiet"], seconds="0.3"), "fanin")
    assert "quiet" in quiet["label"] and quiet["key"] == "fanin-quiet"
    d = quiet["details"]
    assert d["quiet_count"] > 0
    assert 0 < d["quiet_p50_ms"] <= d["quiet_p99_ms"] <= d["quiet_max_ms"]
    out = io.StringIO()
    suite.render([suite.Figure(**quiet)], out)
    assert f"its messages waited p50 {d['quiet_p50_ms']:.2f} ms" in out.getvalue()


def test_the_table_and_help_explain_the_figures():
    result = run_bench("--only", "ring", "--seconds", "0.05", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "M rec/s" in result.stdout
    helped = run_bench("--help")
    for kind in [*KINDS, "fanin-nice", "fanin-quiet"]:
        assert kind in helped.stdout


def test_bad_arguments_fail_with_one_line():
    result = run_bench("--only", "nonsense")
    assert result.returncode != 0
    assert "unknown figure" in result.stderr
