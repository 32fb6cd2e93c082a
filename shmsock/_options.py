"""Socket options: names, defaults, ranges and validation."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields
from typing import Any, Final

KiB: Final = 1024
MiB: Final = 1024 * KiB

RING_SIZE_MIN: Final = 4 * KiB
RING_SIZE_MAX: Final = 64 * MiB
MAX_MSG_SIZE_MAX: Final = 1 << 40
SPIN_US_MAX: Final = 1_000_000
SCHEDULE_EVERY_US_MAX: Final = 1_000_000


@dataclass(frozen=True)
class Options:
    """The options of a socket, validated.

    ring_size
        Bytes of each ring this socket writes, one per connection (the peer
        sizes the ring in the other direction).  Rounded up to a power of
        two, from 4 KiB to 64 MiB.  Default 1 MiB.  A PULL socket never
        writes a message, so its rings take the smallest size whatever
        this says.
    max_msg_size
        Largest message, in payload bytes over all frames, that this socket
        sends or accepts.  Default 64 MiB; at most 2**40.
    spin_us
        The most microseconds a receiver busy-polls its rings before it
        parks.  Spinning holds the Trio thread, so it trades CPU for
        wake-up latency; it adapts to how long answers take, and stops
        when it stops paying or the machine has no CPU to spare.  Default
        0: park at once.
    checksum
        Whether this socket computes CRC32C over what it sends.  Receivers
        check every record that carries one.  Default True.
    schedule_every_us
        How often, at most, the message methods (``await send()``,
        ``await recv()`` and the like) let other tasks run, in microseconds
        of calls that never had to wait.  Every call checks for
        cancellation; a call that did not wait goes through Trio's
        scheduler only if this thread has not yielded for that long.
        Default 100; 0 yields on every call (Trio's strictest reading of
        its checkpoint rule, and what ``trio.testing.assert_checkpoints``
        expects).  A deadline that passes while a task sends or receives
        without ever waiting is noticed up to this much late.
    linger
        Seconds ``aclose()`` waits for the readers to take what this socket
        sent; ``0`` does not wait, ``None`` waits without bound.  Default
        1.0.  A reader that is attached gets everything whatever the wait
        did: it reads the rest after the close.  Only where this socket
        connected and its binder is gone is the end of the wait final:
        the messages still in that ring are lost then, and counted in
        ``dropped``.  On ``tcp://`` and ``ipc://`` it is libzmq's LINGER:
        how long libzmq keeps sending what it holds after the close (see
        :doc:`network`); ``aclose`` does not wait for those.
    routing_id
        What this socket asks its ROUTER peers to call it (libzmq's
        ``ZMQ_ROUTING_ID``): 1 to 255 bytes, not starting with a zero byte
        (those are the ids a ROUTER makes up).  Default None: each ROUTER
        gives it an id of its own.  A ROUTER that has a live peer of that
        id already refuses the connection (RoutingIdInUse).
    router_mandatory
        ROUTER only: whether sending to a routing id that names no peer
        raises HostUnreachable (True, the default) or drops the message
        silently, counting it (False, libzmq's default).

    nodrop
        PUB and XPUB: a subscriber whose ring is full makes ``send`` wait
        (``send_nowait``: raise trio.WouldBlock) until every subscriber the
        message goes to has room, and then it goes to all of them at once;
        a cancelled send has sent it to none.  Default False: as in
        libzmq, that subscriber misses the message, and the drop is
        counted in ``dropped``.  Other types ignore it.
    conflate
        SUB: keep only the latest message of each subscription (the
        longest one a message matches), whole, however many frames it has;
        ``recv`` returns the latest of each, oldest first.  The socket
        reads its rings whenever it handles events, so it keeps up while
        its task reaches checkpoints.  Default False.  Other types ignore
        it.

    The options below apply to ``tcp://`` and ``ipc://`` endpoints only (each
    one a libzmq socket; see :doc:`network`), and take effect on the
    endpoints bound or connected after they are set.  ``shm://`` and
    ``inproc://`` ignore them, as these transports ignore libzmq.  Times are
    in seconds, as ``linger``, not libzmq's milliseconds.

    sndhwm, rcvhwm
        libzmq's high-water marks: messages queued in libzmq per connection
        for sending, and for receiving.  Default 1000; 0 means no limit.
        (On ``shm://`` the high-water mark is ``ring_size``, in bytes.)
    heartbeat_ivl
        Seconds between ZMTP heartbeats on each connection; 0 (the default)
        sends none.  With heartbeats, a peer whose host died or whose
        network went is gone ``heartbeat_timeout`` after a heartbeat that
        nothing answered.  Beware: libzmq counts only what it reads, and
        stops reading a connection whose receiver lets its queue fill, so a
        receiver that does not read for longer than ``heartbeat_timeout``
        while its queue is full loses a healthy connection.
    heartbeat_timeout
        Seconds without any traffic, after a heartbeat was sent, before the
        connection counts as dead and is closed.  Default 3.0.
    tcp_keepalive
        Seconds a ``tcp://`` connection may be idle before the kernel
        probes its peer (every second, three times, then the connection is
        closed as dead).  Default 10.0: a peer whose host died or whose
        network went is noticed some 13 seconds after the connection went
        quiet, whether or not anyone reads it.  None leaves the system's
        setting (usually off).
    heartbeat_ttl
        Asks the peer to close the connection if it hears nothing from this
        socket for that many seconds (at most 6553.5, rounded down to a
        tenth); None (the default) asks nothing.
    reconnect_ivl
        Seconds a connecting socket waits before it tries again after a
        failed or lost connection.  Default 0.1.  None never reconnects.
    reconnect_ivl_max
        With a value above ``reconnect_ivl``, the wait doubles after each
        failed try, up to this.  Default 0: no back-off.
    immediate
        Default True: a connecting socket counts its peer as attached only
        once the connection is made and its handshake done (as libzmq's
        IMMEDIATE, which shmsock leaves off: see :doc:`network`), so
        ``send`` waits for a peer as on ``shm://``, and a REQ or PAIR whose
        peer's connection is lost hears of it.  False: the connection
        counts as attached from ``connect()`` on, and libzmq queues messages
        (up to ``sndhwm``) while it is not made or is being made again.
    ipv6
        Whether ``tcp://`` endpoints may use IPv6 (and names resolve to IPv6
        addresses).  Default False, as in libzmq.
    curve_server
        This socket is a CURVE server: its ``tcp://`` and ``ipc://``
        connections are encrypted and authenticated, with
        ``curve_secretkey`` (and ``curve_publickey``) as its key pair.
        Clients need its public key.  Default False.
    curve_publickey, curve_secretkey
        This socket's CURVE key pair, each 40 characters of Z85 (str or
        bytes) or 32 raw bytes; :func:`shmsock.curve_keypair` makes one.  A
        client without them gets a fresh pair of its own.  The secret key
        never appears in a repr.
    curve_serverkey
        Set on a client: the public key of the CURVE server it connects to.
        Its connections are then encrypted, and fail unless the server has
        the matching secret key.
    curve_clients
        On a CURVE server: the public keys of the clients allowed in (any
        collection of keys as above).  Default None: any client that knows
        the server's public key.  Checked by a ZAP handler that shmsock
        runs (see :doc:`network`).
    """

    ring_size: int = 1 * MiB
    max_msg_size: int = 64 * MiB
    spin_us: int = 0
    checksum: bool = True
    linger: float | None = 1.0
    schedule_every_us: int = 100
    nodrop: bool = False
    conflate: bool = False
    routing_id: bytes | None = None
    router_mandatory: bool = True
    # tcp:// and ipc:// (libzmq) only; see ZMQ_OPTIONS.
    sndhwm: int = 1000
    rcvhwm: int = 1000
    heartbeat_ivl: float = 0.0
    heartbeat_timeout: float = 3.0
    heartbeat_ttl: float | None = None
    tcp_keepalive: float | None = 10.0
    reconnect_ivl: float | None = 0.1
    reconnect_ivl_max: float = 0.0
    immediate: bool = True
    ipv6: bool = False
    curve_server: bool = False
    curve_publickey: bytes | None = None
    curve_secretkey: bytes | None = field(default=None, repr=False)
    curve_serverkey: bytes | None = None
    curve_clients: frozenset[bytes] | None = None


_NAMES: Final = tuple(f.name for f in fields(Options))


class SocketOption(enum.StrEnum):
    """The names of the options, for ``setsockopt`` and ``getsockopt``.

    The members are strings, so ``shmsock.LINGER == "linger"``, and either
    spelling names the option.  Unlike pyzmq's numbered constants, only the
    options shmsock has exist: see :doc:`pyzmq` for the others.
    """

    RING_SIZE = "ring_size"
    MAX_MSG_SIZE = "max_msg_size"
    SPIN_US = "spin_us"
    CHECKSUM = "checksum"
    LINGER = "linger"
    SCHEDULE_EVERY_US = "schedule_every_us"
    NODROP = "nodrop"
    CONFLATE = "conflate"
    ROUTING_ID = "routing_id"
    ROUTER_MANDATORY = "router_mandatory"
    SNDHWM = "sndhwm"
    RCVHWM = "rcvhwm"
    HEARTBEAT_IVL = "heartbeat_ivl"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    HEARTBEAT_TTL = "heartbeat_ttl"
    TCP_KEEPALIVE = "tcp_keepalive"
    RECONNECT_IVL = "reconnect_ivl"
    RECONNECT_IVL_MAX = "reconnect_ivl_max"
    IMMEDIATE = "immediate"
    IPV6 = "ipv6"
    CURVE_SERVER = "curve_server"
    CURVE_PUBLICKEY = "curve_publickey"
    CURVE_SECRETKEY = "curve_secretkey"
    CURVE_SERVERKEY = "curve_serverkey"
    CURVE_CLIENTS = "curve_clients"


#: The options that only the ``tcp://`` and ``ipc://`` transports read (libzmq's).
#: One namespace for all options, as pyzmq has, with each transport reading
#: its own: the common ones (``max_msg_size``, ``linger``) apply everywhere,
#: ``ring_size``, ``spin_us`` and ``checksum`` to the shared-memory paths.
ZMQ_OPTIONS: Final = frozenset(
    {
        "sndhwm",
        "rcvhwm",
        "heartbeat_ivl",
        "heartbeat_timeout",
        "heartbeat_ttl",
        "tcp_keepalive",
        "reconnect_ivl",
        "reconnect_ivl_max",
        "immediate",
        "ipv6",
        "curve_server",
        "curve_publickey",
        "curve_secretkey",
        "curve_serverkey",
        "curve_clients",
    }
)


#: Options that may change only before the socket first binds or connects.
FIXED_ONCE_ATTACHED: Final = frozenset({"ring_size", "max_msg_size", "routing_id"})

_FAIL_AFTER = (
    "for a {what} timeout, put the call in a Trio cancel scope: `with trio.fail_after(seconds):`"
    " raises trio.TooSlowError, `with trio.move_on_after(seconds):` gives up quietly;"
    " a cancelled {call} {effect}"
)
_HWM = (
    "on shm:// the high-water mark is the ring: set ring_size, in bytes (the ring this socket"
    " writes to each peer; send waits while it is full); on tcp:// and ipc:// it is libzmq's,"
    " sndhwm and rcvhwm"
)

#: pyzmq's socket options that shmsock does not have, by lower-case name,
#: with what to do instead.  The errors for each spelling quote them.
PYZMQ_HINTS: Final = {
    "rcvtimeo": _FAIL_AFTER.format(what="receive", call="recv", effect="takes nothing"),
    "sndtimeo": _FAIL_AFTER.format(what="send", call="send", effect="sends nothing"),
    "hwm": _HWM,
    "sndbuf": _HWM,
    "rcvbuf": _HWM,
    "maxmsgsize": "it is called max_msg_size (in bytes; there is no -1 for no limit)",
    "rcvmore": "recv_multipart returns every frame of a message at once",
    "identity": "it is called routing_id (bytes)",
    "subscribe": "only a SUB socket subscribes (sub.subscribe(topic)); an XSUB sends"
    " b'\\x01' + topic",
    "unsubscribe": "only a SUB socket unsubscribes (sub.unsubscribe(topic)); an XSUB sends"
    " b'\\x00' + topic",
    "xpub_nodrop": "it is called nodrop (for PUB and XPUB alike)",
}


def no_such_option(name: str) -> str:
    """Why *name* is not an option, and for pyzmq's options, what to do instead."""
    hint = PYZMQ_HINTS.get(name.lower())
    if hint is not None:
        return f"shmsock has no option {name!r}: {hint}"
    common = ", ".join(n for n in _NAMES if n not in ZMQ_OPTIONS)
    return (
        f"unknown option {name!r}; the options are {common}, and for tcp:// and ipc://"
        f" {', '.join(n for n in _NAMES if n in ZMQ_OPTIONS)}"
    )


