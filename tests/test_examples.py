"""Every example runs, as its own processes, and prints what it promises."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pipeline():
    out = run_example("pipeline.py")
    assert "ventilator: sent 100 tasks" in out
    assert "sink: 100 results, sum of squares 328350" in out
    done = [int(line.split()[3]) for line in out.splitlines() if line.startswith("worker")]
    assert len(done) == 3, out
    assert sum(done) == 100
    assert all(n > 0 for n in done)  # every worker got work


def test_pair():
    out = run_example("pair.py")
    assert out.splitlines() == [f"parent got pong {n}" for n in range(5)]


def test_rpc():
    out = run_example("rpc.py")
    assert "add(2, 3) = 5" in out
    assert "sqrt(2) = 1.414214" in out
    assert "upper('shm') = SHM" in out
    assert "sqrt(-1) failed: ValueError('math domain error')" in out


def test_poller():
    out = run_example("poller.py")
    assert sorted(out.splitlines()) == [
        "client: stopping after 100 jobs",
        "worker: 100 jobs, sum of squares 328350",
    ]


def test_poller_roles_meet_from_separate_commands():
    # As from two shells, the worker started second: the fixed endpoint names
    # are how they meet.
    client = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "poller.py"), "client"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run_example("poller.py", "worker") == "worker: 100 jobs, sum of squares 328350\n"
        out, _ = client.communicate(timeout=60)
    finally:
        client.kill()
        client.wait()
    assert client.returncode == 0
    assert out == "client: stopping after 100 jobs\n"


def test_metrics():
    # Serves until told to stop: scrape it once the pipeline is done.
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "metrics.py"), "--port", "0", "--messages", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        serving = proc.stdout.readline()
        assert serving.startswith("metrics: serving http://127.0.0.1:"), serving
        url = serving.split()[-1]
        done = proc.stdout.readline()
        assert done == "pipeline: 1000 messages done, sum of squares 332833500\n", done
        with urllib.request.urlopen(url, timeout=30) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out == "metrics: stopped\n"

    def value(metric: str, endpoint: str, kind: str) -> float:
        for sample in families[metric].samples:
            if sample.labels == {"endpoint": endpoint, "socket_type": kind}:
                return sample.value
        raise AssertionError(f"no {metric} for {endpoint} {kind}")

    endpoints = {s.labels["endpoint"] for s in families["shmsock_peers"].samples}
    jobs_ep = f"shm://metrics-{proc.pid}-jobs"
    results_ep = f"shm://metrics-{proc.pid}-results"
    assert endpoints == {jobs_ep, results_ep}
    task_bytes = sum(len(b"%d" % n) for n in range(1000))
    result_bytes = sum(len(b"%d" % (n * n)) for n in range(1000))
    # 1,000 tasks and a "stop" to the worker; 1,000 results to the sink.
    assert value("shmsock_messages_sent", jobs_ep, "PUSH") == 1001
    assert value("shmsock_messages_received", jobs_ep, "PULL") == 1001
    assert value("shmsock_bytes_sent", jobs_ep, "PUSH") == task_bytes + 4
    assert value("shmsock_bytes_received", jobs_ep, "PULL") == task_bytes + 4
    assert value("shmsock_messages_sent", results_ep, "PUSH") == 1000
    assert value("shmsock_messages_received", results_ep, "PULL") == 1000
    assert value("shmsock_bytes_sent", results_ep, "PUSH") == result_bytes
    assert value("shmsock_bytes_received", results_ep, "PULL") == result_bytes
    # Every socket has closed by now, so no peers remain.
    assert {s.value for s in families["shmsock_peers"].samples} == {0}


@pytest.mark.parametrize("name", ["pipeline.py", "pair.py", "rpc.py", "metrics.py", "poller.py"])
def test_example_has_a_docstring_with_its_command(name):
    text = (EXAMPLES / name).read_text()
    assert text.startswith('"""')
    assert f"python examples/{name}" in text
