"""Teacher embeddings computed once and kept on disk: texts in, (B, d) teacher vectors out.

Distillation trains a student to reproduce a frozen teacher's vectors (Reimers & Gurevych 2020,
"Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation"; Hinton et al.
2015). The teacher's output for a text never changes, so, like sentence-transformers'
multilingual distillation (teacher embeddings computed once with ``dataset.map``), each text goes
through the teacher once; every later epoch, run and phase reads the stored vector. Used by the
multilingual phase (``biolord.multilingual``) and the self-distillation phase (``phases/self_distill.py``):
nothing here knows about languages, only about texts.

The vectors live in the one embedding store (``biolord.embedding_store``: ``<root>/<teacher
fingerprint>/<texts hash>.safetensors``), the same format and code as an evaluation's cached
dictionary vectors, under the one key of a model's vectors (``biolord.encoder_spec.fingerprint``),
which also hashes the prefix put before each text: the same weights with another prefix get their
own vectors, a student's projection is in the key too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from biolord import encoder_spec
from biolord.console import Progress
from biolord.embedding_store import EmbeddingStore


def teacher_precision(setting: str | None, trainer_precision: str | None) -> str | None:
    """``"bf16"`` when a teacher should run under bf16 autocast, else None (float32).

    setting: ``auto`` (follow the trainer: bf16 under ``bf16-mixed``, the default where
    the CPU has bf16 instructions), ``bf16`` or
    ``32``. A teacher's forward runs on every step of a distillation phase, in float32 it costs about
    as much as the student's bf16 forward and backward together on CPU.
    """
    setting = str(setting or "auto")
    if setting == "auto":
        return "bf16" if str(trainer_precision or "").startswith("bf16") else None
    if setting in ("bf16", "bf16-mixed"):
        return "bf16"
    if setting in ("32", "32-true", "fp32"):
        return None
    raise ValueError(f"teacher precision {setting!r}: choose auto (the trainer's), bf16 or 32")


class FrozenTeacher(nn.Module):
    """A teacher that cannot be trained: no gradients, and ``train()`` keeps it in eval mode.

    Lightning calls ``.train()`` on the whole LightningModule; without the override a teacher held
    as a submodule would switch dropout on and give different vectors each time (open_clip's
    ``task/distill_task.py`` does the same).

    precision: None (float32) or ``"bf16"``: the forward under bf16 autocast. Its vectors differ from
    float32 ones by bf16 rounding, so they are stored under their own key (``fingerprint``).
    """

    def __init__(self, encoder, prefix: str = "", precision: str | None = None):
        super().__init__()
        if precision not in (None, "bf16"):
            raise ValueError(f"FrozenTeacher precision {precision!r}: None (float32) or 'bf16'")
        self.encoder = encoder.eval().requires_grad_(False)
        self.prefix = prefix or ""
        self.precision = precision

    def train(self, mode: bool = True) -> "FrozenTeacher":
        return super().train(False)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        device = next(self.encoder.parameters()).device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.encoder.encode([self.prefix + t for t in texts], batch_size=batch_size).float()  # (n, d)

    def fingerprint(self) -> str:
        """The model's key with this teacher's prefix (and a bf16 forward) in it: in float32 with no
        prefix, the key an evaluation of the same model stores its vectors under (one store,
        ``biolord.encoder_spec.fingerprint``)."""
        key = encoder_spec.fingerprint(self.encoder, extra_prefix=self.prefix)
        return f"{key}-bf16" if self.precision == "bf16" else key


class TeacherCache:
    """``lookup(texts) -> (B, d)``: stored vectors for known texts; the teacher runs only on new ones.

    teacher: anything with ``encode(texts, batch_size) -> (n, d)`` and ``dim`` (a ``FrozenTeacher``);
        may be None when every text is known to be cached (a miss then raises).
    fingerprint: the teacher's key; default ``teacher.fingerprint()``.
    Counters: ``hits`` and ``misses`` (texts), ``teacher_calls`` (calls into the teacher) and
    ``texts_encoded``; ``stats()`` returns them, ``reset_stats()`` zeroes them (e.g. per epoch).
    """

    def __init__(self, root, teacher=None, fingerprint: str | None = None, batch_size: int = 64,
                 flush_every: int = 4096):
        if fingerprint is None:
            if teacher is None:
                raise ValueError("TeacherCache needs a teacher or the teacher's fingerprint")
            fingerprint = teacher.fingerprint()
        self.teacher = teacher
        self.fingerprint = fingerprint
        self.batch_size = int(batch_size)
        # lookups during training meet a few new texts per step: written in shards of flush_every
        self.store = EmbeddingStore(root, fingerprint, flush_every=flush_every)
        self.folder: Path = self.store.folder
        self.reset_stats()

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, text: str) -> bool:
        return text in self.store

    @property
    def hits(self) -> int:
        return self.store.hits

    @property
    def misses(self) -> int:
        return self.store.misses

    def lookup(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, d) float32 teacher vectors in the order of ``texts``; new texts are encoded and stored."""
        return self.store.vectors(texts, self._encode)

    def flush(self) -> None:
        """Write the vectors encoded since the last shard (the phases call it when training ends)."""
        self.store.flush()

    def warm(self, texts: Sequence[str], chunk: int = 4096) -> int:
        """Encode and store every text not cached yet (in shards of ``chunk``); returns how many were new.

        The texts done so far are shown per shard (``biolord.console``: a bar, or a log line every 30 s).
        """
        new = self.store.missing(texts)
        with Progress(len(new), "teacher cache: encoding", "texts") as bar:
            for start in range(0, len(new), chunk):
                part = new[start : start + chunk]
                self.store.add(part, self._encode(part))
                self.store.flush()  # one shard per chunk: a killed warm-up keeps what it encoded
                bar.update(len(part))
        return len(new)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "teacher_calls": self.teacher_calls,
                "texts_encoded": self.texts_encoded, "cached_texts": len(self.store)}

    def reset_stats(self) -> None:
        self.store.hits = self.store.misses = self.teacher_calls = self.texts_encoded = 0

    @property
    def dim(self) -> int | None:
        if self.store.dim is not None:
            return self.store.dim
        return self.teacher.dim if self.teacher is not None else None

    def _encode(self, texts: list[str]) -> torch.Tensor:
        if self.teacher is None:
            raise KeyError(
                f"{len(texts)} texts are not in the teacher cache {self.folder} (e.g. {texts[0]!r}) "
                "and no teacher was given to encode them"
            )
        self.teacher_calls += 1
        self.texts_encoded += len(texts)
        return self.teacher.encode(texts, batch_size=self.batch_size).float().cpu()  # (n, d)
