"""The serialization helpers (``shmsock/_serializing.py``): pyzmq's names and shapes.

JSON runs twice, with orjson and with it hidden (the standard library
alone), and the two must agree on everything the standard library can do.
"""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
import trio
import trio.testing

import shmsock
from shmsock import DEALER, PAIR, ROUTER, _serializing


@pytest.fixture(params=["orjson", "stdlib"])
def codec(request, monkeypatch):
    if request.param == "stdlib":
        monkeypatch.setattr(_serializing, "_orjson", None)
    else:
        pytest.importorskip("orjson")
    return request.param


@pytest.fixture
async def pair():
    async with shmsock.socket(PAIR) as a, shmsock.socket(PAIR) as b:
        a.bind("inproc://ser")
        b.connect("inproc://ser")
        yield a, b


VALUES = [
    {"id": 1, "name": "zoë", "tags": ["a", "b"], "ok": True, "none": None, "f": 1.5},
    [1, 2, 3],
    "text",
    2**70,  # over 64 bits: orjson hands it to json
    {1: "int keys become str keys"},  # json converts them; orjson refuses and hands over
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
async def test_json_round_trips_as_the_standard_library_does(pair, codec, value):
    a, b = pair
    await a.send_json(value)
    assert await b.recv_json() == json.loads(json.dumps(value))
    a.send_json_nowait(value)
    assert b.recv_json_nowait() == json.loads(json.dumps(value))


async def test_json_kwargs_go_to_the_standard_library(pair, codec):
    a, b = pair
    await a.send_json({"b": 1, "a": 2}, sort_keys=True, indent=1)
    assert await b.recv() == json.dumps({"a": 2, "b": 1}, indent=1).encode()
    await a.send(b'{"x": 1.5}')
    assert await b.recv_json(parse_float=str) == {"x": "1.5"}


async def test_json_from_a_pyzmq_style_sender_is_read(pair, codec):
    a, b = pair
    await a.send(json.dumps({"k": "v", "n": [1, 2]}).encode("utf8"))  # pyzmq's jsonapi
    assert await b.recv_json() == {"k": "v", "n": [1, 2]}


async def test_what_cannot_be_encoded_is_not_sent(pair, codec):
    a, b = pair
    with pytest.raises(TypeError):
        await a.send_json({"set": {1, 2}})
    with pytest.raises(TypeError):
        a.send_json_nowait(object())
    with pytest.raises(trio.WouldBlock):
        b.recv_nowait()


async def test_what_cannot_be_decoded_is_consumed_and_raises(pair, codec):
    a, b = pair
    await a.send(b"{not json")
    await a.send_json("next")
    with pytest.raises(json.JSONDecodeError):
        await b.recv_json()
    assert await b.recv_json() == "next"


async def test_orjson_also_encodes_dataclasses(pair):
    pytest.importorskip("orjson")

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    a, b = pair
    await a.send_json(Point(1, 2))
    assert await b.recv_json() == {"x": 1, "y": 2}


async def test_pyobj(pair):
    a, b = pair
    value = {"set": {1, 2}, "tuple": (1, "x"), "bytes": b"\x00"}
    await a.send_pyobj(value)
    assert await b.recv_pyobj() == value
    a.send_pyobj_nowait(value, protocol=2)
    assert b.recv_pyobj_nowait() == value
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        await a.send_pyobj(lambda: None)
    await a.send(b"not a pickle")
    with pytest.raises(pickle.UnpicklingError):
        await b.recv_pyobj()
    with pytest.raises(trio.WouldBlock):
        b.recv_nowait()


async def test_string(pair):
    a, b = pair
    await a.send_string("zoë")
    assert await b.recv() == "zoë".encode()
    a.send_string_nowait("zoë", encoding="latin-1")
    assert b.recv_string_nowait(encoding="latin-1") == "zoë"
    await a.send_string("€")
    assert await b.recv_string() == "€"
    with pytest.raises(TypeError, match="str"):
        await a.send_string(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        await a.send_string("€", encoding="ascii")
    await a.send(b"\xff")
    with pytest.raises(UnicodeDecodeError):
        await b.recv_string()


async def test_serialized_with_a_codec_of_ones_own(pair):
    a, b = pair

    def serialize(msg: dict[str, bytes]) -> list[bytes]:
        return [msg["head"], msg["body"]]

    def deserialize(frames: list[bytes]) -> dict[str, bytes]:
        return {"head": frames[0], "body": frames[1]}

    await a.send_serialized({"head": b"h", "body": b"b"}, serialize)
    assert await b.recv_multipart() == [b"h", b"b"]
    a.send_serialized_nowait({"head": b"h2", "body": b"b2"}, serialize)
    assert b.recv_serialized_nowait(deserialize) == {"head": b"h2", "body": b"b2"}
    await a.send_multipart([b"x", b"y"])
    assert await b.recv_serialized(deserialize) == {"head": b"x", "body": b"y"}


async def test_the_helpers_keep_trios_rules(pair):
    a, b = pair
    a.schedule_every_us = b.schedule_every_us = 0  # a schedule point on every call
    with trio.testing.assert_checkpoints():
        await a.send_json({"x": 1})
    with trio.testing.assert_checkpoints():
        assert await b.recv_json() == {"x": 1}
    with trio.move_on_after(0.01) as cs:
        await b.recv_pyobj()
    assert cs.cancelled_caught
    await a.send_string("after")
    assert await b.recv_string() == "after"  # the cancelled receive took nothing


async def test_a_router_uses_send_serialized_for_its_envelope():
    async with shmsock.socket(ROUTER) as router, shmsock.socket(DEALER, routing_id=b"d") as d:
        router.bind("inproc://ser-router")
        d.connect("inproc://ser-router")
        await d.send_json({"q": 1})
        rid, _ = await router.recv_multipart()
        await router.send_serialized((rid, {"a": 2}), lambda m: [m[0], json.dumps(m[1]).encode()])
        assert await d.recv_json() == {"a": 2}
