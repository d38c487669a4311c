"""Benchmark files from their public sources, pinned by sha256: download with pooch, or check copies.

A benchmark config names where each of its files comes from, beside the file's ``path``::

    path: MayoSRS.csv
    source: {url: https://raw.githubusercontent.com/..., sha256: ..., licence: ...}

(``mentions.source`` / ``dictionary.source`` for a linking benchmark). ``fetch`` downloads each
file into ``evals_dir`` with pooch (which checks the hash before the file takes its name, and
skips a file already there with the right hash); ``check`` downloads nothing and says, per file,
whether it is there and intact, so that an offline machine filled by hand is checked the same way.
A source without a ``url`` (a file that must be converted by hand) carries ``how``.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote, urlparse

from biolord.atomic import file_mode
from biolord.evaluation.files import BenchmarkFileError, file_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileSource:
    benchmark: str
    key: str  # the config key of the file: path, mentions.path, dictionary.path
    path: str  # as the config gives it (relative: under evals_dir)
    sha256: str
    url: str | None = None
    how: str | None = None
    licence: str | None = None

    def target(self, evals_dir: Path) -> Path:
        given = Path(os.path.expanduser(self.path))
        return given if given.is_absolute() else evals_dir / given


@dataclass
class FileStatus:
    source: FileSource
    target: Path
    status: str  # ok | fetched | missing | corrupt | manual | error
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "fetched")


def file_sources(spec: dict, benchmark: str | None = None, prefix: str = "") -> list[FileSource]:
    """Every ``path`` with a ``source`` beside it, in the spec and its nested mappings."""
    name = benchmark or spec.get("name", "?")
    found = []
    source = spec.get("source")
    if source is not None:
        key = f"{prefix}path"
        if not spec.get("path"):
            raise BenchmarkFileError(f"benchmark {name}: {prefix}source is given but {key} is empty; name the file")
        if not isinstance(source, dict) or not source.get("sha256"):
            raise BenchmarkFileError(
                f"benchmark {name}: {prefix}source={source!r} needs at least sha256 (and url, or how to make the file)"
            )
        found.append(FileSource(name, key, str(spec["path"]), str(source["sha256"]).lower().removeprefix("sha256:"),
                                source.get("url"), source.get("how"), source.get("licence")))
    for key, value in spec.items():
        if isinstance(value, dict) and key != "source":
            found += file_sources(value, name, f"{prefix}{key}.")
    return found


def check(sources: Iterable[FileSource], evals_dir: Path) -> list[FileStatus]:
    """Offline: each file present with its pinned sha256 (``ok``), absent (``missing``) or not (``corrupt``)."""
    return [_check_one(s, evals_dir) for s in sources]


def _check_one(source: FileSource, evals_dir: Path) -> FileStatus:
    target = source.target(evals_dir)
    if not target.is_file():
        fix = f"download it from {source.url}" if source.url else f"make it by hand: {source.how}"
        return FileStatus(source, target, "missing", f"not found; run `python -m biolord.fetch` or {fix}")
    got = file_hash(target)
    if got != source.sha256:
        return FileStatus(
            source, target, "corrupt",
            f"sha256 {got} but the source pins {source.sha256}: the file is damaged or another version; "
            f"delete it and run `python -m biolord.fetch`" + (f" (or get it from {source.url})" if source.url else ""),
        )
    return FileStatus(source, target, "ok")


def fetch(sources: Iterable[FileSource], evals_dir: Path, progressbar: bool = False) -> list[FileStatus]:
    """Download what is missing or damaged; a file already there with the right hash is left alone."""
    import pooch

    out = []
    for source in sources:
        target = source.target(evals_dir)
        if source.url is None:
            status = _check_one(source, evals_dir)
            if status.status == "missing":
                status = FileStatus(source, target, "manual", f"no direct download; make it by hand: {source.how}")
            out.append(status)
            continue
        before = target.is_file() and file_hash(target) == source.sha256
        try:
            pooch.retrieve(source.url, known_hash=f"sha256:{source.sha256}", fname=target.name, path=target.parent,
                           downloader=_downloader(source.url, progressbar), processor=_umask_mode)
        except ValueError as err:  # pooch: the downloaded bytes do not have the pinned hash (nothing written)
            out.append(FileStatus(source, target, "corrupt", (
                f"{source.url} does not give the file that source.sha256 pins ({err}); the source changed or the "
                "download was damaged. Retry, or fix the source in the benchmark's yaml")))
        except Exception as err:  # network, HTTP status, permissions: this file fails, the others go on
            out.append(FileStatus(source, target, "error", (
                f"could not download {source.url} ({type(err).__name__}: {err}). Offline? Copy the file to "
                f"{target} by hand and run `python -m biolord.fetch check=true`")))
        else:
            out.append(FileStatus(source, target, "ok" if before else "fetched"))
    return out


def _umask_mode(path: str, action: str, pooch) -> str:
    """pooch processor: its download is a private temporary file renamed; give it the umask's mode."""
    os.chmod(path, file_mode())
    return path


def _downloader(url: str, progressbar: bool):
    """pooch's HTTP(S)/FTP downloader, or a copy for ``file://`` URLs and local paths (a lab's mirror)."""
    import pooch

    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        source = Path(unquote(parsed.path) if parsed.scheme == "file" else url).expanduser()

        def copy(_url, output_file, _pooch):
            if not source.is_file():
                raise FileNotFoundError(f"{source} (from {url}) does not exist")
            shutil.copyfile(source, output_file)

        return copy
    return pooch.HTTPDownloader(progressbar=progressbar) if parsed.scheme in ("http", "https") else None


def format_report(statuses: list[FileStatus], evals_dir: Path) -> str:
    lines = [f"benchmark files in {evals_dir}:"]
    width = max((len(s.source.benchmark) for s in statuses), default=0)
    for s in statuses:
        line = f"  {s.status:<8} {s.source.benchmark:<{width}}  {s.source.key}={s.source.path}"
        lines.append(line + (f"  {s.detail}" if s.detail else ""))
    bad = [s for s in statuses if s.failed]
    lines.append(f"{len(statuses) - len(bad)} of {len(statuses)} files ok" + (f", {len(bad)} to fix" if bad else ""))
    return "\n".join(lines)
