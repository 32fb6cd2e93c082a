"""CURVE over tcp://: the right key works, a wrong key never delivers and says so.

Servers and clients are ours and plain pyzmq programs, each way round.
"""

from __future__ import annotations

import pytest
import trio
from zmq_helpers import LOOPBACK, peer, zsocket

import shmsock
from shmsock import PULL, PUSH, SecurityError

pytestmark = pytest.mark.timeout(60)

SERVER = shmsock.curve_keypair()
CLIENT = shmsock.curve_keypair()
STRANGER = shmsock.curve_keypair()


def server_options(secret: bytes = SERVER[1]) -> dict[str, object]:
    return {"CURVE_SERVER": 1, "CURVE_SECRETKEY": secret}


def client_options(server_public: bytes = SERVER[0], pair=CLIENT) -> dict[str, object]:
    return {
        "CURVE_SERVERKEY": server_public,
        "CURVE_PUBLICKEY": pair[0],
        "CURVE_SECRETKEY": pair[1],
    }


def test_curve_keypair_gives_z85_keys_and_they_are_never_shown():
    public, secret = shmsock.curve_keypair()
    assert len(public) == len(secret) == 40 and public != secret
    options = shmsock.Options(curve_secretkey=secret)
    assert secret.decode() not in repr(options)
    with pytest.raises(ValueError, match="curve_secretkey must be a CURVE key") as info:
        shmsock.socket(PUSH, curve_secretkey=secret[:-1])
    assert secret[:-1].decode() not in str(info.value)


async def test_our_server_takes_from_their_client_with_the_right_key():
    async with zsocket(PULL, curve_server=True, curve_secretkey=SERVER[1]) as pull:
        endpoint = pull.bind(LOOPBACK)
        sent = [[b"secret %d" % i] for i in range(10)]
        async with peer("source", endpoint, False, "PUSH", sent, client_options()) as theirs:
            assert [await pull.recv_multipart() for _ in sent] == sent
            theirs.send("exit")


async def test_our_client_reaches_their_server_with_the_right_key_and_never_with_a_wrong_one():
    async with peer("collect", LOOPBACK, True, "PULL", server_options()) as theirs:
        async with zsocket(PUSH, curve_serverkey=SERVER[0]) as push:  # an anonymous client
            push.connect(theirs.endpoint)
            await push.send(b"for the server")
            await push.send(b"END")  # sent last, so it tells the server to report
        async with zsocket(PUSH, curve_serverkey=STRANGER[0]) as wrong:
            wrong.connect(theirs.endpoint)
            with trio.fail_after(10), pytest.raises(SecurityError, match="curve_serverkey"):
                await wrong.send(b"for nobody")
        async with zsocket(PUSH) as plain:
            plain.connect(theirs.endpoint)
            with trio.fail_after(10), pytest.raises(SecurityError, match="speaks CURVE"):
                await plain.send(b"in the clear")
        assert await theirs.expect("got") == [[b"for the server"]]
        theirs.send("exit")


async def test_curve_clients_lets_in_only_the_listed_keys():
    async with zsocket(
        PULL, curve_server=True, curve_secretkey=SERVER[1], curve_clients=[CLIENT[0]]
    ) as pull:
        endpoint = pull.bind(LOOPBACK)
        async with (
            peer(
                "source", endpoint, False, "PUSH", [[b"stranger"]], client_options(pair=STRANGER)
            ) as stranger,
            peer("source", endpoint, False, "PUSH", [[b"friend"]], client_options()) as friend,
        ):
            assert await pull.recv() == b"friend"
            await friend.expect("sent")
            # Ours, refused the same way, says why.
            async with zsocket(
                PUSH, curve_serverkey=SERVER[0], curve_publickey=STRANGER[0],
                curve_secretkey=STRANGER[1],
            ) as ours:  # fmt: skip
                ours.connect(endpoint)
                with trio.fail_after(10), pytest.raises(SecurityError, match="not among"):
                    await ours.send(b"let me in")
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()  # the stranger's message never came
            stranger.send("exit")
            friend.send("exit")


async def test_a_server_without_its_secret_key_is_refused_at_bind():
    async with zsocket(PULL, curve_server=True) as pull:
        with pytest.raises(ValueError, match="curve_server needs curve_secretkey"):
            pull.bind(LOOPBACK)
