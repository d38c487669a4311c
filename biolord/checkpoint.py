"""Checkpoints written atomically (temporary file + rename) and read back with a clear error."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from biolord.atomic import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a temporary file then renames it (``biolord.atomic``): a killed job never leaves a half-written checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_file(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_checkpoint(path, map_location=map_location)


class CorruptCheckpointError(RuntimeError):
    pass


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError) as err:
        raise CorruptCheckpointError(
            f"checkpoint {path} is truncated or corrupt ({err}); delete it and resume from an earlier one"
        ) from err
