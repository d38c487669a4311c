"""The wheel's contents as pyproject.toml declares them: every package, conf/ as biolord/conf, every imported module."""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
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


def _distribution(requirement: str) -> str:
    """'hydra-core>=1.3' -> 'hydra-core' (normalised as PEP 503 does)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def _imported_modules(folder: Path) -> set[str]:
    """Top-level modules the package imports (at module level or inside functions), stdlib and biolord left out."""
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "biolord"}


def test_every_module_the_package_imports_is_a_declared_dependency():
    """A module imported by biolord but only pulled in by another package (numpy via datasets, ...) breaks the
    install the day that package drops it; each one is named in dependencies or in an extra."""
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_distribution(r) for r in project["dependencies"]}
    declared |= {_distribution(r) for extra in project["optional-dependencies"].values() for r in extra}
    installed = packages_distributions()  # import name -> distributions (an extra may not be installed)
    undeclared = {}
    for module in sorted(_imported_modules(ROOT / "biolord")):
        names = {_distribution(d) for d in installed.get(module, [module])}
        if not names & declared:
            undeclared[module] = sorted(names)
    assert not undeclared, f"imported by biolord but not in pyproject.toml dependencies or extras: {undeclared}"
