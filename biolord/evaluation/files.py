"""Benchmark files: where they live, how they are read, and the hash that pins a result to them.

Public benchmark files are never shipped with the project; ``python -m biolord.fetch`` downloads
them (or checks copies placed by hand) into ``evals_dir``: ``BIOLORD_EVALS_DIR``, else
``<paths.cache_dir>/evals`` (``~/.cache/biolord/evals``); any path a config names works too. Every
reading error names the file and the fix, so that a user adding a new benchmark by config sees
what is wrong with the file or the config rather than a KeyError.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}


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


@dataclass
class Table:
    """Rows of a delimited file. ``columns`` are the header names, or ``None`` without a header."""

    path: Path
    columns: list[str] | None
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # (line number, fields)

    def column_index(self, column, role: str) -> int:
        """Index of a column given by header name or by 0-based position."""
        if isinstance(column, int) or (isinstance(column, str) and column.isdigit() and self.columns is None):
            return int(column)
        if self.columns is None:
            raise BenchmarkFileError(
                f"{role}={column!r} names a column, but {self.path} is read without a header (header=false); "
                "give a 0-based column number or set header=true"
            )
        if column not in self.columns:
            raise BenchmarkFileError(
                f"column {column!r} ({role}) not found in {self.path}; available: {self.columns}. "
                f"Set {role}= to one of them (or a 0-based column number)"
            )
        return self.columns.index(column)


def read_table(path: Path, delimiter: str = "\t", quoting: str = "minimal", header: bool = True) -> Table:
    """Read a CSV/TSV file with the stdlib ``csv`` reader (quoting: ``minimal`` or ``none``)."""
    if quoting not in QUOTING:
        raise BenchmarkFileError(f"quoting={quoting!r} for {path} is unknown; choose one of {sorted(QUOTING)}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=QUOTING[quoting])
        lines = [(reader.line_num, row) for row in reader if row and any(cell.strip() for cell in row)]
    if not lines:
        raise BenchmarkFileError(f"{path} is empty; give a file with at least one row")
    columns = None
    if header:
        columns = [c.strip() for c in lines[0][1]]
        lines = lines[1:]
        if not lines:
            raise BenchmarkFileError(f"{path} has a header but no data rows")
    return Table(path, columns, lines)
