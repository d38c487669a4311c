"""Soup ingredients: any model input -> its transformer state dict, checked for compatibility.

An ingredient is what ``biolord.soup`` averages: a biolord run folder (its ``model/``, else
``checkpoints/last.ckpt``), a Lightning checkpoint written by biolord (``encoder.transformer.*``
weights, the base model named by its ``biolord_config``), a sentence-transformers or Hugging Face
folder, a hub id, or any ``model.name_or_path``. Two ingredients must agree on architecture
(config), tokenizer vocabulary, keys and shapes; ``WeightedSum`` accumulates floating tensors in
float32 one ingredient at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from biolord import model_source
from biolord.checkpoint import load_checkpoint
from biolord.encoder import Encoder

CKPT_PREFIX = "encoder.transformer."  # biolord Lightning checkpoints: encoder.transformer.<hf key>
# config fields that decide tensor shapes and meaning; two ingredients must agree on all present
ARCH_FIELDS = (
    "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "vocab_size", "max_position_embeddings", "type_vocab_size", "hidden_act", "position_embedding_type",
)


class SoupError(ValueError):
    """Inputs that cannot be averaged; the message names the inputs, the tensor and the fix."""


# ---- ingredients ------------------------------------------------------------------------------
@dataclass
class Ingredient:
    """One model to average: its weights (HF transformer keys) and what is needed to rebuild it."""

    name: str  # as given in ckpts
    path: str  # the file or folder the weights were read from
    template: str  # name_or_path of a model with this architecture and tokenizer (folder or base model)
    settings: dict  # pooling, normalize, max_seq_length
    arch: dict  # ARCH_FIELDS present in the config
    vocab: tuple[int, str]  # (size, sha256 of the sorted vocabulary)
    state_dict: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def label(self) -> str:
        return self.name if self.name == self.path else f"{self.name} ({self.path})"

    def meta(self) -> dict:
        return {"name": self.name, "path": self.path, "template": self.template, **self.settings}


def load_ingredient(spec: str) -> Ingredient:
    """Any input -> an ``Ingredient`` with its state dict (one at a time: the caller drops it)."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir() and not _is_model_folder(path):
        if (path / "model").is_dir() and _is_model_folder(path / "model"):
            return _from_model(spec, str(path / "model"))
        if (path / "checkpoints" / "last.ckpt").is_file():
            return _from_checkpoint(spec, path / "checkpoints" / "last.ckpt")
        raise SoupError(
            f"ckpts entry {spec}: folder is neither a model folder (config.json / modules.json) nor a "
            "biolord run folder (model/ or checkpoints/last.ckpt); give one of those"
        )
    if path.is_file():
        return _from_checkpoint(spec, path)
    return _from_model(spec, spec)


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").exists() or (path / "modules.json").exists()


def _from_model(spec: str, name_or_path: str) -> Ingredient:
    encoder = Encoder.load(name_or_path)
    location = model_source.resolve(name_or_path)
    state = {k: v.detach() for k, v in encoder.transformer.state_dict().items()}
    return Ingredient(
        name=spec,
        path=location,
        template=location,
        settings=_settings(encoder.pooling, encoder.normalize, encoder.max_seq_length),
        arch=_arch(encoder.transformer.config),
        vocab=_vocab(encoder.tokenizer),
        state_dict=state,
    )


