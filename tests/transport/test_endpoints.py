"""Endpoints: names, binding rules, stale takeover, permissions, squatters."""

from __future__ import annotations

import fcntl
import os
import stat
import sys

import pytest
import trio
from helpers import peers, seam
from helpers.procs import spawn

import shmsock
from shmsock import PAIR, PULL, PUSH

GOOD = ["a", "jobs", "A-b_c.9", "x" * 64, "...", ".hidden", "a..b"]
BAD = [
    "jobs",
    "udp://jobs",
    "shm://",
    "shm://.",
    "shm://..",
    "shm://" + "x" * 65,
    "shm://a/b",
    "shm://a b",
    "shm://a@b",
    "shm://é",
    "shm://a\0",
    "SHM://jobs",
]


@pytest.mark.parametrize("name", GOOD)
async def test_valid_names_bind(name):
    async with shmsock.socket(PULL) as s:
        s.bind(f"shm://{name}")


@pytest.mark.parametrize("endpoint", BAD)
async def test_invalid_endpoints_say_what_is_allowed(endpoint):
    async with shmsock.socket(PULL) as s:
        for method in (s.bind, s.connect):
            with pytest.raises(shmsock.InvalidEndpoint, match="letters, digits") as info:
                method(endpoint)
            assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("tcp://jobs", "no HOST:PORT"),
        ("tcp://127.0.0.1:70000", "from 1 to 65535"),
        ("tcp://127.0.0.1:x", "from 1 to 65535"),
        ("ipc://", "no PATH"),
        ("ipc://" + "x" * 108, "longer than 107 bytes"),
    ],
)
async def test_invalid_tcp_and_ipc_endpoints_say_what_is_allowed(endpoint, words):
    async with shmsock.socket(PULL) as s:
        for method in (s.bind, s.connect):
            with pytest.raises(shmsock.InvalidEndpoint, match=words) as info:
                method(endpoint)
            assert "'tcp://HOST:PORT'" in str(info.value)


async def test_connect_needs_a_host_and_a_port():
    async with shmsock.socket(PUSH) as s:
        for endpoint in ("tcp://*:5555", "tcp://127.0.0.1:0", "tcp://127.0.0.1:*"):
            with pytest.raises(shmsock.InvalidEndpoint, match="connect needs"):
                s.connect(endpoint)


async def test_endpoint_must_be_a_string():
    async with shmsock.socket(PULL) as s:
        with pytest.raises(TypeError, match="str"):
            s.bind(b"shm://jobs")  # type: ignore[arg-type]


async def test_second_bind_on_a_live_endpoint_fails_and_steals_nothing():
    async with shmsock.socket(PULL) as first, shmsock.socket(PUSH) as push:
        first.bind("shm://taken")
        push.connect("shm://taken")
        async with shmsock.socket(PULL) as second:
            with pytest.raises(shmsock.AddressInUse):
                second.bind("shm://taken")
            with pytest.raises(shmsock.AddressInUse, match="already bound by this socket"):
                first.bind("shm://taken")
        await push.send(b"still first's")
        assert await first.recv() == b"still first's"


async def test_bind_in_another_process_is_refused_while_we_live():
    async with shmsock.socket(PULL) as s:
        s.bind("shm://mine")
        with spawn(peers.bind_and_hold, "shm://mine") as child:
            assert await child.recv() == "AddressInUse"
            assert await child.join() == 0


async def test_stale_endpoint_of_a_killed_binder_is_taken_over(userdir):
    with spawn(peers.bind_and_hold, "shm://stale") as child:
        await child.expect("ready")
        child.kill()
    assert {"stale@lock", "stale@sock"} <= set(os.listdir(userdir))
    async with shmsock.socket(PULL) as heir, shmsock.socket(PUSH) as push:
        heir.bind("shm://stale")
        push.connect("shm://stale")
        await push.send(b"new owner")
        assert await heir.recv() == b"new owner"


async def test_racing_binders_exactly_one_wins():
    children = [spawn(peers.bind_race, "shm://race") for _ in range(6)]
    try:
        for c in children:
            await c.expect("ready")
        for c in children:
            c.send("go")
        outcomes = sorted([await c.recv() for c in children])
        assert outcomes == ["bound"] + ["in use"] * 5
        for c in children:
            c.send("exit")
        for c in children:
            assert await c.join() == 0
    finally:
        for c in children:
            c.close()


