"""Soup ingredients: any model input -> its description and weights, checked for compatibility.

An ingredient is what ``biolord.soup`` averages: anything ``biolord.model_source.find_model``
names (a run folder, a biolord checkpoint, a sentence-transformers or Hugging Face folder, a hub id,
any ``model.name_or_path``). A checkpoint is read through its own ``encoder_spec`` and
``encoder_state`` (``biolord.encoder_spec``), whichever phase wrote it, multilingual students
(prefix, projection) included; a folder is loaded and described the same way. Two ingredients
must agree on architecture (config), tokenizer vocabulary, keys and shapes; ``WeightedSum``
accumulates floating tensors in float32 one ingredient at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from biolord import encoder_spec, model_source
from biolord.checkpoint import read_encoder

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
    """One model to average: its description (``encoder_spec``) and its weights (``encoder_state`` keys)."""

    name: str  # as given in ckpts
    path: str  # the file or folder the weights were read from
    spec: dict = field(repr=False)  # encoder_spec: rebuilds the model (biolord.encoder_spec.build)
    arch: dict  # ARCH_FIELDS present in the config
    vocab: tuple[int, str]  # (size, sha256 of the sorted vocabulary)
    shapes: dict[str, tuple] = field(repr=False, default_factory=dict)  # every tensor's shape
    state_dict: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def label(self) -> str:
        return self.name if self.name == self.path else f"{self.name} ({self.path})"

    @property
    def settings(self) -> dict:
        return _settings(self.spec)

    @property
    def template(self) -> str:
        """The model these weights started from (the card's base model)."""
        return self.spec.get("source") or self.path

    def meta(self) -> dict:
        return {"name": self.name, "path": self.path, "template": self.template, **self.settings}

    def described(self) -> "Ingredient":
        """This ingredient without its weights (kept as the reference for later checks)."""
        return Ingredient(self.name, self.path, self.spec, dict(self.arch), self.vocab, dict(self.shapes))


def load_ingredient(spec: str) -> Ingredient:
    """Any input -> an ``Ingredient`` with its weights (one at a time: the caller drops it)."""
    spec = str(spec)
    try:
        found = model_source.find_model(spec)
    except model_source.ModelNotFoundError as err:
        raise SoupError(f"ckpts entry {spec}: {err}") from err
    if found.kind == "checkpoint":
        description, state = read_encoder(found.location)
        tokenizer, config = encoder_spec.tokenizer_and_config(description, found.location)
    else:
        model = encoder_spec.load_model(spec)
        description, state = encoder_spec.spec_of(model), encoder_spec.state_of(model)
        tokenizer, config = model.tokenizer, encoder_spec.inner_encoder(model).transformer.config
    state = {k: v.detach() for k, v in state.items()}
    return Ingredient(
        name=spec,
        path=found.location,
        spec=description,
        arch=_arch(config),
        vocab=_vocab(tokenizer),
        shapes={k: tuple(v.shape) for k, v in state.items()},
        state_dict=state,
    )


def _settings(spec: dict) -> dict:
    return {"pooling": str(spec["pooling"]), "normalize": bool(spec["normalize"]),
            "max_seq_length": int(spec["max_seq_length"]), "prefix": str(spec.get("prefix") or "")}


def _arch(config) -> dict:
    values = config.to_dict()
    return {k: values[k] for k in ARCH_FIELDS if k in values}


def _vocab(tokenizer) -> tuple[int, str]:
    items = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256("\n".join(f"{t}\t{i}" for t, i in items).encode()).hexdigest()
    return len(items), digest


def check_compatible(first: Ingredient, other: Ingredient) -> None:
    """Same architecture and vocabulary, or a ``SoupError`` that names both inputs and the tensors."""
    diff = {k: (first.arch.get(k), other.arch.get(k)) for k in set(first.arch) | set(other.arch)
            if first.arch.get(k) != other.arch.get(k)}
    if diff:
        what = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in sorted(diff.items()))
        raise SoupError(
            f"different architectures cannot be averaged: {first.label} and {other.label} differ in {what}"
            f"{_tensor_difference(first, other)}; average only models fine-tuned from the same base model"
        )
    if first.vocab != other.vocab:
        raise SoupError(
            f"different tokenizer vocabularies cannot be averaged: {first.label} has {first.vocab[0]} tokens "
            f"(sha256 {first.vocab[1][:12]}), {other.label} has {other.vocab[0]} tokens (sha256 {other.vocab[1][:12]}); "
            "the same embedding row would mean different tokens"
        )


def _tensor_difference(first: Ingredient, other: Ingredient) -> str:
    """The tensors whose shape or presence differs, e.g. ``(tensor 'x' is [2, 32] in A but [2, 64] in B; +5 more)``."""
    keys = list(dict.fromkeys([*first.shapes, *other.shapes]))
    differing = [k for k in keys if first.shapes.get(k) != other.shapes.get(k)]
    if not differing:
        return ""
    k = differing[0]
    a, b = (list(i.shapes[k]) if k in i.shapes else "absent" for i in (first, other))
    return f" (tensor '{k}' is {a} in {first.name} but {b} in {other.name}{_more(differing)})"


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


def load_into(model, state: dict[str, torch.Tensor], label: str = "the soup") -> None:
    """Copy ``state`` into ``model`` (an Encoder or a Student; same keys and shapes, else a ``SoupError``)."""
    check_same_tensors(encoder_spec.state_of(model), f"the template model {model.source}", state, label)
    encoder_spec.load_state(model, state)


# ---- the three methods ------------------------------------------------------------------------
