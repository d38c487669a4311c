"""On-disk cache of text embeddings, keyed by the model's weights and the texts' content.

Encoding a linking dictionary (MEDIC: ~70k names) is the slow part of an evaluation on CPU; its
embeddings only change when the model or the dictionary changes. The key therefore hashes the
encoder's weights and settings (so a retrained model under the same path is never served stale
vectors) together with the exact list of texts.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from biolord.atomic import atomic_file

log = logging.getLogger(__name__)


def encoder_fingerprint(encoder) -> str:
    """Hash of the weights, pooling, normalisation and max length: equal only for equal vectors."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{encoder.pooling}|{encoder.normalize}|{encoder.max_seq_length}|".encode())
    digest.update(type(encoder.transformer).__name__.encode())
    digest.update(str(len(encoder.tokenizer)).encode())
    for name, tensor in encoder.transformer.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def texts_hash(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


class EmbeddingCache:
    """``<root>/<model fingerprint>-<texts hash>.pt`` holding a (N, d) float32 tensor."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.expanduser(str(root)))

    def path(self, fingerprint: str, texts: Sequence[str]) -> Path:
        return self.root / f"{fingerprint}-{texts_hash(texts)}.pt"

    def load(self, fingerprint: str, texts: Sequence[str]) -> torch.Tensor | None:
        path = self.path(fingerprint, texts)
        if not path.exists():
            return None
        try:
            vectors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated file from an old crash: re-encode and overwrite
            log.warning("ignoring unreadable embedding cache %s (%s)", path, err)
            return None
        if vectors.shape[0] != len(texts):
            return None
        return vectors

    def save(self, fingerprint: str, texts: Sequence[str], vectors: torch.Tensor) -> Path:
        """Written to a temporary file and renamed: concurrent readers never see half a file."""
        path = self.path(fingerprint, texts)
        with atomic_file(path) as tmp:
            torch.save(vectors.contiguous(), tmp)
        return path
