"""Texts -> embeddings for one model during an evaluation: each distinct text is encoded once.

Benchmarks share texts (STS-B repeats sentences, linking mentions repeat, several benchmarks
can name the same concept), so the evaluation of one model goes through one ``TextEmbedder``
that deduplicates across all its benchmarks. ``Encoder.encode`` sorts each batch of new texts by
length, which keeps padding (and CPU time) low. Large fixed text lists (linking dictionaries)
can also go through the on-disk ``EmbeddingCache``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F

from biolord.evaluation.cache import EmbeddingCache, encoder_fingerprint
from biolord.matryoshka import truncate

log = logging.getLogger(__name__)


class TextEmbedder:
    """encoder: an ``Encoder`` or anything with ``encode(texts, batch_size, device, desc) -> (n, d)`` and ``dim``."""

    def __init__(self, encoder, batch_size: int = 64, cache: EmbeddingCache | None = None, device=None):
        self.encoder = encoder
        self.batch_size = int(batch_size)
        self.cache = cache
        self.device = device
        self._rows: dict[str, int] = {}
        self._vectors: list[torch.Tensor] = []  # blocks of (n, d), unit norm
        self._fingerprint: str | None = None
        self.texts_encoded = 0  # how many texts went through the model (tests and reports read it)
        self.label = ""  # what is being encoded for (a benchmark name), shown with the progress
        self.cache_hits = 0

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = encoder_fingerprint(self.encoder)
        return self._fingerprint

    def _encode(self, texts: list[str]) -> torch.Tensor:
        self.texts_encoded += len(texts)
        desc = f"encoding for {self.label}" if self.label else "encoding"
        vectors = self.encoder.encode(texts, batch_size=self.batch_size, device=self.device, desc=desc)  # (n, d)
        return F.normalize(vectors.float(), dim=1)  # (n, d): cosine = dot product, whatever model.normalize says

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, d) unit vectors in the order of ``texts``; only texts not seen before are encoded."""
        new = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if new:
            self._add(new, self._encode(new))
        return self._lookup(texts)

    def embed_cached(self, texts: Sequence[str]) -> torch.Tensor:
        """Like ``embed``, through the on-disk cache keyed by model weights and the texts' content."""
        unique = list(dict.fromkeys(texts))
        if self.cache is None or all(t in self._rows for t in unique):
            return self.embed(texts)
        vectors = self.cache.load(self.fingerprint, unique)
        if vectors is None:
            vectors = self._encode(unique)  # (U, d)
            where = self.cache.save(self.fingerprint, unique, vectors)
            log.info("cached %d embeddings in %s", len(unique), where)
        else:
            self.cache_hits += 1
            log.info("embeddings of %d texts read from the cache %s", len(unique), self.cache.root)
        fresh = [i for i, t in enumerate(unique) if t not in self._rows]
        self._add([unique[i] for i in fresh], vectors[fresh])
        return self._lookup(texts)

    def _add(self, texts: list[str], vectors: torch.Tensor) -> None:
        offset = sum(v.shape[0] for v in self._vectors)
        for i, text in enumerate(texts):
            self._rows[text] = offset + i
        self._vectors.append(vectors)
        if len(self._vectors) > 1:
            self._vectors = [torch.cat(self._vectors)]  # (total, d)

    def _lookup(self, texts: Sequence[str]) -> torch.Tensor:
        if not self._vectors:
            return torch.empty(0, self.encoder.dim)
        index = torch.tensor([self._rows[t] for t in texts], dtype=torch.long)  # (N,)
        return self._vectors[0][index]  # (N, d)


class TruncatedEmbedder:
    """The first ``dim`` dimensions of another embedder's vectors, re-normalised (Matryoshka evaluation).

    Scoring a model at several sizes (``truncate_dims=[384,128,64]``) runs the model once per text:
    each size is a view on the full vectors of one ``TextEmbedder``.
    """

    def __init__(self, base: TextEmbedder, dim: int):
        self.base = base
        self.dim = int(dim)

    @property
    def texts_encoded(self) -> int:
        return self.base.texts_encoded

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        return truncate(self.base.embed(texts), self.dim)  # (N, dim)

    def embed_cached(self, texts: Sequence[str]) -> torch.Tensor:
        return truncate(self.base.embed_cached(texts), self.dim)  # (N, dim)
