"""The one on-disk store of text vectors: keyed by the model's fingerprint and the text itself.

A model's vector for a text never changes, so each text goes through a model once and is read
back afterwards: the teacher's vectors in distillation (``biolord.teacher_cache``: every epoch,
run and phase reads them) and the large fixed text lists of an evaluation (a linking dictionary,
MEDIC: ~70k names, the slow part of an evaluation on CPU; ``evaluation.embedder.TextEmbedder``).

Layout: ``<root>/<fingerprint>/<texts hash>.safetensors``, one shard per batch of new texts (or, with
``flush_every``, per that many new texts: a training step that meets 128 new texts does not write and
fsync a file each time), holding
``embeddings`` (n, d) float32 as the model returned them (not re-normalised) and the texts (JSON in
the safetensors metadata). The fingerprint is ``biolord.encoder_spec.fingerprint`` (weights, projection,
prefix, tokenizer and settings), so a retrained model under the same path never serves stale vectors; texts are keys one by one, so
a dictionary that grows encodes only its new names. Shards go through ``biolord.atomic``: readers
never see half a shard, and two processes adding the same texts write the same file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from biolord.atomic import atomic_file

log = logging.getLogger(__name__)


def texts_hash(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


class EmbeddingStore:
    """The vectors of one model (``fingerprint``) under ``root``: ``vectors(texts, encode) -> (N, d)``.

    The shards on disk are read once, when the store is made; ``hits`` / ``misses`` count texts
    looked up through ``vectors`` (a text asked twice in one call counts twice).

    The vectors live in one (capacity, d) matrix that doubles when full, so a lookup is one index
    and adding a batch copies the batch only (not the whole store, as concatenating on every lookup
    would: quadratic over a training run that adds vectors at each step).

    flush_every: None writes a shard at every ``add`` (an evaluation's one large batch); a number
    keeps new vectors in memory until that many are pending, then writes them as one shard;
    ``flush()`` writes the rest (a killed run loses at most that many vectors, which are re-encoded).
    """

    def __init__(self, root: str | os.PathLike, fingerprint: str, flush_every: int | None = None):
        self.fingerprint = fingerprint
        self.folder = Path(os.path.expanduser(str(root))) / fingerprint
        self.flush_every = flush_every
        self._rows: dict[str, int] = {}
        self._matrix: torch.Tensor | None = None  # (capacity, d); rows [0, _n) are stored vectors
        self._n = 0
        self._pending: list[str] = []  # texts of the last rows of the matrix, added but not yet on disk
        self.hits = self.misses = 0
        self._read_shards()

    def __len__(self) -> int:
        return self._n

    def __contains__(self, text: str) -> bool:
        return text in self._rows

    @property
    def dim(self) -> int | None:
        return int(self._matrix.shape[1]) if self._matrix is not None else None

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts not stored yet, in first-seen order."""
        return list(dict.fromkeys(t for t in texts if t not in self._rows))

    def vectors(self, texts: Sequence[str], encode: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """(N, d) float32 in the order of ``texts``; ``encode`` runs once, on the texts not stored yet."""
        texts = list(texts)
        new = self.missing(texts)
        stored = sum(1 for t in texts if t in self._rows)
        self.hits += stored
        self.misses += len(texts) - stored
        if new:
            self.add(new, encode(new))
        return self.get(texts)

    def get(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, d) stored vectors in the order of ``texts``; a text not stored is a KeyError naming it."""
        if not texts:
            return torch.empty(0, self.dim or 0)
        absent = [t for t in texts if t not in self._rows]
        if absent:
            raise KeyError(f"{len(absent)} texts are not in the embedding store {self.folder} (e.g. {absent[0]!r})")
        index = torch.tensor([self._rows[t] for t in texts], dtype=torch.long)  # (N,)
        return self._matrix[index]  # (N, d)

    def add(self, texts: Sequence[str], vectors: torch.Tensor, write: bool = True) -> Path | None:
        """Store ``vectors`` (n, d) of ``texts`` (those not stored yet); returns the shard written, if any."""
        texts = list(texts)
        vectors = vectors.detach().float().cpu()
        if vectors.shape[0] != len(texts):
            raise ValueError(f"the model returned {vectors.shape[0]} vectors for {len(texts)} texts")
        if self._matrix is not None and vectors.shape[1] != self._matrix.shape[1]:
            raise ValueError(
                f"vectors of dimension {vectors.shape[1]} for the store {self.folder}, which holds dimension "
                f"{self._matrix.shape[1]}; a model with another output size needs its own fingerprint"
            )
        fresh: dict[str, int] = {}  # text -> its first row in `vectors`
        for i, text in enumerate(texts):
            if text not in self._rows and text not in fresh:
                fresh[text] = i
        if not fresh:
            return None
        for j, text in enumerate(fresh):
            self._rows[text] = self._n + j
        block = vectors[list(fresh.values())].contiguous()  # (n_new, d)
        if not write:
            self.flush()  # pending rows stay the last rows of the matrix
        self._append(block)
        if not write:
            return None
        if self.flush_every is None:
            return self._write_shard(list(fresh), block)
        self._pending += fresh
        return self.flush() if len(self._pending) >= self.flush_every else None

    def flush(self) -> Path | None:
        """Write the vectors added since the last shard as one shard; returns it (None: nothing pending)."""
        if not self._pending:
            return None
        texts, self._pending = self._pending, []
        return self._write_shard(texts, self._matrix[self._n - len(texts) : self._n])  # (pending, d)

    def _append(self, block: torch.Tensor) -> None:
        """Copy ``block`` (n, d) after the stored rows, doubling the matrix when it is full."""
        need = self._n + block.shape[0]
        if self._matrix is None or need > self._matrix.shape[0]:
            capacity = max(need, 2 * (self._matrix.shape[0] if self._matrix is not None else 0), 1024)
            grown = torch.empty(capacity, block.shape[1], dtype=torch.float32)  # (capacity, d)
            if self._matrix is not None:
                grown[: self._n] = self._matrix[: self._n]
            self._matrix = grown
        self._matrix[self._n : need] = block
        self._n = need

    def _write_shard(self, texts: list[str], vectors: torch.Tensor) -> Path:
        path = self.folder / f"{texts_hash(texts)}.safetensors"
        with atomic_file(path) as tmp:
            save_file({"embeddings": vectors}, str(tmp), metadata={"texts": json.dumps(texts)})
        return path

    def _read_shards(self) -> None:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.safetensors")):
            try:
                with safe_open(str(path), framework="pt") as f:
                    texts = json.loads(f.metadata()["texts"])
                vectors = load_file(str(path))["embeddings"]  # (n, d)
            except Exception as err:  # a foreign or damaged file: skip it, its texts get re-encoded
                log.warning("ignoring unreadable embedding shard %s (%s)", path, err)
                continue
            if vectors.shape[0] != len(texts):
                log.warning("ignoring embedding shard %s: %d vectors for %d texts", path, vectors.shape[0], len(texts))
                continue
            self.add(texts, vectors, write=False)
        if self._n:
            log.info("embedding store %s: %d texts on disk", self.folder, self._n)
