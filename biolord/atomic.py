"""Atomic writes of files and folders, with the permissions any file the user writes would get.

A killed job must never leave half a checkpoint, model or cache file under its final name, so
everything is written under a temporary name beside its target and renamed into place (a rename
within one filesystem is atomic). ``tempfile.mkstemp`` / ``mkdtemp`` create their file or folder
mode 0600 / 0700 whatever the umask, which made exported models unreadable to colleagues on a
shared project folder; the temporary file or folder is therefore given the mode that ``open()`` /
``mkdir()`` would have given it under the current umask before it is renamed.

This is the one implementation: checkpoints, exported models, embedding caches, the teacher cache,
the built data rows and the one-time model conversions all use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable read sets it, so put it straight back
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the umask (0o644 under umask 022)."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The mode ``mkdir`` gives a new folder: 0o777 less the umask (0o755 under umask 022)."""
    return 0o777 & ~current_umask()


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write to; on a clean exit it becomes ``path``.

    The data is flushed to disk before the rename, so that after a crash ``path`` holds either the
    old or the new content, never a truncated one. On an exception the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(
    target: str | os.PathLike, replace: bool = True, is_complete: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``target`` to fill; on a clean exit it becomes ``target``.

    ``replace``: an existing ``target`` is replaced (an empty one always is). Without it, a
    non-empty ``target`` that ``is_complete`` accepts means a concurrent process got there first
    with an equally good folder, which is kept; anything else is an error naming the folder.
    On an exception the temporary folder is removed and ``target`` is left as it was.

    Everything inside gets the umask's mode too: writers such as transformers' ``save_pretrained``
    go through private temporary files of their own (``model.safetensors`` came out 0600).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _umask_modes(tmp)
        _move_into_place(tmp, target, replace, is_complete)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask_modes(root: Path) -> None:
    """Files and folders under ``root`` (itself included): the mode ``open`` / ``mkdir`` would give.

    Executable files stay executable (0o777 less the umask); nothing gains an x bit it lacked.
    """
    files, folders = file_mode(), folder_mode()
    os.chmod(root, folders)
    for parent, dirs, names in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(parent, name), folders)
        for name in names:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, folders if os.stat(path).st_mode & 0o111 else files)


def _move_into_place(built: Path, target: Path, replace: bool, is_complete: Callable[[Path], bool] | None) -> None:
    old = None
    if target.exists() and (replace or (target.is_dir() and not any(target.iterdir()))):
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    try:
        built.rename(target)
    except OSError as err:
        if is_complete is None or not is_complete(target):
            raise FileExistsError(
                f"cannot put the new folder in place: {target} exists ({err}); remove it or write elsewhere"
            ) from err
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
