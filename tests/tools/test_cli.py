"""The ``shmsock`` admin commands, run as processes against other processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import trio
from helpers import peers
from helpers.procs import Child, spawn
from prometheus_client.parser import text_string_to_metric_families

import shmsock

CLI = [sys.executable, "-P", "-m", "shmsock._cli"]  # -P: the installed package, not ./shmsock


def shmsock_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(shmsock_cli, *args)


async def cli_ok(*args: str) -> str:
    result = await cli(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def start_exporter() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "exporter", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def pull_all_then_idle(conn: Connection, endpoint: str, count: int) -> None:
    """Bind a PULL, receive *count* messages, find the ring empty, then hold."""

    async def main() -> None:
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind(endpoint)
            conn.send("ready")
            for _ in range(count):
                await pull.recv()
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()  # it has read everything and now waits
            conn.send("received")
            await trio.to_thread.run_sync(conn.recv)

    trio.run(main)


async def live_pipeline(endpoint: str, count: int) -> tuple[Child, Child]:
    binder = spawn(pull_all_then_idle, endpoint, count)
    await binder.expect("ready")
    pusher = spawn(peers.push_numbers, endpoint, False, 0, count, "n")
    await pusher.expect("ready")
    await pusher.expect("sent")
    await binder.expect("received")
    return binder, pusher


async def stop(*children: Child) -> None:
    for child in children:
        child.send("exit")
    for child in children:
        assert await child.join() == 0
        child.close()


def payload_bytes(count: int) -> int:
    return sum(len(f"n:{i}") for i in range(count))


async def test_ls_and_stat_read_another_processs_sockets():
    endpoint = "shm://cli-live"
    binder, pusher = await live_pipeline(endpoint, 50)
    try:
        listing = json.loads(await cli_ok("ls", "--json"))
        assert listing == [
            {
                "endpoint": endpoint,
                "binder": "alive",
                "binder_pid": binder.pid,
                "binder_socket_type": "PULL",
                "peers": 1,
                "attached": 1,
                "stale_slots": 0,
            }
        ]
        table = (await cli_ok("ls")).splitlines()
        assert table[0].split() == ["ENDPOINT", "BINDER", "PID", "TYPE", "PEERS"]
        assert table[1].split() == [endpoint, "alive", str(binder.pid), "PULL", "1"]

        st = json.loads(await cli_ok("stat", endpoint, "--json"))
        assert st["binder"] == {"state": "alive", "pid": binder.pid, "socket_type": "PULL"}
        assert st["peers"] == 1
        [conn] = st["connections"]
        assert conn["peer_pid"] == pusher.pid
        assert conn["peer_socket_type"] == "PUSH"
        assert conn["peer_alive"] is True
        assert conn["attached"] is True
        to_binder = conn["to_binder"]
        assert to_binder["writer_pid"] == pusher.pid
        assert to_binder["messages_written"] == to_binder["messages_read"] == 50
        assert to_binder["bytes_written"] == to_binder["bytes_read"] == payload_bytes(50)
        assert to_binder["used_bytes"] == 0
        assert to_binder["reader_caught_up"] is not None
        [to_peer] = conn["to_peer"]
        assert to_peer["writer_pid"] == binder.pid
        assert to_peer["messages_written"] == 0
        assert conn["last_activity"] == to_binder["reader_caught_up"]

        text = await cli_ok("stat", endpoint)
        assert f"{endpoint}: binder pid {binder.pid} (PULL) alive, 1 peer\n" in text
        assert f"slot 0: peer pid {pusher.pid} (PUSH) alive, attached, last activity" in text
        assert "messages 50 written, 50 read" in text
    finally:
        await stop(pusher, binder)


async def exporter_url(exporter: subprocess.Popen[str]) -> str:
    assert exporter.stdout is not None
    line = await trio.to_thread.run_sync(exporter.stdout.readline)
    assert line.startswith("shmsock exporter: serving http://127.0.0.1:"), line
    return line.split()[3]


def scrape_endpoint(url: str, endpoint: str) -> dict[tuple[str, str, str], float]:
    """The exporter's samples for *endpoint*: (name, socket_type, direction) -> value."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {
        (s.name, s.labels.get("socket_type", ""), s.labels.get("direction", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("endpoint") == endpoint
    }


async def test_exporter_serves_every_live_endpoint():
    endpoint = "shm://cli-exported"
    binder, pusher = await live_pipeline(endpoint, 30)
    exporter = start_exporter()
    try:
        url = await exporter_url(exporter)

        def scrape() -> dict[tuple[str, str, str], float]:
            return scrape_endpoint(url, endpoint)

        got = await trio.to_thread.run_sync(scrape)
        assert got[("shmsock_messages_sent_total", "PUSH", "")] == 30
        assert got[("shmsock_messages_received_total", "PULL", "")] == 30
        assert got[("shmsock_bytes_sent_total", "PUSH", "")] == payload_bytes(30)
        assert got[("shmsock_bytes_received_total", "PULL", "")] == payload_bytes(30)
        assert ("shmsock_messages_sent_total", "PULL", "") not in got  # PULL never sends
        assert got[("shmsock_peers", "PULL", "")] == 1
        assert got[("shmsock_peers", "PUSH", "")] == 1
        assert got[("shmsock_ring_used_bytes", "PULL", "in")] == 0

        # The connection goes; its counts stay in the exporter's totals.
        await pusher.finish()
        pusher.close()
        # Another process's state: nothing to wait on but the next scrape.
        while (await trio.to_thread.run_sync(scrape))[("shmsock_peers", "PULL", "")]:  # noqa: ASYNC110
            await trio.sleep(0.05)
        got = await trio.to_thread.run_sync(scrape)
        assert got[("shmsock_messages_received_total", "PULL", "")] == 30
        assert got[("shmsock_messages_sent_total", "PUSH", "")] == 30

        exporter.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(exporter.wait) == 0
    finally:
        exporter.kill()
        exporter.wait()
        exporter.stdout.close()
        exporter.stderr.close()
        await stop(binder)


# The exporter run as a supervisor sees it: SIGTERM comes the moment its
# "serving" line has been written (sent from inside that write, so that no
# scheduling of this machine can put it later).
_SIGTERM_AT_SERVING = """
import os, signal, sys

class Stdout:
    def __init__(self, out):
        self.out = out

    def write(self, text):
        n = self.out.write(text)
        if "serving" in text:
            self.out.flush()
            os.kill(os.getpid(), signal.SIGTERM)
        return n

    def flush(self):
        self.out.flush()

sys.stdout = Stdout(sys.stdout)
from shmsock._cli import main
sys.exit(main(["exporter", "--port", "0"]))
"""


def test_the_exporter_ends_quietly_on_a_sigterm_sent_as_soon_as_it_says_it_serves():
    # It used to say so before it set its SIGTERM handler: a supervisor quick
    # enough killed it with the signal's default action (status -15, which
    # test_exporter_shows_bound_endpoints_with_no_peers got once in ten runs).
    result = subprocess.run(
        [sys.executable, "-P", "-c", _SIGTERM_AT_SERVING],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.startswith("shmsock exporter: serving http://"), result.stdout
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


async def test_exporter_shows_bound_endpoints_with_no_peers():
    # Each binder in a process of its own, nobody connected: their series
    # are there, the counters at zero, peers 0 and the ring gauge of the
    # direction the socket uses at 0; nothing for a peer type that is not.
    binders = {
        kind: spawn(peers.bind_and_hold, f"shm://cli-alone-{kind}", kind)
        for kind in ("PULL", "PUSH")
    }
    for binder in binders.values():
        await binder.expect("ready")
    exporter = start_exporter()
    try:
        url = await exporter_url(exporter)
        pull = await trio.to_thread.run_sync(scrape_endpoint, url, "shm://cli-alone-PULL")
        push = await trio.to_thread.run_sync(scrape_endpoint, url, "shm://cli-alone-PUSH")
        exporter.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(exporter.wait) == 0
    finally:
        exporter.kill()
        exporter.wait()
        exporter.stdout.close()
        exporter.stderr.close()
        await stop(*binders.values())
    assert pull == {
        ("shmsock_messages_received_total", "PULL", ""): 0,
        ("shmsock_bytes_received_total", "PULL", ""): 0,
        ("shmsock_peers", "PULL", ""): 0,
        ("shmsock_ring_used_bytes", "PULL", "in"): 0,
    }
    assert push == {
        ("shmsock_messages_sent_total", "PUSH", ""): 0,
        ("shmsock_bytes_sent_total", "PUSH", ""): 0,
        ("shmsock_peers", "PUSH", ""): 0,
        ("shmsock_ring_used_bytes", "PUSH", "out"): 0,
    }


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_clean_removes_what_killed_processes_left_and_nothing_live(sig, userdir):
    live_binder, live_pusher = await live_pipeline("shm://cli-kept", 5)
    dead_binder = spawn(peers.bind_and_hold, "shm://cli-dead")
    await dead_binder.expect("ready")
    dead_pusher = spawn(peers.push_numbers, "shm://cli-dead", False, 0, 3)
    await dead_pusher.expect("ready")
    await dead_pusher.expect("sent")
    try:
        for dead in (dead_pusher, dead_binder):  # SIGTERM leaves as much as SIGKILL
            os.kill(dead.pid, sig)
            assert await dead.join() == -sig
        leftovers = sorted(n for n in os.listdir(userdir) if n.startswith("cli-dead@"))
        assert "cli-dead@lock" in leftovers
        assert "cli-dead@0.c" in leftovers
        kept = sorted(n for n in os.listdir(userdir) if n.startswith("cli-kept@"))

        listing = {e["endpoint"]: e for e in json.loads(await cli_ok("ls", "--json"))}
        assert listing["shm://cli-dead"]["binder"] == "stale"
        assert listing["shm://cli-dead"]["peers"] == 0
        assert listing["shm://cli-kept"]["binder"] == "alive"

        before = sorted(os.listdir(userdir))
        dry = await cli_ok("clean", "--dry-run")
        assert sorted(os.listdir(userdir)) == before  # nothing removed
        assert sorted(line.rsplit("/", 1)[1] for line in dry.splitlines()) == leftovers
        assert all(line.startswith("would remove ") for line in dry.splitlines())

        out = await cli_ok("clean")
        assert sorted(line.rsplit("/", 1)[1] for line in out.splitlines()) == leftovers
        assert all(line.startswith("removed ") for line in out.splitlines())
        assert sorted(os.listdir(userdir)) == kept  # the live endpoint is untouched
        assert [e["endpoint"] for e in json.loads(await cli_ok("ls", "--json"))] == [
            "shm://cli-kept"
        ]
        assert (await cli_ok("clean")).startswith("nothing to clean in ")
    finally:
        dead_pusher.close()
        dead_binder.close()
        await stop(live_pusher, live_binder)


async def test_clean_dry_run_reports_exactly_what_clean_then_removes(userdir):
    """The dry run lists every file of a dead slot, names scan() does not know too."""
    async with shmsock.socket(shmsock.PULL) as pull:
        pull.bind("shm://cli-other")  # makes the directory
    dead = ["odd@1.lock", "odd@1.c", "odd@1.b.0000abcd", "odd@1.b.from-elsewhere"]
    for name in [*dead, "odd@01.c"]:  # a leading zero: no slot of ours, left alone
        fd = os.open(userdir / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.write(fd, b"99999999 PUSH\n" if name.endswith(".lock") else b"\0" * 64)
        os.close(fd)
    os.mkdir(userdir / "odd@1.dir", 0o700)  # shmsock removes names, never trees

    dry = await cli_ok("clean", "--dry-run")
    assert sorted(line.rsplit("/", 1)[1] for line in dry.splitlines()) == sorted(dead)
    out = await cli_ok("clean")
    assert sorted(line.rsplit("/", 1)[1] for line in out.splitlines()) == sorted(dead)
    assert sorted(n for n in os.listdir(userdir) if n.startswith("odd@")) == [
        "odd@01.c",
        "odd@1.dir",
    ]
    os.unlink(userdir / "odd@01.c")
    os.rmdir(userdir / "odd@1.dir")


async def test_unsafe_files_are_reported_and_never_followed(userdir, tmp_path):
    async with shmsock.socket(shmsock.PULL) as pull:
        pull.bind("shm://cli-safe")  # makes the directory
    target = tmp_path / "not-ours"
    target.write_text("precious")
    os.symlink(target, userdir / "cli-trap@lock")
    try:
        [entry] = json.loads(await cli_ok("ls", "--json"))
        assert entry["endpoint"] == "shm://cli-trap"
        assert "unsafe" in (await cli_ok("ls")).split("\n")[1].split()
        result = await cli("clean")
        assert result.returncode == 0
        assert "skipped cli-trap@lock" in result.stderr
        assert "symlink" in result.stderr
        assert target.read_text() == "precious"
        assert (userdir / "cli-trap@lock").is_symlink()
    finally:
        os.unlink(userdir / "cli-trap@lock")


async def test_nothing_there_yet():
    assert json.loads(await cli_ok("ls", "--json")) == []
    result = await cli("ls")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.startswith("no endpoints in ")
    assert (await cli_ok("clean")).startswith("nothing to clean in ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stat", "shm://nobody"), "shmsock stat: error: no endpoint shm://nobody in "),
        (("stat", "nobody"), "shmsock stat: error: invalid endpoint 'nobody'"),
        (("stat",), "shmsock stat: error: the following arguments are required"),
        (("exporter", "--port", "70000"), "shmsock exporter: error: argument --port: port must"),
        (("frobnicate",), "shmsock: error: argument COMMAND: invalid choice: 'frobnicate'"),
        (("ls", "--jsn"), "shmsock: error: unrecognized arguments: --jsn"),
    ],
)
async def test_errors_are_one_line_and_exit_non_zero(args, message):
    result = await cli(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1


async def test_exporter_port_in_use_is_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = await cli("exporter", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert result.stderr.startswith("shmsock exporter: error: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "command",
    [CLI, [str(Path(sys.executable).with_name("shmsock"))]],
    ids=["python -m shmsock._cli", "shmsock"],
)
def test_version_prints_the_version(command):
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"shmsock {shmsock.__version__}\n",
        "",
    )


@pytest.mark.parametrize("command", ["ls", "stat", "clean", "exporter", "bench"])
def test_every_command_has_help(command):
    result = shmsock_cli(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: shmsock {command}")
