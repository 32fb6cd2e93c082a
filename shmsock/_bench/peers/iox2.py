"""iceoryx2's publish-subscribe from Python, written from its own examples.

A service of ``iox2.Slice[ctypes.c_uint8]`` per rig and direction, as in
iceoryx2's ``publish_subscribe_dynamic_data`` example, made lossless:
``enable_safe_overflow(False)`` with the publisher's
``BackpressureStrategy.RetryUntilDelivered``, so that a full subscriber
buffer makes the publisher wait instead of overwriting the oldest sample
(iceoryx2's default).  The subscriber's buffer holds 256 samples, fewer for
large messages.

- *Copy in and out*: the publisher loans a sample, copies the message into
  it (``ctypes.memmove`` to ``payload_ptr``) and sends it; the subscriber
  copies the payload out into ``bytes`` (``ctypes.string_at``) and
  releases the sample.  What a Python user does with bytes they have and
  bytes they keep.
- *Zero-copy*: the publisher writes only the 8-byte stamp into the loaned
  sample and the subscriber reads only that.  The rest of the payload is
  whatever the slot held.  Such figures are compared only with shmsock's
  zero-copy leases and loans, never with copying figures.

The subscriber busy-polls ``receive()``, as iceoryx2's examples do between
their waits.  For round trips, each side also has an event service:
*busy-polling* spins on ``receive()``; *parked* notifies the other side's
``Listener`` after each send and waits in its own ``blocking_wait()``
while nothing is there (iceoryx2's ``event`` example).

Every node of a run keeps its files under the bench's private directory
(the config's ``root_path``) with the run's prefix on its shared memory,
so nothing is left behind (``rigs.remove_iceoryx2_segments``).
"""

from __future__ import annotations

import ctypes
import os
from multiprocessing.connection import Connection
from typing import Any

from ..protocol import (
    STAMP,
    Checker,
    Pool,
    Spec,
    echoing,
    one_by_one,
    receiving,
    sending,
    step,
    timing,
)

BUFFER_BYTES = 64 << 20
MIN_SLICE = 24  # room for an END record whatever the size


def _node(spec: Spec) -> tuple[Any, Any]:
    import iceoryx2 as iox2

    iox2.set_log_level(iox2.LogLevel.Error)
    cfg = iox2.config.default()
    g = cfg.global_cfg
    g.root_path = iox2.Path.new(os.path.join(spec["tmp"], "iceoryx2") + "/")
    g.prefix = iox2.FileName.new(spec["iox2_prefix"])
    return iox2, iox2.NodeBuilder.new().config(cfg).create(iox2.ServiceType.Ipc)


def _service(iox2: Any, node: Any, name: str, size: int) -> Any:
    return (
        node.service_builder(iox2.ServiceName.new(name))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .enable_safe_overflow(False)
        .subscriber_max_buffer_size(_buffer(size))
        .open_or_create()
    )