def option_name(option: object) -> str:
    """The name of the option *option* stands for: a SocketOption or its name.

    Names are matched in any case.  Raises ValueError for a name that is
    not one of shmsock's options (for one of pyzmq's, the message says what
    to do instead) and TypeError for anything but a str.
    """
    if isinstance(option, SocketOption):
        return option.value
    if not isinstance(option, str):
        raise TypeError(
            f"an option is named by shmsock.{SocketOption.LINGER.name} and the like, or by"
            f" its name as a str, not by {type(option).__name__} {option!r} (pyzmq's numbered"
            " constants are not shmsock's, and its units differ: linger is in seconds)"
        )
    name = option.lower()
    if name not in _NAMES:
        raise ValueError(no_such_option(option))
    return name


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"option {name} must be an int from {low} to {high}, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"option {name} must be from {low} to {high}, not {value}")
    return value


def make_options(**options: Any) -> Options:
    """Validate keyword options into an Options, naming any bad one.

    Raises TypeError for an unknown name or a value of the wrong type, and
    ValueError for a value out of range.
    """
    for name in options:
        if name not in _NAMES:
            raise TypeError(no_such_option(name))
    values: dict[str, Any] = {}
    if "ring_size" in options:
        size = _int("ring_size", options["ring_size"], 1, RING_SIZE_MAX)
        size = max(RING_SIZE_MIN, 1 << (size - 1).bit_length())
        values["ring_size"] = size
    if "max_msg_size" in options:
        values["max_msg_size"] = _int("max_msg_size", options["max_msg_size"], 0, MAX_MSG_SIZE_MAX)
    if "spin_us" in options:
        values["spin_us"] = _int("spin_us", options["spin_us"], 0, SPIN_US_MAX)
    if "schedule_every_us" in options:
        values["schedule_every_us"] = _int(
            "schedule_every_us", options["schedule_every_us"], 0, SCHEDULE_EVERY_US_MAX
        )
    for name in ("checksum", "nodrop", "conflate"):
        if name in options:
            if not isinstance(options[name], bool):
                raise TypeError(f"option {name} must be True or False, not {options[name]!r}")
            values[name] = options[name]
    if "linger" in options:
        linger = options["linger"]
        if linger is not None:
            if isinstance(linger, bool) or not isinstance(linger, int | float):
                raise TypeError(
                    f"option linger must be None or a number of seconds >= 0, not {linger!r}"
                )
            if not (linger >= 0 and not math.isnan(linger)):
                raise ValueError(f"option linger must be None or >= 0 seconds, not {linger}")
            linger = float(linger)
        values["linger"] = linger
    if "routing_id" in options:
        values["routing_id"] = check_routing_id(options["routing_id"])
    if "router_mandatory" in options:
        mandatory = options["router_mandatory"]
        if not isinstance(mandatory, bool):
            raise TypeError(f"option router_mandatory must be True or False, not {mandatory!r}")
        values["router_mandatory"] = mandatory
    for name in ZMQ_OPTIONS.intersection(options):
        values[name] = _ZMQ_CHECKS[name](name, options[name])
    return Options(**values)


