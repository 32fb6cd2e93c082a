"""A socket type's own public methods live with its pattern (``socket_methods``).

Issue 20's SUB will add ``subscribe`` this way; here a stand-in type shows
that ``shmsock.socket`` mixes them in, keeps the plain ``Socket`` for the
others, and that the mixed class keeps Socket's slots.
"""

from __future__ import annotations

import pytest

import shmsock
from shmsock import PAIR, PUSH, _socket
from shmsock._patterns import PATTERNS
from shmsock._patterns.pair import PairPattern


class Greeting:
    __slots__ = ()

    def greet(self) -> str:
        return f"a {self._pattern.kind.name} says hello"  # type: ignore[attr-defined]


class GreetingPair(PairPattern):
    socket_methods = Greeting


@pytest.fixture
def greeting_pair(monkeypatch):
    monkeypatch.setitem(PATTERNS, PAIR, GreetingPair)
    monkeypatch.setattr(_socket, "_classes", {})


async def test_a_types_methods_are_mixed_into_its_sockets_only(greeting_pair):
    async with shmsock.socket(PAIR) as pair, shmsock.socket(PUSH) as push:
        assert pair.greet() == "a PAIR says hello"
        assert isinstance(pair, shmsock.Socket)
        assert type(pair).__name__ == "PairSocket"
        assert type(push) is shmsock.Socket
        assert not hasattr(push, "greet")
        with pytest.raises(AttributeError):
            pair.lingr = 0  # still no __dict__: a misspelt option is an error
    assert type(shmsock.socket(PAIR)) is type(pair)  # one class per type


def test_a_misspelt_option_attribute_is_an_error():
    sock = shmsock.socket(PUSH)
    with pytest.raises(AttributeError):
        sock.lingr = 0  # type: ignore[attr-defined]
    sock.linger = 0
    assert sock.linger == 0
