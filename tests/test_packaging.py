"""The lock files pin every dependency pyproject.toml declares, at a version it allows: a dependency added without
`make lock` fails here, before a fresh clone installs something nobody tested."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def pins(lock: str) -> dict[str, str]:
    return {canonicalize_name(m[1]): m[2] for m in PIN.finditer((ROOT / "requirements" / lock).read_text())}


@pytest.mark.parametrize(("lock", "groups"), [("run.txt", ["dependencies"]), ("test.txt", ["dependencies", "test"])])
def test_lock_pins_every_declared_dependency(lock: str, groups: list[str]) -> None:
    pinned = pins(lock)
    declared = [Requirement(r) for g in groups
                for r in (PROJECT["dependencies"] if g == "dependencies" else PROJECT["optional-dependencies"][g])]
    unpinned = [str(r) for r in declared if canonicalize_name(r.name) not in pinned]
    assert not unpinned, f"requirements/{lock} lacks {unpinned}: run `make lock`"
    outside = [f"{r} (locked {pinned[canonicalize_name(r.name)]})" for r in declared
               if not r.specifier.contains(pinned[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"requirements/{lock} pins versions pyproject.toml excludes: {outside}: run `make lock`"


def test_run_lock_leaves_the_test_tools_out() -> None:
    """`make run` installs what the platform needs: no test runner, browser driver, type checker or TA-Lib."""
    run = pins("run.txt")
    assert not {canonicalize_name(Requirement(r).name) for r in PROJECT["optional-dependencies"]["test"]} & set(run) - {
        canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}


def test_every_pin_carries_a_hash() -> None:
    """pip's --require-hashes (the Makefile's) refuses a lock with any unhashed line; say which one here."""
    for lock in ("run.txt", "test.txt"):
        text = (ROOT / "requirements" / lock).read_text()
        starts = [m.start() for m in PIN.finditer(text)] + [len(text)]
        blocks = [text[a:b] for a, b in zip(starts, starts[1:], strict=False)]
        unhashed = [block.split()[0] for block in blocks if "--hash=sha256:" not in block]
        assert not unhashed, f"{lock}: {unhashed}"