def check_routing_id(value: Any) -> bytes | None:
    """*value* as a routing id a socket may ask for (None: none), or TypeError/ValueError."""
    if value is None:
        return None
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"option routing_id must be bytes or None, not {type(value).__name__}")
    rid = bytes(value)
    if not 1 <= len(rid) <= 255:
        raise ValueError(f"option routing_id must be 1 to 255 bytes, not {len(rid)}")
    if rid[0] == 0:
        raise ValueError(
            "option routing_id must not start with a zero byte: ROUTERs make up such ids"
        )
    return rid


# -- the tcp:// and ipc:// options ----------------------------------------------------

#: libzmq takes times as an int of milliseconds.
_MS_MAX: Final = (2**31 - 1) / 1000
#: ZMQ_HEARTBEAT_TTL travels in deciseconds, in 16 bits.
_TTL_MAX: Final = 6553.5
_Z85: Final = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"option {name} must be True or False, not {value!r}")
    return value


def _hwm(name: str, value: Any) -> int:
    return _int(name, value, 0, 2**31 - 1)


def _seconds(name: str, value: Any, high: float = _MS_MAX, *, none: bool = False) -> float | None:
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        what = "None or a number of seconds" if none else "a number of seconds"
        raise TypeError(f"option {name} must be {what}, not {value!r}")
    if not 0 <= value <= high:  # NaN fails both
        raise ValueError(f"option {name} must be from 0 to {high} seconds, not {value}")
    return float(value)


