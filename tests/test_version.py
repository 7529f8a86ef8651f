"""One version source: faceptor_core.__version__; the distribution's metadata and `faceptor --version` follow it."""

from __future__ import annotations

import ast
from importlib import metadata
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import faceptor_core
from faceptor_core.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_holds_the_only_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "faceptor_core.__version__"}
    # setuptools reads the attribute statically (no import of torch at build time): it must stay a plain literal
    tree = ast.parse((ROOT / "faceptor_core" / "__init__.py").read_text())
    literal = [
        n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign)
        and [getattr(t, "id", None) for t in n.targets] == ["__version__"]
        and isinstance(n.value, ast.Constant)
    ]
    assert literal == [faceptor_core.__version__]


def test_installed_metadata_and_cli_agree(capsys):
    assert metadata.version("faceptor") == faceptor_core.__version__
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"faceptor {faceptor_core.__version__}"


def test_changelog_has_an_unreleased_section_above_the_releases():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## [Unreleased]"
