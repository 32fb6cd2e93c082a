"""CURVE key pairs for ``tcp://`` and ``ipc://`` (libzmq's, through pyzmq, imported on use)."""

from __future__ import annotations

__all__ = ["curve_keypair"]


def curve_keypair() -> tuple[bytes, bytes]:
    """A new CURVE key pair: ``(public, secret)``, each 40 bytes of Z85 text.

    Give a server ``curve_server=True, curve_secretkey=secret`` and its
    clients ``curve_serverkey=public``; keep the secret key secret (it is
    never shown in a repr).  Z85 is printable, so keys may live in
    configuration files.  Needs pyzmq (``pip install 'shmsock[zmq]'``), and
    raises ImportError naming it otherwise.
    """
    try:
        import zmq
    except ImportError as exc:
        raise ImportError(
            "CURVE keys come from libzmq, which comes with pyzmq: pip install 'shmsock[zmq]'",
            name="zmq",
        ) from exc
    public, secret = zmq.curve_keypair()
    return public, secret
