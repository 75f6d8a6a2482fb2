"""What ``pip install .`` (not editable) ships: every file the packages read at run time.

The editable install used by the tests reads the source tree, so a file missing from
``[tool.setuptools.package-data]`` only shows when a newcomer runs ``cadence demo``
from a plain install (the console's stylesheet once did)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SOURCE_SUFFIXES = {".py", ".pyc"}


def test_every_data_file_of_the_packages_is_declared_as_package_data() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared: dict[str, list[str]] = setuptools["package-data"]
    packages = [pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]]
    undeclared = []
    for package in packages:
        folder = ROOT / package
        for path in folder.rglob("*"):
            if not path.is_file() or path.suffix in _SOURCE_SUFFIXES:
                continue
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(folder).as_posix()
            if not any(fnmatch(relative, glob) for glob in declared.get(package, [])):
                undeclared.append(f"{package}/{relative}")
    assert undeclared == []