def _from_checkpoint(spec: str, path: Path) -> Ingredient:
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise SoupError(f"ckpts entry {spec}: {path} is not a Lightning checkpoint (no state_dict)")
    cfg = ckpt.get("biolord_config") or {}
    model_cfg = cfg.get("model") or {}
    base = model_cfg.get("name_or_path")
    if not base:
        raise SoupError(
            f"ckpts entry {spec}: {path} has no biolord_config.model.name_or_path, so its architecture and "
            "tokenizer are unknown; give the run's model/ folder (a sentence-transformers folder) instead"
        )
    state = {k[len(CKPT_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(CKPT_PREFIX)}
    if not state:
        raise SoupError(f"ckpts entry {spec}: {path} holds no '{CKPT_PREFIX}*' weights; is it a biolord checkpoint?")
    del ckpt
    config, tokenizer = _base_parts(base)
    return Ingredient(
        name=spec,
        path=str(path),
        template=base,
        settings=_settings(model_cfg.get("pooling") or "mean", model_cfg.get("normalize", True),
                           model_cfg.get("max_seq_length") or 128),
        arch=_arch(config),
        vocab=_vocab(tokenizer),
        state_dict=state,
    )


def _base_parts(name_or_path: str):
    from transformers import AutoConfig, AutoTokenizer

    location = model_source.resolve(name_or_path)
    return AutoConfig.from_pretrained(location), AutoTokenizer.from_pretrained(location)


def _settings(pooling, normalize, max_seq_length) -> dict:
    return {"pooling": str(pooling), "normalize": bool(normalize), "max_seq_length": int(max_seq_length)}


def _arch(config) -> dict:
    values = config.to_dict()
    return {k: values[k] for k in ARCH_FIELDS if k in values}


def _vocab(tokenizer) -> tuple[int, str]:
    items = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256("\n".join(f"{t}\t{i}" for t, i in items).encode()).hexdigest()
    return len(items), digest


def check_compatible(first: Ingredient, other: Ingredient) -> None:
    """Same architecture and vocabulary, or a ``SoupError`` that names both inputs."""
    diff = {k: (first.arch.get(k), other.arch.get(k)) for k in set(first.arch) | set(other.arch)
            if first.arch.get(k) != other.arch.get(k)}
    if diff:
        what = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in sorted(diff.items()))
        raise SoupError(
            f"different architectures cannot be averaged: {first.label} and {other.label} differ in {what}; "
            "average only models fine-tuned from the same base model"
        )
    if first.vocab != other.vocab:
        raise SoupError(
            f"different tokenizer vocabularies cannot be averaged: {first.label} has {first.vocab[0]} tokens "
            f"(sha256 {first.vocab[1][:12]}), {other.label} has {other.vocab[0]} tokens (sha256 {other.vocab[1][:12]}); "
            "the same embedding row would mean different tokens"
        )


# ---- averaging --------------------------------------------------------------------------------
class WeightedSum:
    """Running weighted sum of state dicts, fed one at a time.

    Floating tensors: ``sum += w * x`` in float32. Other tensors: kept from the first state dict and
    compared with every later one. ``average()`` divides by the sum of the weights and casts back
    to the first state dict's dtypes.
    """

    def __init__(self):
        self.sum: dict[str, torch.Tensor] | None = None
        self.dtypes: dict[str, torch.dtype] = {}
        self.total = 0.0
        self.count = 0
        self.first_label = ""

    def add(self, state: dict[str, torch.Tensor], weight: float, label: str) -> None:
        if self.sum is None:
            self.first_label = label
            self.dtypes = {k: v.dtype for k, v in state.items()}
            self.sum = {k: v.float() * weight if v.is_floating_point() else v.clone() for k, v in state.items()}
        else:
            check_same_tensors(self.sum, self.first_label, state, label)
            for k, v in state.items():
                if v.is_floating_point():
                    self.sum[k].add_(v.float(), alpha=weight)
                elif not torch.equal(self.sum[k], v):
                    raise SoupError(
                        f"tensor '{k}' ({v.dtype}, not averaged) differs between {self.first_label} and {label}; "
                        "non-floating tensors must be equal in every ingredient"
                    )
        self.total += weight
        self.count += 1

    def mixed(self, state: dict[str, torch.Tensor], weight: float, label: str) -> dict[str, torch.Tensor]:
        """The average as if ``state`` were added with ``weight``, without adding it (greedy candidates)."""
        check_same_tensors(self.sum, self.first_label, state, label)
        total = self.total + weight
        return {
            k: ((s + weight * state[k].float()) / total).to(self.dtypes[k]) if s.is_floating_point() else s
            for k, s in self.sum.items()
        }

    def average(self) -> dict[str, torch.Tensor]:
        if self.sum is None:
            raise SoupError("nothing to average: no ingredient was added")
        if not self.total > 0:
            raise SoupError(f"the weights sum to {self.total}; they must sum to a positive number")
        return {k: (s / self.total).to(self.dtypes[k]) if s.is_floating_point() else s for k, s in self.sum.items()}


def check_same_tensors(ref: dict, ref_label: str, state: dict, label: str) -> None:
    """Same keys and shapes, or a ``SoupError`` naming the first offending tensor and both inputs."""
    missing = [k for k in ref if k not in state]
    extra = [k for k in state if k not in ref]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"tensor '{missing[0]}' is in {ref_label} but not in {label}" + _more(missing))
        if extra:
            parts.append(f"tensor '{extra[0]}' is in {label} but not in {ref_label}" + _more(extra))
        raise SoupError("state dicts have different keys: " + "; ".join(parts) + "; average models of one architecture")
    for k, v in ref.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise SoupError(
                f"tensor '{k}' has shape {list(v.shape)} in {ref_label} but {list(state[k].shape)} in {label}; "
                "average models of one architecture"
            )


def _more(keys: list) -> str:
    return f" (+{len(keys) - 1} more)" if len(keys) > 1 else ""


def load_into(encoder: Encoder, state: dict[str, torch.Tensor], label: str = "the soup") -> None:
    """Copy ``state`` into the encoder's transformer (same keys and shapes, else a ``SoupError``)."""
    check_same_tensors(encoder.transformer.state_dict(), f"the template model {encoder.source}", state, label)
    encoder.transformer.load_state_dict(state, strict=True)


# ---- the three methods ------------------------------------------------------------------------