def _modes(userdir):
    out = {}
    for name in os.listdir(userdir):
        st = os.lstat(userdir / name)
        out[name] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
    return out


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022, 0o777])
async def test_permissions_whatever_the_umask(umask, userdir):
    old = os.umask(umask)
    try:
        async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
            a.bind("shm://perm")
            b.connect("shm://perm")
            await a.send(b"x")
            assert await b.recv() == b"x"
            assert stat.S_IMODE(os.stat(userdir).st_mode) == 0o700
            modes = _modes(userdir)
            # lock, socket, slot lock, two rings; and the binder's ring made
            # ahead for its next connector, if it has made it yet
            made = [name for name in modes if "@spare." not in name]
            assert len(made) == 5, sorted(modes)
            assert len(modes) - len(made) <= 1, sorted(modes)
            for name, (fmt, mode) in modes.items():
                assert mode == 0o600, name
                expected = stat.S_IFSOCK if name.endswith("@sock") else stat.S_IFREG
                assert fmt == expected, name
    finally:
        os.umask(old)


async def test_user_dir_with_wider_permissions_is_refused(shm_root, userdir):
    userdir.mkdir(mode=0o755)
    os.chmod(userdir, 0o755)
    async with shmsock.socket(PULL) as s:
        with pytest.raises(shmsock.UnsafeFile) as caught:
            s.bind("shm://x")
    assert str(caught.value) == (
        f"{userdir} has mode 0755; shmsock only uses its own 0700 directories"
    )
    os.rmdir(userdir)


async def test_a_file_with_another_mode_is_refused_in_words(userdir):
    userdir.mkdir(mode=0o700)
    path = userdir / "sq@lock"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    async with shmsock.socket(PULL) as s:
        with pytest.raises(shmsock.UnsafeFile) as caught:
            s.bind("shm://sq")
    assert str(caught.value) == f"{path} has mode 0644; shmsock only uses its own 0600 files"
    path.unlink()


async def test_user_dir_as_a_symlink_is_refused(shm_root, userdir, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    userdir.symlink_to(target)
    async with shmsock.socket(PULL) as s:
        with pytest.raises(shmsock.UnsafeFile, match="symlink"):
            s.bind("shm://x")
    userdir.unlink()


@pytest.mark.parametrize("what", ["symlink", "fifo", "wrong-mode", "other-owner"])
async def test_squatted_bind_lock_is_refused(what, userdir, tmp_path):
    userdir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch")
    path = userdir / "sq@lock"
    if what == "symlink":
        path.symlink_to(victim)
    elif what == "fifo":
        os.mkfifo(path, 0o600)
    elif what == "wrong-mode":
        path.write_bytes(b"")
        os.chmod(path, 0o644)
    else:
        path.write_bytes(b"")
        os.chmod(path, 0o600)
        os.chown(path, 12345, 12345)
    async with shmsock.socket(PULL) as s:
        with pytest.raises(shmsock.UnsafeFile):
            s.bind("shm://sq")
    assert victim.read_bytes() == b"do not touch"
    path.unlink()


async def test_connector_refuses_a_squatted_socket_then_takes_the_next_real_binder(
    userdir, tmp_path
):
    userdir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (userdir / "sqs@sock").symlink_to(victim)
    async with shmsock.socket(PUSH) as push:
        push.connect("shm://sqs")
        with trio.fail_after(10):  # a hang guard only
            with pytest.raises(shmsock.UnsafeFile):
                await push.send(b"not to a symlink")
            (userdir / "sqs@sock").unlink()
            async with shmsock.socket(PULL) as pull:
                pull.bind("shm://sqs")
                await push.send(b"to the real binder")
                assert await pull.recv() == b"to the real binder"
    assert victim.read_bytes() == b"precious"


async def test_squatted_slot_lock_is_skipped_never_followed(userdir, tmp_path, caplog):
    userdir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (userdir / "sl@0.lock").symlink_to(victim)
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://sl")
        push.connect("shm://sl")  # takes the next slot
        await push.send(b"through slot 1")
        assert await pull.recv() == b"through slot 1"
        assert (userdir / "sl@1.c").exists()
    assert victim.read_bytes() == b"precious"
    assert (userdir / "sl@0.lock").is_symlink()  # neither used nor removed
    assert "unsafe file" in caplog.text
    (userdir / "sl@0.lock").unlink()


async def test_descriptors_are_close_on_exec():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("shm://cloexec")
        b.connect("shm://cloexec")
        await a.send(b"x")
        assert await b.recv() == b"x"
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
        ours = []
        for fd in fds:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if "shmsock-" in target or target.startswith(("socket:", "anon_inode:")):
                ours.append(fd)
        assert ours
        for fd in ours:
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFD)
            except OSError:
                continue
            assert flags & fcntl.FD_CLOEXEC, os.readlink(f"/proc/self/fd/{fd}")
        # And a child process sees none of them.
        out = await trio.run_process(
            [sys.executable, "-c", "import os; print(len(os.listdir('/proc/self/fd')))"],
            capture_stdout=True,
        )
        assert int(out.stdout) <= 4


async def test_missing_root_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SHMSOCK_ROOT", str(tmp_path / "nope"))
    async with shmsock.socket(PULL) as s:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            s.bind("shm://x")


