"""Every Python sample in the docs runs, and prints what the docs say it prints.

The samples are the fenced blocks of ``docs/*.md`` and ``README.md``:

- A block fenced as ```` ```python ```` is a complete program.  It runs as a
  script in its own interpreter, with this test's ``SHMSOCK_ROOT``, and must
  exit with status 0 within ``TIMEOUT`` seconds (and leave no file behind,
  which ``conftest.shm_root`` checks).
- A block fenced as ```` ```text ```` right after it (nothing but blank
  lines between) is its expected standard output, compared line by line,
  ignoring trailing whitespace.
- A Python block that is not a complete program (a fragment, a signature)
  says so in its info string, ```` ```python fragment ````, and is not run.
  MyST and GitHub highlight it as Python all the same.  Keep these rare:
  a sample that runs cannot rot.

Other languages (``sh``, ``text`` on its own, no language) are never run.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import shmsock

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TIMEOUT = 60
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: list[str]  # words of the info string: language first
    text: str

    @property
    def language(self) -> str:
        return self.info[0] if self.info else ""


@dataclass
class Sample:
    path: Path
    line: int
    code: str
    expected: str | None  # standard output the docs show, if any

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def fenced_blocks(path: Path) -> list[tuple[Block, int]]:
    """The top-level fenced blocks of a Markdown file, each with its end line."""
    lines = path.read_text().splitlines()
    blocks: list[tuple[Block, int]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence = m["fence"]
        start = i
        body: list[str] = []
        i += 1
        # The closing fence is the same character, at least as long, alone.
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while i < len(lines) and not close.match(lines[i]):
            body.append(lines[i])
            i += 1
        indent = len(m["indent"])
        text = "\n".join(line[indent:] if line[:indent].isspace() else line for line in body)
        blocks.append((Block(path, start + 1, m["info"].split(), text + "\n"), i))
        i += 1
    return blocks


def samples(path: Path) -> list[Sample]:
    """The runnable Python samples of a Markdown file."""
    blocks = fenced_blocks(path)
    lines = path.read_text().splitlines()
    out = []
    for n, (block, end) in enumerate(blocks):
        if block.language != "python" or "fragment" in block.info[1:]:
            continue
        expected = None
        if n + 1 < len(blocks):
            following, _ = blocks[n + 1]
            between = lines[end + 1 : following.line - 1]
            if following.info == ["text"] and all(not line.strip() for line in between):
                expected = following.text
        out.append(Sample(path, block.line, block.text, expected))
    return out


def doc_files() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


ALL = [s for path in doc_files() for s in samples(path)]


def _normalise(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip("\n").splitlines()]


@pytest.mark.parametrize("sample", ALL, ids=[s.id for s in ALL])
def test_sample_runs_and_prints_what_the_docs_show(sample: Sample, tmp_path: Path) -> None:
    script = tmp_path / f"{sample.path.stem}_{sample.line}.py"
    script.write_text(sample.code)
    # Run from a scratch directory so the sample imports shmsock as users do.
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        check=False,
    )
    where = f"{sample.path.relative_to(ROOT)} line {sample.line}"
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
    if sample.expected is not None:
        assert _normalise(result.stdout) == _normalise(sample.expected), where


def test_the_pages_with_samples_have_them():
    # Guards the extraction itself: a change of fence style must not make
    # the samples silently disappear from this test.
    pages = {s.path.name for s in ALL}
    assert {"quickstart.md", "pushpull.md", "pair.md", "reqrep.md", "trio.md"} <= pages
    assert all(s.expected is not None for s in ALL if s.path.name == "quickstart.md")


def test_every_public_name_is_in_the_api_reference():
    api = (DOCS / "api.md").read_text()
    missing = [name for name in shmsock.__all__ if not re.search(rf"\b{name}\b", api)]
    assert missing == [], f"add to docs/api.md: {missing}"


# -- what the API reference shows -----------------------------------------------------

# A name with a leading underscore, alone or in a dotted or slashed path
# (_SocketContext, shmsock._stats, _patterns/_base.py); not a dunder, and
# not the "*_nowait" that names a family of methods.
_PRIVATE = re.compile(r"(?<![\w*])_[A-Za-z]\w*")
_DIRECTIVE = re.compile(r"^\.\. (auto\w+|module):: (\S+)$")


def _directives(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """The reST directives of *text*: (name, argument, options)."""
    out: list[tuple[str, str, dict[str, str]]] = []
    for line in text.splitlines():
        m = _DIRECTIVE.match(line)
        if m:
            out.append((m.group(1), m.group(2), {}))
        elif out and (option := re.match(r"^   :([\w-]+):\s*(.*)$", line)):
            out[-1][2][option.group(1)] = option.group(2)
    return out


def _doc_comment(owner: object, name: str) -> str:
    """The ``#:`` comment lines above *name*'s assignment in *owner*'s source."""
    try:
        lines = inspect.getsource(owner).splitlines()  # type: ignore[arg-type]
    except (OSError, TypeError):
        return ""
    for i, line in enumerate(lines):
        if re.match(rf"^\s*{re.escape(name)}\s*[:=]", line):
            above = []
            for prev in reversed(lines[:i]):
                if not prev.strip().startswith("#:"):
                    break
                above.append(prev.strip()[2:])
            return "\n".join(reversed(above))
    return ""


