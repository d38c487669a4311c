"""Putting a freshly built model folder in place atomically, for the one-time offline conversions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable


def move_into_place(built: Path, target: Path, replace: bool, is_complete: Callable[[Path], bool]) -> None:
    """Rename ``built`` to ``target`` (same filesystem: atomic), replacing an old or empty target.

    A concurrent process that got there first with a complete folder wins: its folder is as good.
    """
    old = None
    if target.exists() and (replace or not any(target.iterdir())):
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    try:
        built.rename(target)
    except OSError:
        if not is_complete(target):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
