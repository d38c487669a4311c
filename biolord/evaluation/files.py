"""Benchmark files: where they live, how they are read, and the hash that pins a result to them.

Public benchmark files are never shipped with the project; ``python -m biolord.fetch`` downloads
them (or checks copies placed by hand) into ``evals_dir``: ``BIOLORD_EVALS_DIR``, else
``<paths.cache_dir>/evals`` (``~/.cache/biolord/evals``); any path a config names works too. Every
reading error names the file and the fix, so that a user adding a new benchmark by config sees
what is wrong with the file or the config rather than a KeyError.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from biolord.data.delimited import Table, read_delimited


class BenchmarkFileError(ValueError):
    """A benchmark file is missing, empty or does not match its config; the message says the fix."""


def default_evals_dir() -> Path:
    """``BIOLORD_EVALS_DIR``, else ``<cache_dir>/evals`` with ``cache_dir`` as conf/paths/default.yaml sets it."""
    env = os.environ.get("BIOLORD_EVALS_DIR")
    if env:
        return Path(env).expanduser()
    from omegaconf import OmegaConf

    from biolord.config_dir import config_dir

    paths = OmegaConf.load(config_dir() / "paths" / "default.yaml")
    return Path(str(paths.cache_dir)).expanduser() / "evals"


def evals_dir_or_default(evals_dir: str | os.PathLike | None) -> Path:
    return Path(os.path.expanduser(str(evals_dir))) if evals_dir else default_evals_dir()


def working_dir() -> Path:
    """The folder the user ran the command in: Hydra's original working directory inside a Hydra
    job (which may have changed directory, ``hydra.job.chdir=true``), else the current one."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.cwd)
    return Path.cwd()


def resolve_file(path: str | os.PathLike, evals_dir: str | os.PathLike | None = None, what: str = "path") -> Path:
    """An existing file: ``path`` as given (absolute, or relative to the folder the command was run
    in, see ``working_dir``), else under ``evals_dir``."""
    if path is None or str(path).strip() == "":
        raise BenchmarkFileError(f"{what} is empty; name a benchmark file")
    given = Path(os.path.expanduser(str(path)))
    candidates = [given]
    if not given.is_absolute():
        candidates = [working_dir() / given, evals_dir_or_default(evals_dir) / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise BenchmarkFileError(
        f"{what}={path}: file not found (tried {tried}). The benchmark files are not shipped: run "
        f"`python -m biolord.fetch evals_dir={evals_dir_or_default(evals_dir)}` to download them (or place them "
        "there by hand and check them with `python -m biolord.fetch check=true`), give an existing file, or set "
        "evals_dir= (or the BIOLORD_EVALS_DIR environment variable) to the folder that holds them"
    )


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes: results name the exact data they were computed on."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: Path, delimiter: str = "\t", quoting: str = "minimal", header: bool = True) -> Table:
    """A benchmark file through the one delimited-file reader; its errors are ``BenchmarkFileError``."""
    return read_delimited(path, delimiter, quoting, header, error=BenchmarkFileError)
