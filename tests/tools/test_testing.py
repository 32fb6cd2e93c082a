"""shmsock.testing.isolated_root and its pytest fixture."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import trio

import shmsock
from shmsock.testing import isolated_root

pytest_plugins = ["pytester"]


def files_under(root: Path) -> list[str]:
    # Less a binder's spare ring (NAME@spare.TOKEN), which comes and goes.
    return sorted(n for n in os.listdir(root / f"shmsock-{os.geteuid()}") if "@spare." not in n)


async def test_a_fresh_root_for_the_block_removed_afterwards(shm_root):
    with isolated_root() as root:
        assert os.environ["SHMSOCK_ROOT"] == str(root)
        assert root != shm_root
        assert list(root.iterdir()) == []
        assert (root.stat().st_mode & 0o777) == 0o700
        async with shmsock.socket(shmsock.PULL) as pull:
            pull.bind("shm://iso")
            assert files_under(root) == ["iso@lock", "iso@sock"]
        (root / "left-behind").write_text("a file a test forgot")
    assert not root.exists()
    assert os.environ["SHMSOCK_ROOT"] == str(shm_root)


async def test_roots_do_not_see_each_other():
    # The same endpoint bound twice at once: each in its own root.
    with isolated_root() as first:
        async with shmsock.socket(shmsock.PULL) as a:
            a.bind("shm://same")
            with isolated_root() as second:
                async with shmsock.socket(shmsock.PULL) as b:
                    b.bind("shm://same")
                    async with shmsock.socket(shmsock.PUSH) as push:
                        push.connect("shm://same")
                        await push.send(b"to the second root")
                        assert await b.recv() == b"to the second root"
                    with pytest.raises(trio.WouldBlock):
                        a.recv_nowait()
            assert not second.exists()
            assert files_under(first) == ["same@lock", "same@sock"]


def test_restored_when_the_block_raises_and_when_there_was_no_root(monkeypatch, tmp_path):
    monkeypatch.delenv("SHMSOCK_ROOT")
    with pytest.raises(KeyError), isolated_root(tmp_path) as root:
        assert root.parent == tmp_path
        raise KeyError("boom")
    assert "SHMSOCK_ROOT" not in os.environ
    assert not root.exists()


def test_pytest_plugin_fixture(pytester):
    pytester.makeconftest('pytest_plugins = ["shmsock.pytest_plugin"]\n')
    pytester.makepyfile(
        textwrap.dedent(
            """
            import os

            import trio

            import shmsock

            roots = []

            def test_one(shmsock_root):
                roots.append(shmsock_root)
                assert os.environ["SHMSOCK_ROOT"] == str(shmsock_root)

                async def main():
                    async with shmsock.socket(shmsock.PULL) as pull:
                        pull.bind("shm://fixture")
                        assert shmsock_root.joinpath(f"shmsock-{os.geteuid()}").is_dir()

                trio.run(main)

            def test_two(shmsock_root):
                roots.append(shmsock_root)
                assert not roots[0].exists()  # the first test's root is gone
                assert shmsock_root != roots[0]
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
