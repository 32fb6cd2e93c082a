"""Every example runs, as its own processes, and prints what it promises."""

from __future__ import annotations

import ast
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import shmsock

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def shell_commands(name: str) -> list[list[str]]:
    """The commands the example's docstring gives for separate shells, in its order."""
    docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text()))
    assert docstring is not None
    commands = []
    for line in docstring.splitlines():
        command, sep, _comment = line.partition("# shell")
        if sep:
            words = shlex.split(command)
            assert words[:2] == ["python", f"examples/{name}"], line
            commands.append([sys.executable, str(EXAMPLES / name), *words[2:]])
    return commands


def run_in_shells(name: str, *, reverse: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """Start the docstring's commands as separate processes; each one's stdout, in its order.

    Each gets nothing but what the docstring says: the same environment (the
    test's own SHMSOCK_ROOT) and no endpoint of its own, so the defaults
    must meet.  *reverse* starts them last first.  *extra* arguments go to
    every command (tcp:// ports from the OS, where the docs give fixed ones).
    """
    commands = [[*command, *extra] for command in shell_commands(name)]
    assert len(commands) >= 2
    shells = range(len(commands))
    procs: dict[int, subprocess.Popen[str]] = {}
    outs = []
    try:
        for i in reversed(shells) if reverse else shells:
            procs[i] = subprocess.Popen(
                commands[i], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        for i in shells:
            out, err = procs[i].communicate(timeout=60)
            assert procs[i].returncode == 0, (commands[i], err)
            outs.append(out)
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
    return outs


def check_pipeline(out: str) -> None:
    assert "ventilator: sent 100 tasks" in out
    assert "sink: 100 results, sum of squares 328350" in out
    done = [int(line.split()[3]) for line in out.splitlines() if line.startswith("worker")]
    assert len(done) == 3, out
    assert sum(done) == 100
    assert all(n > 0 for n in done)  # every worker got work


def test_pipeline():
    check_pipeline(run_example("pipeline.py"))


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_pipeline_in_separate_shells(reverse):
    outs = run_in_shells("pipeline.py", reverse=reverse)
    assert [out.split(":")[0].split()[0] for out in outs] == [
        "sink",
        "worker",
        "worker",
        "worker",
        "ventilator",
    ]
    check_pipeline("".join(outs))


PINGS = [f"ping got pong {n}" for n in range(5)]


def test_pair():
    assert run_example("pair.py").splitlines() == PINGS


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_pair_in_separate_shells(reverse):
    ping, pong = run_in_shells("pair.py", reverse=reverse)
    assert ping.splitlines() == PINGS
    assert pong == ""


def check_rpc(out: str) -> None:
    assert "add(2, 3) = 5" in out
    assert "sqrt(2) = 1.414214" in out
    assert "upper('shm') = SHM" in out
    assert "sqrt(-1) failed: ValueError('math domain error')" in out


def test_rpc():
    check_rpc(run_example("rpc.py"))


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_rpc_in_separate_shells(reverse):
    server, client = run_in_shells("rpc.py", reverse=reverse)
    assert server == "server: ready\n"
    check_rpc(client)


@pytest.mark.parametrize(
    ("name", "flag", "default"),
    [
        ("pipeline.py", "--jobs", "shm://pipeline-jobs"),
        ("pipeline.py", "--results", "shm://pipeline-results"),
        ("pair.py", "--endpoint", "shm://pair-pingpong"),
        ("rpc.py", "--endpoint", "shm://rpc"),
        ("poller.py", "--jobs", "shm://poller-jobs"),
        ("poller.py", "--orders", "shm://poller-orders"),
        ("broker.py", "--frontend", "shm://broker-frontend"),
        ("broker.py", "--backend", "shm://broker-backend"),
        ("asyncsrv.py", "--endpoint", "shm://asyncsrv"),
    ],
)
async def test_an_endpoint_flag_moves_every_role(name, flag, default):
    # A socket of a kind no role pairs with holds the default: a role that
    # binds it would fail with AddressInUse, a role that connects to it would
    # never meet its peer.  The run ends well only if the flag, given once to
    # the combined run, reached every role.
    decoy = shmsock.PULL if name == "pair.py" else shmsock.PAIR
    async with shmsock.socket(decoy) as held:
        held.bind(default)
        with trio.fail_after(60):
            result = await trio.run_process(
                [sys.executable, str(EXAMPLES / name), flag, "shm://elsewhere"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert result.returncode == 0, result.stderr.decode()


def free_tcp_endpoints(count: int) -> list[str]:
    """Endpoints on 127.0.0.1 whose ports the OS has just handed out, and freed."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [f"tcp://127.0.0.1:{s.getsockname()[1]}" for s in socks]
    finally:
        for s in socks:
            s.close()


def check_network(out: str, remote: str) -> None:
    assert "ventilator: sent 100 tasks" in out
    assert "sink: 100 results, sum of squares 328350" in out
    done = {}
    for line in out.splitlines():
        if "worker" in line:
            who, _, rest = line.partition(":")
            done[who] = int(rest.split()[1])
    assert sorted(who.rsplit(" ", 1)[0] for who in done) == [remote, "worker", "worker"], out
    assert sum(done.values()) == 100
    assert all(n > 0 for n in done.values())  # the tcp:// endpoint had its turns too


@pytest.mark.parametrize("pyzmq", [False, True], ids=["ours", "pyzmq"])
def test_network(pyzmq):
    jobs, results = free_tcp_endpoints(2)
    flags = ["--jobs-tcp", jobs, "--results-tcp", results]
    out = run_example("network.py", *flags, *(["--pyzmq"] if pyzmq else []))
    check_network(out, "remote pyzmq worker" if pyzmq else "remote worker")


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_network_in_separate_shells(reverse):
    jobs, results = free_tcp_endpoints(2)
    outs = run_in_shells(
        "network.py", reverse=reverse, extra=["--jobs-tcp", jobs, "--results-tcp", results]
    )
    check_network("".join(outs), "remote worker")


def test_the_docs_show_the_separate_shell_commands():
    for name in (
        "pipeline.py", "pair.py", "rpc.py", "poller.py", "network.py", "broker.py", "asyncsrv.py",
    ):  # fmt: skip
        listed = (EXAMPLES / "README.md").read_text()
        for command in shell_commands(name):
            line = " ".join(["python", f"examples/{name}", *command[2:]])
            assert line in listed, line


def test_poller():
    out = run_example("poller.py")
    assert sorted(out.splitlines()) == [
        "client: stopping after 100 jobs",
        "worker: 100 jobs, sum of squares 328350",
    ]


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_poller_in_separate_shells(reverse):
    worker, client = run_in_shells("poller.py", reverse=reverse)
    assert worker == "worker: 100 jobs, sum of squares 328350\n"
    assert client == "client: stopping after 100 jobs\n"


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


@pytest.mark.parametrize(
    "name", ["pipeline.py", "pair.py", "rpc.py", "metrics.py", "poller.py", "network.py"]
)
def test_example_has_a_docstring_with_its_command(name):
    text = (EXAMPLES / name).read_text()
    assert text.startswith('"""')
    assert f"python examples/{name}" in text


def check_weather(out: str) -> None:
    lines = sorted(out.splitlines())
    assert len(lines) == 3, out
    assert lines[0].startswith("client 10001: average temperature ")
    assert lines[1].startswith("client 10002: average temperature ")
    assert lines[2].startswith("server: published ")
    # Each client's 20 updates are a tenth of what went out, on average.
    assert int(lines[2].split()[2]) >= 40


def test_weather():
    check_weather(run_example("weather.py"))


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_weather_in_separate_shells(reverse):
    outs = run_in_shells("weather.py", reverse=reverse)
    check_weather("".join(outs))


def check_broker(lines: list[str]) -> None:
    lines = sorted(lines)
    assert lines[:4] == [
        "broker: 3 clients came and went",
        *["client: 5 replies, each to its own request"] * 3,
    ]
    served = [int(line.split()[2]) for line in lines[4:]]
    assert [line.split()[:2] for line in lines[4:]] == [["worker:", "served"]] * 2
    assert sum(served) == 15  # every request once, by one worker or the other


def test_broker():
    check_broker(run_example("broker.py").splitlines())


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_broker_in_separate_shells(reverse):
    outs = run_in_shells("broker.py", reverse=reverse)
    assert outs[0] == "broker: 3 clients came and went\n"
    check_broker("".join(outs).splitlines())


ASYNCSRV = [
    *["client: 12 replies to 6 requests, as they came"] * 3,
    "server: 18 requests from 3 clients, by 5 workers",
]


def test_asyncsrv():
    assert sorted(run_example("asyncsrv.py").splitlines()) == ASYNCSRV


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_asyncsrv_in_separate_shells(reverse):
    outs = run_in_shells("asyncsrv.py", reverse=reverse)
    assert sorted("".join(outs).splitlines()) == ASYNCSRV