def _positive_seconds(name: str, value: Any) -> float:
    seconds = _seconds(name, value)
    assert seconds is not None
    if seconds < 0.001:
        raise ValueError(f"option {name} must be at least 0.001 seconds, not {value}")
    return seconds


def _keepalive(name: str, value: Any) -> float | None:
    seconds = _seconds(name, value, 2**31 - 1, none=True)
    if seconds is not None and seconds < 1:
        raise ValueError(f"option {name} must be None or at least 1 second, not {value}")
    return seconds


def curve_key(name: str, value: Any) -> bytes:
    """A CURVE key as bytes: 40 characters of Z85 (str or bytes) or 32 raw bytes.

    Raises TypeError or ValueError naming the option; the message never
    quotes the value (it may be a secret key).
    """
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if not isinstance(value, bytes):
        raise TypeError(
            f"option {name} must be a CURVE key: 40 characters of Z85 (str or bytes) or 32 raw"
            f" bytes, not {type(value).__name__}"
        )
    if len(value) == 32:
        return value
    if len(value) == 40 and _Z85.issuperset(value.decode("ascii", "replace")):
        return value
    raise ValueError(
        f"option {name} must be a CURVE key: 40 characters of Z85 or 32 raw bytes, not"
        f" {len(value)} bytes{'' if len(value) != 40 else ' with characters outside Z85'}"
        " (shmsock.curve_keypair() makes a key pair)"
    )


def _optional_key(name: str, value: Any) -> bytes | None:
    return None if value is None else curve_key(name, value)


def _keys(name: str, value: Any) -> frozenset[bytes] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"option {name} must be None or a collection of CURVE public keys (a list, a set),"
            f" not {type(value).__name__}"
        )
    return frozenset(curve_key(name, key) for key in value)


_ZMQ_CHECKS: Final[dict[str, Any]] = {
    "sndhwm": _hwm,
    "rcvhwm": _hwm,
    "heartbeat_ivl": _seconds,
    "heartbeat_timeout": _positive_seconds,
    "heartbeat_ttl": lambda name, value: _seconds(name, value, _TTL_MAX, none=True),
    "tcp_keepalive": lambda name, value: _keepalive(name, value),
    "reconnect_ivl": lambda name, value: _seconds(name, value, none=True),
    "reconnect_ivl_max": _seconds,
    "immediate": _bool,
    "ipv6": _bool,
    "curve_server": _bool,
    "curve_publickey": _optional_key,
    "curve_secretkey": _optional_key,
    "curve_serverkey": _optional_key,
    "curve_clients": _keys,
}
assert set(_ZMQ_CHECKS) == ZMQ_OPTIONS
