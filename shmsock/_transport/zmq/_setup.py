"""What a link's libzmq socket is given, and what a failed handshake means.

``configure`` sets a new libzmq socket's options from the socket's (their
units are seconds; libzmq's milliseconds), CURVE included, and registers a
server's ``curve_clients`` with the ZAP handler.  ``failure`` turns the
monitor's report of a failed handshake into the exception a connecting
socket raises while it has no peer (``Transport.check_usable``).
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Final

import zmq

from ..._errors import IncompatiblePeer, SecurityError
from . import _context

if TYPE_CHECKING:
    from ..._options import Options

__all__ = ["configure", "failure", "ms"]

#: tcp_keepalive's probes: one a second, three unanswered and the peer is dead.
_KEEPALIVE_INTERVAL: Final = 1
_KEEPALIVE_PROBES: Final = 3
_SECURITY_CODES: Final = frozenset(
    {
        zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC,
        zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH,
        zmq.PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE,
    }
)


def ms(seconds: float) -> int:
    """libzmq's milliseconds for *seconds*."""
    return round(seconds * 1000)


def configure(sock: zmq.Socket[Any], o: Options, *, bound: bool, router: bool, ipv6: bool) -> str:
    """Give *sock* the socket's options; returns its ZAP domain ("" if none).

    Raises ValueError for a CURVE server without its secret key.
    """
    sock.setsockopt(zmq.LINGER, -1 if o.linger is None else ms(o.linger))
    sock.setsockopt(zmq.SNDHWM, o.sndhwm)
    sock.setsockopt(zmq.RCVHWM, o.rcvhwm)
    # libzmq bounds each frame; the socket checks whole messages itself.
    sock.setsockopt(zmq.MAXMSGSIZE, o.max_msg_size)
    sock.setsockopt(zmq.HEARTBEAT_IVL, ms(o.heartbeat_ivl))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ms(o.heartbeat_timeout))
    if o.heartbeat_ttl is not None:
        sock.setsockopt(zmq.HEARTBEAT_TTL, ms(o.heartbeat_ttl))
    if o.tcp_keepalive is not None:
        # The kernel answers probes whether or not anyone reads, so a slow
        # receiver is never taken for a dead one (heartbeats can be).
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, math.ceil(o.tcp_keepalive))
        sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, _KEEPALIVE_INTERVAL)
        sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, _KEEPALIVE_PROBES)
    sock.setsockopt(zmq.RECONNECT_IVL, -1 if o.reconnect_ivl is None else ms(o.reconnect_ivl))
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, ms(o.reconnect_ivl_max))
    # libzmq's IMMEDIATE stays off: "send waits for a peer" is the link's own
    # (a pipe shows only while a connection is up, the package's rule 8).
    # With it on, libzmq throws away what the socket had received and not yet
    # read when the connection drops (a peer that sends and exits), and what
    # was queued for sending too.
    sock.setsockopt(zmq.IMMEDIATE, 0)
    sock.setsockopt(zmq.IPV6, int(o.ipv6 or ipv6))
    if o.nodrop and sock.type in (zmq.PUB, zmq.XPUB):
        # libzmq's publisher then refuses (Again) a message that a matching
        # subscriber has no room for, to all of them, instead of dropping it.
        sock.setsockopt(zmq.XPUB_NODROP, 1)
    if o.routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, o.routing_id)
    if router:
        # A reply to a requester that has gone fails (and is dropped, as REP
        # does) instead of vanishing; and a full requester says Again.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    domain = ""
    if o.curve_server:
        if o.curve_secretkey is None:
            raise ValueError(
                "curve_server needs curve_secretkey, the server's secret key"
                " (shmsock.curve_keypair() makes a key pair)"
            )
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, o.curve_secretkey)
        if o.curve_publickey is not None:
            sock.setsockopt(zmq.CURVE_PUBLICKEY, o.curve_publickey)
        if o.curve_clients is not None:
            domain = f"shmsock-{id(sock):x}-{random.getrandbits(32):08x}"
            sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
            _context.allow_clients(domain, frozenset(map(_z85, o.curve_clients)))
    elif o.curve_serverkey is not None:
        public, secret = o.curve_publickey, o.curve_secretkey
        if public is None or secret is None:
            public, secret = zmq.curve_keypair()  # a client may be anonymous
        sock.setsockopt(zmq.CURVE_SERVERKEY, o.curve_serverkey)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    return domain


def failure(event: int, value: int, endpoint: str, o: Options) -> Exception | None:
    """Why a connecting socket's handshake failed, or None: try again, say nothing."""
    where = f"the handshake with {endpoint} failed"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return SecurityError(
            f"{where}: the server refused this client (ZAP status {value}): its public key"
            " is not among the server's curve_clients"
        )
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            why = (
                "this socket speaks CURVE and the server does not"
                if o.curve_serverkey is not None
                else "the server speaks CURVE: set curve_serverkey to its public key"
            )
            return SecurityError(f"{where}: {why}")
        if value in _SECURITY_CODES:
            return SecurityError(f"{where}: CURVE error {value:#x}")
        return IncompatiblePeer(f"{where}: ZMTP protocol error {value:#x}")
    if o.curve_serverkey is not None:
        return SecurityError(
            f"{where}: the server closed the connection during the CURVE handshake, most"
            " likely because curve_serverkey is not its public key"
        )
    # The connection closed mid-handshake with no reason: a peer that
    # restarts, or that is no ZeroMQ program.  libzmq dials again.
    return None


def _z85(key: bytes) -> bytes:
    """A CURVE key as 40 bytes of Z85, as the ZAP handler names clients."""
    from zmq.utils import z85

    return z85.encode(key) if len(key) == 32 else key