def _members(cls: type, options: dict[str, str]) -> list[tuple[str, object, type]]:
    """What autodoc's :members: (and :special-members:) shows of *cls*, with the
    class that defines each: its own public attributes, and with
    :inherited-members: its bases' (but object's)."""
    special = {n.strip() for n in options.get("special-members", "").split(",") if n.strip()}
    owners = cls.__mro__[:-1] if "inherited-members" in options else (cls,)
    seen: dict[str, tuple[object, type]] = {}
    for owner in reversed(owners):
        seen.update((name, (value, owner)) for name, value in vars(owner).items())
    return [
        (name, value, owner)
        for name, (value, owner) in seen.items()
        if name in special or not name.startswith("_")
    ]


def documented() -> list[tuple[str, object, object]]:
    """(name, object, owner) of everything docs/api.md has autodoc render."""
    module: ModuleType = shmsock
    out: list[tuple[str, object, object]] = []

    def add(name: str, obj: object, owner: object, options: dict[str, str]) -> None:
        out.append((name, obj, owner))
        if isinstance(obj, type) and "members" in options:
            for member, value, defined_in in _members(obj, options):
                out.append((f"{name}.{member}", value, defined_in))

    for directive, arg, options in _directives((DOCS / "api.md").read_text()):
        if directive == "module":
            module = importlib.import_module(arg)
        elif directive == "automodule":
            mod = importlib.import_module(arg)
            out.append((arg, mod, None))
            if "members" in options:
                for name in mod.__all__:
                    add(f"{arg}.{name}", getattr(mod, name), mod, options)
        elif directive in ("autofunction", "autoclass", "autoexception"):
            add(f"{module.__name__}.{arg}", getattr(module, arg), module, options)
    return out


def _public_objects() -> set[int]:
    return {
        id(getattr(module, name))
        for module in (shmsock, shmsock.metrics, shmsock.testing)
        for name in module.__all__
    }


def _annotation_leaks(hint: object, public: set[int]) -> list[str]:
    """shmsock classes in *hint* that no public module exports."""
    if isinstance(hint, type):
        private = hint.__module__.split(".")[0] == "shmsock" and id(hint) not in public
        return [f"{hint.__module__}.{hint.__qualname__}"] if private else []
    return [leak for arg in typing.get_args(hint) for leak in _annotation_leaks(arg, public)]


def _shown_text(obj: object, owner: object, name: str) -> tuple[str, list[object]]:
    """The text autodoc shows for *obj* (signature and docstring), and its annotations."""
    func = obj.fget if isinstance(obj, property) else obj
    if isinstance(func, (staticmethod, classmethod)):
        func = func.__func__
    texts: list[str] = []
    hints: list[object] = []
    targets = [func]
    if isinstance(obj, type):
        targets = [vars(obj).get("__init__")] if "__init__" in vars(obj) else []
    for target in targets:
        if callable(target) and not isinstance(target, type | ModuleType):
            try:
                texts.append(str(inspect.signature(target)))
            except (TypeError, ValueError):
                pass
            try:
                hints.extend(typing.get_type_hints(target).values())
            except Exception:  # a hint that only exists for type checkers: the text has it
                pass
    if isinstance(obj, type | ModuleType) or callable(func) or isinstance(obj, property):
        texts.append(inspect.getdoc(obj) or "")
    else:  # data: its #: comment, and its annotation on the owner
        texts.append(_doc_comment(owner, name.rsplit(".", 1)[-1]))
        if isinstance(owner, type | ModuleType):
            with contextlib.suppress(Exception):
                hint = typing.get_type_hints(owner).get(name.rsplit(".", 1)[-1])
                if hint is not None:
                    hints.append(hint)
    return "\n".join(texts), hints


def test_the_api_reference_shows_no_private_name():
    public = _public_objects()
    leaks = []
    entries = documented()
    for name, obj, owner in entries:
        text, hints = _shown_text(obj, owner, name)
        leaks += [f"{name}: {m.group()}" for m in _PRIVATE.finditer(text)]
        leaks += [f"{name}: {leak}" for hint in hints for leak in _annotation_leaks(hint, public)]
    assert leaks == [], "private names in the API reference:\n" + "\n".join(leaks)
    # Guards the walk itself: it must reach the members, methods and data.
    names = {name for name, _, _ in entries}
    assert {
        "shmsock.socket",
        "shmsock.Socket.recv_many_nowait",
        "shmsock.Socket.ITER_BATCH",
        "shmsock.Socket.__anext__",
        "shmsock.Socket.aclose",  # the mixins' members are shown too
        "shmsock.Socket.setsockopt",
        "shmsock.metrics.COLLECTOR",
        "shmsock.testing.isolated_root",
    } <= names


def test_fence_parsing(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n"
        "```python\nprint(1)\n```\n\n"
        "```text\n1\n```\n"
        "````markdown\n```python\nnot a sample\n```\n````\n"
        "```python fragment\nawait sock.send(data)\n```\n"
        "```python\nprint(2)\n```\n"
        "some words\n"
        "```text\nnot its output\n```\n"
    )
    found = samples(page)
    assert [(s.line, s.code, s.expected) for s in found] == [
        (2, "print(1)\n", "1\n"),
        (17, "print(2)\n", None),
    ]
