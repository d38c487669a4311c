"""Teacher embeddings computed once and kept on disk: texts in, (B, d) teacher vectors out.

Distillation trains a student to reproduce a frozen teacher's vectors (Reimers & Gurevych 2020,
"Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation"; Hinton et al.
2015). The teacher's output for a text never changes, so, like sentence-transformers'
multilingual distillation (teacher embeddings computed once with ``dataset.map``), each text goes
through the teacher once; every later epoch, run and phase reads the stored vector. Used by the
multilingual phase (``biolord.multilingual``) and meant for self-distillation too: nothing here knows
about languages, only about texts.

Layout: ``<root>/<teacher fingerprint>/<texts hash>.safetensors``, one shard per batch of new
texts, holding ``embeddings`` (n, d) float32 and the texts themselves (JSON in the safetensors
metadata). The fingerprint hashes the teacher's weights and settings (pooling, normalisation, max
length, the prefix put before each text), so a retrained teacher under the same path never
serves stale vectors. Shards are written to a temporary file and renamed: readers never see half
a shard, and two processes adding the same texts write the same file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from biolord.atomic import atomic_file
from biolord.console import Progress
from biolord.evaluation.cache import encoder_fingerprint, texts_hash

log = logging.getLogger(__name__)


class FrozenTeacher(nn.Module):
    """A teacher that cannot be trained: no gradients, and ``train()`` keeps it in eval mode.

    Lightning calls ``.train()`` on the whole LightningModule; without the override a teacher held
    as a submodule would switch dropout on and give different vectors each time (open_clip's
    ``task/distill_task.py`` does the same).
    """

    def __init__(self, encoder, prefix: str = ""):
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.prefix = prefix or ""

    def train(self, mode: bool = True) -> "FrozenTeacher":
        return super().train(False)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        return self.encoder.encode([self.prefix + t for t in texts], batch_size=batch_size).float()  # (n, d)

    def fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(encoder_fingerprint(self.encoder).encode())
        digest.update(b"\0prefix=" + self.prefix.encode("utf-8"))
        return digest.hexdigest()


class TeacherCache:
    """``lookup(texts) -> (B, d)``: stored vectors for known texts; the teacher runs only on new ones.

    teacher: anything with ``encode(texts, batch_size) -> (n, d)`` and ``dim`` (a ``FrozenTeacher``);
        may be None when every text is known to be cached (a miss then raises).
    fingerprint: the teacher's key; default ``teacher.fingerprint()``.
    Counters: ``hits`` and ``misses`` (texts), ``teacher_calls`` (calls into the teacher) and
    ``texts_encoded``; ``stats()`` returns them, ``reset_stats()`` zeroes them (e.g. per epoch).
    """

    def __init__(self, root, teacher=None, fingerprint: str | None = None, batch_size: int = 64):
        if fingerprint is None:
            if teacher is None:
                raise ValueError("TeacherCache needs a teacher or the teacher's fingerprint")
            fingerprint = teacher.fingerprint()
        self.teacher = teacher
        self.fingerprint = fingerprint
        self.batch_size = int(batch_size)
        self.folder = Path(os.path.expanduser(str(root))) / fingerprint
        self._rows: dict[str, int] = {}
        self._blocks: list[torch.Tensor] = []  # (n_i, d) each; concatenated lazily
        self._n = 0
        self.reset_stats()
        self._read_shards()

    # ---- public API ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __contains__(self, text: str) -> bool:
        return text in self._rows

    def lookup(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, d) float32 teacher vectors in the order of ``texts``; new texts are encoded and stored."""
        texts = list(texts)
        missing = [t for t in texts if t not in self._rows]
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        new = list(dict.fromkeys(missing))
        if new:
            self._add(new, self._encode(new), write=True)
        return self._gather(texts)

    def warm(self, texts: Sequence[str], chunk: int = 4096) -> int:
        """Encode and store every text not cached yet (in shards of ``chunk``); returns how many were new.

        The texts done so far are shown per shard (``biolord.console``: a bar, or a log line every 30 s).
        """
        new = list(dict.fromkeys(t for t in texts if t not in self._rows))
        with Progress(len(new), "teacher cache: encoding", "texts") as bar:
            for start in range(0, len(new), chunk):
                part = new[start : start + chunk]
                self._add(part, self._encode(part), write=True)
                bar.update(len(part))
        return len(new)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "teacher_calls": self.teacher_calls,
                "texts_encoded": self.texts_encoded, "cached_texts": self._n}

    def reset_stats(self) -> None:
        self.hits = self.misses = self.teacher_calls = self.texts_encoded = 0

    @property
    def dim(self) -> int | None:
        if self._blocks:
            return int(self._blocks[0].shape[1])
        return self.teacher.dim if self.teacher is not None else None

    # ---- internals ----------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> torch.Tensor:
        if self.teacher is None:
            raise KeyError(
                f"{len(texts)} texts are not in the teacher cache {self.folder} (e.g. {texts[0]!r}) "
                "and no teacher was given to encode them"
            )
        self.teacher_calls += 1
        self.texts_encoded += len(texts)
        return self.teacher.encode(texts, batch_size=self.batch_size).float().cpu()  # (n, d)

    def _gather(self, texts: list[str]) -> torch.Tensor:
        if len(self._blocks) > 1:
            self._blocks = [torch.cat(self._blocks)]  # (N, d)
        if not texts:
            return torch.empty(0, self.dim or 0)
        index = torch.tensor([self._rows[t] for t in texts], dtype=torch.long)  # (B,)
        return self._blocks[0][index]  # (B, d)

    def _add(self, texts: list[str], vectors: torch.Tensor, write: bool) -> None:
        if vectors.shape[0] != len(texts):
            raise ValueError(f"teacher returned {vectors.shape[0]} vectors for {len(texts)} texts")
        if self._blocks and vectors.shape[1] != self._blocks[0].shape[1]:
            raise ValueError(f"teacher vectors have dimension {vectors.shape[1]}, the cache {self._blocks[0].shape[1]}")
        fresh = [i for i, t in enumerate(texts) if t not in self._rows]
        for j, i in enumerate(fresh):
            self._rows[texts[i]] = self._n + j
        self._blocks.append(vectors[fresh].contiguous())
        self._n += len(fresh)
        if write and fresh:
            self._write_shard([texts[i] for i in fresh], vectors[fresh])

    def _write_shard(self, texts: list[str], vectors: torch.Tensor) -> Path:
        path = self.folder / f"{texts_hash(texts)}.safetensors"
        with atomic_file(path) as tmp:
            save_file({"embeddings": vectors.float().contiguous()}, str(tmp), metadata={"texts": json.dumps(texts)})
        return path

    def _read_shards(self) -> None:
        if not self.folder.is_dir():
            return
        from safetensors import safe_open

        for path in sorted(self.folder.glob("*.safetensors")):
            try:
                with safe_open(str(path), framework="pt") as f:
                    texts = json.loads(f.metadata()["texts"])
                vectors = load_file(str(path))["embeddings"]  # (n, d)
            except Exception as err:  # a foreign or damaged file: skip it, its texts get re-encoded
                log.warning("ignoring unreadable teacher-cache shard %s (%s)", path, err)
                continue
            if vectors.shape[0] != len(texts):
                log.warning("ignoring teacher-cache shard %s: %d vectors for %d texts", path, vectors.shape[0], len(texts))
                continue
            self._add(texts, vectors, write=False)
        if self._n:
            log.info("teacher cache %s: %d texts on disk", self.folder, self._n)