def _buffer(size: int) -> int:
    return max(2, min(256, BUFFER_BYTES // size))


def _publisher(iox2: Any, service: Any, size: int) -> Any:
    return (
        service.publisher_builder()
        .initial_max_slice_len(max(size, MIN_SLICE))
        .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        .create()
    )


def _sender(iox2: Any, publisher: Any) -> Any:
    loan = publisher.loan_slice_uninit
    memmove = ctypes.memmove

    def send(m: bytes) -> None:
        sample = loan(len(m))
        memmove(sample.payload_ptr, m, len(m))
        sample.assume_init().send()

    return send


def receiver(conn: Connection, spec: Spec) -> None:
    size = spec["size"]
    zero_copy = spec["zero_copy"]
    iox2, node = _node(spec)
    service = _service(iox2, node, spec["name"], size)
    subscriber = service.subscriber_builder().create()
    conn.send("ready")
    checker = Checker(size, stamps=zero_copy)
    receive = subscriber.receive
    string_at = ctypes.string_at
    head = STAMP.size

    def recv() -> bytes:
        while True:
            sample = receive()
            if sample is not None:
                break  # else busy-polling
        n = sample.header.number_of_elements
        data = string_at(sample.payload_ptr, head if zero_copy and n == size else n)
        sample.delete()
        return data

    chunk = one_by_one(recv, checker, step(size))
    # A subscriber connects to a publisher made after it only when it polls;
    # until then a full buffer makes the publisher drop what it sends, even
    # with RetryUntilDelivered (iceoryx2's sender.rs: a receiver that is not
    # connected and whose buffer is full is skipped).  So it polls once
    # before each window, when the senders exist.
    receiving(conn, chunk, checker, before=subscriber.has_samples)
    del subscriber, service, node


def sender(conn: Connection, spec: Spec) -> None:
    size = spec["size"]
    zero_copy = spec["zero_copy"]
    pool = Pool(size, stamps_only=zero_copy)
    iox2, node = _node(spec)
    service = _service(iox2, node, spec["name"], size)
    publisher = _publisher(iox2, service, size)
    send = _sender(iox2, publisher)
    loan = publisher.loan_slice_uninit
    memmove = ctypes.memmove
    per = step(size)
    conn.send("ready")

    async def copy_in() -> int:
        for m in pool.take(per):
            sample = loan(size)
            memmove(sample.payload_ptr, m, size)
            sample.assume_init().send()
        return per

    async def stamp_only() -> int:
        for stamp in pool.take(per):
            sample = loan(size)
            memmove(sample.payload_ptr, stamp, STAMP.size)
            sample.assume_init().send()
        return per

    async def send_end(m: bytes) -> None:
        send(m)

    sending(conn, stamp_only if zero_copy else copy_in, send_end)
    del publisher, service, node


class _Ends:
    """One side of a round trip: a publisher to the other side, a subscriber from it."""

    def __init__(self, spec: Spec, me: str, other: str) -> None:
        iox2, self.node = _node(spec)
        size, name = spec["size"], spec["name"]
        self.publisher = _publisher(iox2, _service(iox2, self.node, f"{name}/{other}", size), size)
        self.subscriber = _service(iox2, self.node, f"{name}/{me}", size).subscriber_builder()
        self.subscriber = self.subscriber.create()
        self.parked = spec["parked"]
        push = _sender(iox2, self.publisher)
        receive = self.subscriber.receive
        string_at = ctypes.string_at
        if self.parked:
            events = self.node.service_builder
            self.listener = (
                events(iox2.ServiceName.new(f"{name}/events/{me}"))
                .event()
                .open_or_create()
                .listener_builder()
                .create()
            )
            self.notifier = (
                events(iox2.ServiceName.new(f"{name}/events/{other}"))
                .event()
                .open_or_create()
                .notifier_builder()
                .create()
            )
            notify = self.notifier.notify
            wait = self.listener.blocking_wait

            def send(m: bytes) -> None:
                push(m)
                notify()

            def recv() -> bytes:
                while True:
                    sample = receive()
                    if sample is not None:
                        break
                    wait()
                data = string_at(sample.payload_ptr, sample.header.number_of_elements)
                sample.delete()
                return data

        else:

            def send(m: bytes) -> None:
                push(m)

            def recv() -> bytes:
                while True:
                    sample = receive()
                    if sample is not None:
                        break
                data = string_at(sample.payload_ptr, sample.header.number_of_elements)
                sample.delete()
                return data

        self.send = send
        self.recv = recv


# A round trip has one message in flight, so a subscriber's buffer is never
# full and never drops one before the subscriber first polls (see receiver).


def echo(conn: Connection, spec: Spec) -> None:
    ends = _Ends(spec, "server", "client")
    conn.send("ready")
    echoing(conn, ends.recv, ends.send)
    del ends


def client(conn: Connection, spec: Spec) -> None:
    ends = _Ends(spec, "client", "server")
    conn.send("ready")
    timing(conn, ends.send, ends.recv)
    del ends
