"""The wheel's contents as pyproject.toml declares them: every package, and conf/ as biolord/conf."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from biolord.config_dir import config_dir

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_explicit_package_list_matches_the_tree():
    """The list is explicit (packages.find cannot map conf/); a new subpackage missing from it would not be installed."""
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "biolord").rglob("__init__.py")}
    configs = {".".join(("biolord", *p.relative_to(ROOT).parts)) for p in [ROOT / "conf", *(ROOT / "conf").rglob("*")]
               if p.is_dir() and any(p.glob("*.yaml"))}
    assert set(_setuptools()["packages"]) == code | configs


def test_every_config_file_is_package_data():
    setup = _setuptools()
    assert setup["package-dir"]["biolord.conf"] == "conf"
    patterns = setup["package-data"]["*"]
    files = [p.name for p in (ROOT / "conf").rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), files


def test_checkout_uses_its_top_level_conf():
    assert config_dir() == ROOT / "conf"
