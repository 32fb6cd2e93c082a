"""Every public method of a socket states what it raises and what a cancel does.

Trio's own ABCs (``trio/_abc.py``) give each method a ``Raises:`` block and
a word on cancellation; shmsock's sockets promise the same, and this test
keeps the promise from rotting.  Each public method of :class:`shmsock.Socket`
has a docstring with a ``Raises:`` section whose entries name only
exceptions that exist (or say ``Nothing``), and each ``async`` method an
``On cancel:`` section that says something.
"""

from __future__ import annotations

import builtins
import inspect
import re
import textwrap

import pytest
import trio

import shmsock

_SECTION = re.compile(r"^(Raises|On cancel):\s*$", re.MULTILINE)


def public_methods() -> list[tuple[str, object]]:
    """The public methods of Socket, its own and its mixins' (not object's)."""
    out = {}
    for cls in reversed(shmsock.Socket.__mro__[:-1]):
        for name, value in vars(cls).items():
            if name.startswith("_") and name not in ("__aenter__", "__aexit__", "__anext__"):
                continue
            if isinstance(value, property | staticmethod | classmethod) or not callable(value):
                continue
            out[name] = value
    return sorted(out.items())


METHODS = public_methods()


def sections(doc: str) -> dict[str, str]:
    """The text of each ``Raises:`` and ``On cancel:`` section of *doc*."""
    out: dict[str, str] = {}
    for m in _SECTION.finditer(doc):
        body = []
        for line in doc[m.end() :].split("\n")[1:]:
            if line and not line[0].isspace():
                break  # the section ends where the margin text resumes
            body.append(line)
        out[m.group(1)] = textwrap.dedent("\n".join(body)).strip("\n")
    return out


def raised_names(section: str) -> list[str]:
    """The exception names of a ``Raises:`` section: each entry's text before its colon."""
    names: list[str] = []
    header = ""
    for line in section.splitlines():
        if not line.strip():
            break  # the section ends at a blank line
        if line[0] != " " or header:  # an entry starts at the margin, or names go on
            header += line.strip() + " "
            if ":" in header:
                names += [n for n in re.split(r"[,\s]+", header.split(":", 1)[0]) if n]
                header = ""
    return names


def resolve(name: str) -> object:
    """The object *name* stands for: ``trio.X``, shmsock's ``X`` or a builtin."""
    if name.startswith("trio."):
        return getattr(trio, name.removeprefix("trio."), None)
    return getattr(shmsock, name, None) or getattr(builtins, name, None)


def test_the_methods_are_found():
    names = {name for name, _ in METHODS}
    assert {"send", "recv", "send_nowait", "recv_many", "bind", "aclose", "close"} <= names


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[n for n, _ in METHODS])
def test_each_public_method_states_what_it_raises_and_what_a_cancel_does(name, method):
    doc = inspect.getdoc(method) or ""
    found = sections(doc)
    assert "Raises" in found, f"Socket.{name}: no 'Raises:' section"
    if not found["Raises"].startswith("Nothing"):
        names = raised_names(found["Raises"])
        assert names, f"Socket.{name}: an empty 'Raises:' section"
        for exc in names:
            obj = resolve(exc)
            assert isinstance(obj, type) and issubclass(obj, BaseException), (
                f"Socket.{name}: 'Raises:' names {exc!r}, which is not an exception"
            )
    if inspect.iscoroutinefunction(method):
        assert found.get("On cancel", "").strip(), f"Socket.{name}: no 'On cancel:' section"


def test_the_section_parser():
    doc = inspect.cleandoc(
        """Do it.

        Raises:
            trio.WouldBlock: not now.
            MessageTooLarge, StateError,
                trio.ClosedResourceError: as for send.
            ValueError: a bad
                value.

        On cancel:
            Nothing happens.
        """
    )
    found = sections(doc)
    assert raised_names(found["Raises"]) == [
        "trio.WouldBlock",
        "MessageTooLarge",
        "StateError",
        "trio.ClosedResourceError",
        "ValueError",
    ]
    assert found["On cancel"] == "Nothing happens."
