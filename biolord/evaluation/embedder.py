"""Texts -> embeddings for one model during an evaluation: each distinct text is encoded once.

Benchmarks share texts (STS-B repeats sentences, linking mentions repeat, several benchmarks
can name the same concept), so the evaluation of one model goes through one ``TextEmbedder``
that deduplicates across all its benchmarks. ``Encoder.encode`` sorts each batch of new texts by
length, which keeps padding (and CPU time) low. Large fixed text lists (linking dictionaries)
also go through the on-disk store of text vectors (``biolord.embedding_store``, the one the
teacher cache uses) when a ``cache_dir`` is given.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F

from biolord import encoder_spec
from biolord.embedding_store import EmbeddingStore
from biolord.matryoshka import truncate

log = logging.getLogger(__name__)


class TextEmbedder:
    """encoder: an ``Encoder`` or a ``Student`` (``biolord.encoder_spec.load_model``): ``encode(texts,
    batch_size, device, desc) -> (n, d)`` and ``dim``.

    cache_dir: root of the on-disk embedding store read by ``embed_cached`` (None: off), keyed by
    ``encoder_spec.fingerprint`` of the model.
    """

    def __init__(self, encoder, batch_size: int = 64, cache_dir=None, device=None):
        self.encoder = encoder
        self.batch_size = int(batch_size)
        self.cache_dir = cache_dir
        self._store: EmbeddingStore | None = None
        self.device = device
        self._rows: dict[str, int] = {}
        self._vectors: list[torch.Tensor] = []  # blocks of (n, d) as the model returned them
        self._fingerprint: str | None = None
        self.texts_encoded = 0  # how many texts went through the model (tests and reports read it)
        self.label = ""  # what is being encoded for (a benchmark name), shown with the progress

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = encoder_spec.fingerprint(self.encoder)
        return self._fingerprint

    def _encode(self, texts: list[str]) -> torch.Tensor:
        """(n, d) float32 as the model returns them: what the on-disk store keeps."""
        self.texts_encoded += len(texts)
        desc = f"encoding for {self.label}" if self.label else "encoding"
        return self.encoder.encode(texts, batch_size=self.batch_size, device=self.device, desc=desc).float()  # (n, d)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, d) unit vectors in the order of ``texts``; only texts not seen before are encoded."""
        new = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if new:
            self._add(new, self._encode(new))
        return self._lookup(texts)

    def embed_cached(self, texts: Sequence[str]) -> torch.Tensor:
        """Like ``embed``, through the on-disk store keyed by the model's weights and each text.

        Every distinct text of ``texts`` ends up in the store (those already encoded in memory are
        added without running the model again), so that the next run reads the whole list.
        """
        if self.cache_dir is None:
            return self.embed(texts)
        if self._store is None:
            self._store = EmbeddingStore(self.cache_dir, self.fingerprint)
        store, unique = self._store, list(dict.fromkeys(texts))
        absent = store.missing(unique)
        if absent:
            known = [t for t in absent if t in self._rows]
            new = [t for t in absent if t not in self._rows]
            store.add(known + new, torch.cat([self._raw(known), self._encode(new)]))  # (A, d)
            log.info("stored the embeddings of %d texts in %s", len(absent), store.folder)
        if len(absent) < len(unique):
            log.info("embeddings of %d texts read from the store %s", len(unique) - len(absent), store.folder)
        fresh = [t for t in unique if t not in self._rows]
        if fresh:
            self._add(fresh, store.get(fresh))
        return self._lookup(texts)

    def _add(self, texts: list[str], vectors: torch.Tensor) -> None:
        offset = sum(v.shape[0] for v in self._vectors)
        for i, text in enumerate(texts):
            self._rows[text] = offset + i
        self._vectors.append(vectors)
        if len(self._vectors) > 1:
            self._vectors = [torch.cat(self._vectors)]  # (total, d)

    def _raw(self, texts: Sequence[str]) -> torch.Tensor:
        if not self._vectors:
            return torch.empty(0, self.encoder.dim)
        index = torch.tensor([self._rows[t] for t in texts], dtype=torch.long)  # (N,)
        return self._vectors[0][index]  # (N, d) as the model returned them

    def _lookup(self, texts: Sequence[str]) -> torch.Tensor:
        return F.normalize(self._raw(texts), dim=1)  # (N, d): cosine = dot product, whatever model.normalize says


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
