"""Where the Hydra configs are: the checkout's top-level ``conf/``, or its copy inside the installed package.

``conf/`` at the top of the repository is the source of truth (the design card's layout); a wheel
ships the same files as ``biolord/conf/`` (pyproject.toml, ``[tool.setuptools] package-dir``), so
that ``python -m biolord.evaluate`` works after a non-editable ``pip install`` from any folder.
Every entry point and reader of a preset (benchmarks, model presets, paths) asks this function.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The installed copy (``<package>/conf``) first, else the checkout's ``<repo>/conf``."""
    for candidate in (PACKAGE / "conf", PACKAGE.parent / "conf"):
        if (candidate / "train.yaml").is_file() and (candidate / "evaluate.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"biolord's configs are missing: neither {PACKAGE / 'conf'} (installed package) nor "
        f"{PACKAGE.parent / 'conf'} (repository checkout) holds train.yaml; reinstall the package "
        "(pip install biolord-embed) or run from a full checkout"
    )