async def test_connect_to_first_message_does_not_poll(userdir, mock_clock):
    """The binder notices the connector through its socket, not a timer.

    Trio's clock stands still here (``mock_clock``): a timer never fires,
    so a binder that polled would hang the test (until pytest-timeout ends
    it), however fast or loaded the machine.
    """
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://fast")
        push.connect("shm://fast")
        await push.send(b"first")
        assert await pull.recv() == b"first"


@pytest.mark.parametrize("how", ["drops", "finds-corrupt"])
async def test_binder_dropping_us_right_after_welcome_is_retried_not_a_refusal(how, monkeypatch):
    """The binder's ring vanishes between its WELCOME and our opening it.

    The binder handles the HELLO, WELCOME included, in one go and then drops
    the connection at once (closing it, or finding our ring corrupt), so by
    the time the connector reads the WELCOME the ring is gone: a real race,
    forced.  The connector dials again and attaches; nothing is raised.
    """
    async with shmsock.socket(PULL) as pull, shmsock.socket(PUSH) as push:
        pull.bind("shm://welcome-gone")
        conns = seam.shm(pull).conns
        real_attach = conns.attach
        dropped = []

        def attach_then_drop(conn):
            real_attach(conn)
            if not dropped:
                dropped.append(conn)
                if how == "drops":
                    conns.gone(conn)
                else:
                    conn.reject()

        monkeypatch.setattr(conns, "attach", attach_then_drop)
        push.connect("shm://welcome-gone")
        first_ring = seam.slots(push)[0].seg
        with trio.fail_after(10):
            await push.send(b"through the retry")
            assert await pull.recv() == b"through the retry"
        assert len(dropped) == 1
        assert push.peer_count == pull.peer_count == 1
        assert seam.slots(push)[0].refused is None
        # Told its ring was corrupt, the connector came back with a new one.
        assert (seam.slots(push)[0].seg is not first_ring) == (how == "finds-corrupt")


async def test_binder_of_another_user_is_refused_saying_so_and_the_next_one_is_used(monkeypatch):
    """The process listening at NAME@sock runs as another user (SO_PEERCRED).

    Tests cannot switch users, so the connector's view of the binder's uid
    is forged.  It never talks to that binder: send and recv raise why
    while it has no peer, and the next socket that binds is connected to.
    """
    foreign = True

    def peer_cred(sock):
        pid, uid = real_peer_cred(sock)
        return (pid, uid + 1) if foreign else (pid, uid)

    real_peer_cred = seam.patch_peer_cred(monkeypatch, peer_cred)
    with spawn(peers.bind_and_hold, "shm://foreign", "PAIR") as child:
        await child.expect("ready")
        async with shmsock.socket(PAIR) as pair:
            pair.connect("shm://foreign")
            other = f"uid {os.geteuid() + 1}, not {os.geteuid()}"
            with trio.fail_after(10):  # a hang guard: both raise at once
                with pytest.raises(ConnectionRefusedError, match="another user") as info:
                    await pair.send(b"not for them")
                assert other in str(info.value)
                with pytest.raises(ConnectionRefusedError, match="another user"):
                    await pair.recv()
            foreign = False
            await child.finish()
            async with shmsock.socket(PAIR) as ours:
                ours.bind("shm://foreign")
                with trio.fail_after(10):
                    await pair.send(b"for us")
                    assert await ours.recv() == b"for us"


async def test_binder_dying_between_our_connect_and_hello_is_retried_with_the_next(monkeypatch):
    """The binder dies after accepting our connect() into its backlog, before our HELLO.

    A real race, forced: the binder (another process) is killed at the one
    point between the two, so the HELLO meets a reset connection.  The
    connector waits for the next binder like one that found a dead
    binder's socket, and attaches to it.
    """
    child = spawn(peers.bind_and_hold, "shm://gone-at-hello")
    killed = []

    def kill_then_peer_cred(sock):
        if not killed:  # _dial asks for the binder's uid right before the HELLO
            child.kill()
            killed.append(child.pid)
        return real_peer_cred(sock)

    try:
        await child.expect("ready")
        async with shmsock.socket(PUSH) as push:
            real_peer_cred = seam.patch_peer_cred(monkeypatch, kill_then_peer_cred)
            push.connect("shm://gone-at-hello")
            assert killed == [child.pid]
            assert seam.slots(push)[0].refused is None  # a dead binder is no refusal
            seam.patch_peer_cred(monkeypatch, real_peer_cred)
            async with shmsock.socket(PULL) as pull:
                pull.bind("shm://gone-at-hello")  # takes the dead binder's endpoint over
                with trio.fail_after(10):  # a hang guard, not a timing assertion
                    await push.send(b"through the next binder")
                    assert await pull.recv() == b"through the next binder"
    finally:
        child.close()
