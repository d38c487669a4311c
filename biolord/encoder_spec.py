"""A model described in plain values, and the one loader that rebuilds it from a checkpoint or a folder.

Why: a reader (``average.py``, evaluation, entity linking, a teacher) must rebuild the model a
checkpoint holds without knowing which phase wrote it or what the phase's LightningModule calls
its attributes. So every checkpoint describes its model itself (``biolord.checkpoint``
``EncoderSpecCallback``):

- ``encoder_spec``: plain types only (weights-only loading reads it): the transformer's Hugging
  Face config, its tokenizer files (bytes as uint8 tensors), pooling, the final L2 normalisation,
  max_seq_length, the input prefix (the sentence-transformers default prompt), the projection's
  shape (a multilingual student's Dense layer, identity activation) and the model it started from;
- ``encoder_state``: the weights, ``transformer.<HF key>`` and ``projection.weight|bias``. They are
  the same tensors as Lightning's ``state_dict``, so ``torch.save`` writes them once.

An exported sentence-transformers folder says the same in its files (``modules.json``,
``1_Pooling``, ``2_Dense``, the default prompt); ``load_model`` reads both, so a folder and a
checkpoint of one model give one model: an ``Encoder``, or a ``Student`` when there is a prefix
or a projection. No Lightning here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from biolord import model_source
from biolord.encoder import Encoder, freeze_unused_pooler
from biolord.student import Student

FORMAT = 1
TRANSFORMER = "transformer."  # encoder_state keys: transformer.<HF key>, projection.weight|bias
PROJECTION = "projection."
_IDENTITY = ("torch.nn.modules.linear.Identity", "torch.nn.Identity")


class SpecError(ValueError):
    """A description that cannot be turned into a model; the message names the source and the fix."""


# ---- model -> description ---------------------------------------------------------------------
def spec_of(model, tokenizer_files: dict | None = None) -> dict:
    """The description of an ``Encoder`` or a ``Student`` (``tokenizer_files``: reuse ones read before)."""
    encoder, prefix, projection, normalize = _parts(model)
    return {
        "format": FORMAT,
        "transformer_config": json.loads(encoder.transformer.config.to_json_string(use_diff=False)),
        "tokenizer_files": tokenizer_files if tokenizer_files is not None else read_tokenizer_files(encoder.tokenizer),
        "pooling": encoder.pooling,
        "normalize": bool(normalize),
        "max_seq_length": int(encoder.max_seq_length),
        "prefix": prefix,
        "projection": None if projection is None else {
            "in_features": projection.in_features, "out_features": projection.out_features},
        "source": str(encoder.source or ""),
    }


def state_of(model) -> dict[str, torch.Tensor]:
    """The weights under the fixed keys (tensors shared with the model: no copy)."""
    encoder, _, projection, _ = _parts(model)
    state = {TRANSFORMER + k: v for k, v in encoder.transformer.state_dict().items()}
    if projection is not None:
        state.update({PROJECTION + k: v for k, v in projection.state_dict().items()})
    return state


def load_state(model, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (keys as ``state_of`` gives them) into ``model``; every key must match."""
    encoder, _, projection, _ = _parts(model)
    transformer = {k[len(TRANSFORMER):]: v for k, v in state.items() if k.startswith(TRANSFORMER)}
    dense = {k[len(PROJECTION):]: v for k, v in state.items() if k.startswith(PROJECTION)}
    other = [k for k in state if not k.startswith((TRANSFORMER, PROJECTION))]
    if other or (dense and projection is None):
        raise SpecError(f"weights {(other or sorted(dense))[:3]} have no place in this model (keys must start with "
                        f"'{TRANSFORMER}' or, with a projection, '{PROJECTION}')")
    encoder.transformer.load_state_dict(transformer, strict=True)
    if projection is not None:
        projection.load_state_dict(dense, strict=True)


def fingerprint(model, extra_prefix: str = "") -> str:
    """The one key of a model's vectors (every cache of text vectors uses it: ``biolord.embedding_store``).

    Hashes all that decides the vectors: the input prefix (the model's own, then ``extra_prefix``, text
    a caller puts before each input, e.g. a teacher's ``phase.teacher_prefix``), the tokenizer (its
    full serialised form: vocabulary, normaliser, special tokens), pooling, max length, the final
    normalisation and every weight, a projection's too; so a cache keyed by it never serves another
    model's vectors. The same weights loaded again (from a folder or a checkpoint) get the same key.
    Not hashed: the device and the attention kernel (sdpa / eager), which change vectors by rounding only.
    """
    import hashlib

    encoder, prefix, projection, normalize = _parts(model)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{encoder.pooling}|{normalize}|{encoder.max_seq_length}|{type(encoder.transformer).__name__}|"
                  f"prefix={prefix + (extra_prefix or '')!r}|".encode())
    digest.update(_tokenizer_text(encoder.tokenizer).encode())
    for name, tensor in state_of(model).items():
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _tokenizer_text(tokenizer) -> str:
    """What decides a tokenizer's output, as text: a fast tokenizer's own JSON (vocabulary, normaliser,
    pre-tokeniser, post-processor), else its vocabulary; and which side it truncates. The JSON's
    ``truncation`` / ``padding`` are left out: each call sets them (``Encoder.tokenize`` passes its own),
    so they change after the first encode without changing a vector."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        body = json.dumps({k: v for k, v in state.items() if k not in ("truncation", "padding")}, sort_keys=True)
    else:
        body = json.dumps(sorted(tokenizer.get_vocab().items()))
    return f"{type(tokenizer).__name__}|{len(tokenizer)}|{getattr(tokenizer, 'truncation_side', '')}|{body}"


def describe(model_or_spec) -> str:
    """One line naming a model's architecture and settings (an ``Encoder``, a ``Student`` or an
    ``encoder_spec``), for logs and for messages that compare a checkpoint with a model."""
    spec = model_or_spec if isinstance(model_or_spec, dict) else spec_of(model_or_spec, tokenizer_files={})
    cfg = spec.get("transformer_config") or {}
    projection = spec.get("projection")
    parts = [f"{cfg.get('model_type', '?')} ({cfg.get('num_hidden_layers', '?')} layers, hidden_size "
             f"{cfg.get('hidden_size', '?')}, vocab_size {cfg.get('vocab_size', '?')})",
             f"{spec.get('pooling')} pooling", f"max_seq_length {spec.get('max_seq_length')}",
             "normalised" if spec.get("normalize") else "not normalised"]
    if spec.get("prefix"):
        parts.append(f"prefix {spec['prefix']!r}")
    if projection:
        parts.append(f"projection {projection['in_features']} -> {projection['out_features']}")
    return ", ".join(parts)


def read_tokenizer_files(tokenizer) -> dict[str, torch.Tensor]:
    """{file name: its bytes as a uint8 tensor}: the tokenizer as ``save_pretrained`` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {p.name: torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8).clone()
                for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def inner_encoder(model) -> Encoder:
    """The ``Encoder`` of an Encoder or a Student (its transformer, tokenizer, pooling)."""
    return _parts(model)[0]


def _parts(model):
    """(encoder, prefix, projection, final normalisation) of an Encoder or a Student."""
    if isinstance(model, Student):
        normalize = model.normalize if model.projection is not None else model.encoder.normalize
        return model.encoder, model.prefix, model.projection, normalize
    if isinstance(model, Encoder):
        return model, "", None, model.normalize
    raise TypeError(f"cannot describe a {type(model).__name__}: give a biolord Encoder or Student")


# ---- description -> model ---------------------------------------------------------------------
def build(spec: dict, state: dict[str, torch.Tensor] | None = None, *, pooling: str | None = None,
          normalize: bool | None = None, max_seq_length: int | None = None, attn_implementation: str | None = None,
          label: str = "the checkpoint", source: str | None = None):
    """The model ``spec`` describes, with ``state``'s weights (None: freshly initialised, e.g. a template
    whose weights are set later). ``pooling`` / ``normalize`` / ``max_seq_length`` override the spec's;
    ``source`` (the name it was loaded by) becomes the model's ``source``, else the spec's."""
    from transformers import AutoModel

    tokenizer, config = tokenizer_and_config(spec, label)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    transformer = AutoModel.from_config(config, **kwargs)
    final_normalize = spec["normalize"] if normalize is None else bool(normalize)
    projection = spec.get("projection")
    encoder = Encoder(transformer, tokenizer, pooling=pooling or spec["pooling"],
                      normalize=final_normalize and projection is None,
                      max_seq_length=max_seq_length or spec["max_seq_length"],
                      source=source or spec.get("source") or label)
    freeze_unused_pooler(transformer)
    model = encoder
    if projection is not None or spec.get("prefix"):
        model = Student(encoder, prefix=spec.get("prefix") or "",
                        teacher_dim=projection["out_features"] if projection else None,
                        projection=projection is not None, normalize=final_normalize)
    if state is not None:
        try:
            load_state(model, state)
        except (RuntimeError, SpecError) as err:  # torch names the missing / unexpected / mis-shaped tensors
            raise SpecError(f"{label}: its weights do not fit the model its encoder_spec describes: {err}") from err
    return model.eval()


def tokenizer_and_config(spec: dict, label: str = "the checkpoint"):
    """The tokenizer and the transformer config a spec holds, read as from a model folder."""
    from transformers import AutoConfig, AutoTokenizer

    check_spec(spec, label)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in spec["tokenizer_files"].items():
            (Path(tmp) / name).write_bytes(data.numpy().tobytes())
        (Path(tmp) / "config.json").write_text(json.dumps(spec["transformer_config"]))
        return AutoTokenizer.from_pretrained(tmp), AutoConfig.from_pretrained(tmp)


def check_spec(spec, label: str) -> None:
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        found = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        raise SpecError(f"{label}: encoder_spec format {found!r} is not the one this biolord reads ({FORMAT}); "
                        "read it with the biolord version that wrote it and export its model/ folder")
    missing = [k for k in ("transformer_config", "tokenizer_files", "pooling", "normalize", "max_seq_length")
               if k not in spec]
    if missing:
        raise SpecError(f"{label}: encoder_spec lacks {missing}; it was not written by biolord.checkpoint")


# ---- the one loader ---------------------------------------------------------------------------
def load_model(name_or_path: str, pooling: str | None = None, normalize: bool | None = None,
               max_seq_length: int | None = None, attn_implementation: str | None = None):
    """Any model name (``biolord.model_source.find_model``) -> an ``Encoder``, or a ``Student`` when
    the model has an input prefix or a projection. Settings given here override the model's own."""
    from biolord.checkpoint import read_encoder

    found = model_source.find_model(name_or_path)
    if found.kind == "checkpoint":
        spec, state = read_encoder(found.location)
        return build(spec, state, pooling=pooling, normalize=normalize, max_seq_length=max_seq_length,
                     attn_implementation=attn_implementation, label=found.location, source=str(name_or_path))
    encoder = Encoder.from_folder(found.location, name_or_path, pooling=pooling, max_seq_length=max_seq_length,
                                  normalize=normalize, attn_implementation=attn_implementation)
    prefix, dense = folder_extras(found.location) if found.kind == "folder" else ("", None)
    if not prefix and dense is None:
        return encoder
    final_normalize = encoder.normalize
    student = Student(encoder, prefix=prefix, teacher_dim=dense["weight"].shape[0] if dense else None,
                      projection=dense is not None, normalize=final_normalize)
    if dense is not None:
        student.projection.load_state_dict(dense, strict=True)
    return student.eval()


def folder_extras(location: str) -> tuple[str, dict | None]:
    """(default prompt, Dense weights or None) of a sentence-transformers folder; other modules are refused
    (biolord would otherwise give vectors that ``SentenceTransformer(path)`` does not)."""
    root = Path(location)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return "", None
    dense = None
    for module in json.loads(modules_file.read_text()):
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind in ("Transformer", "Pooling", "Normalize"):
            continue
        if kind != "Dense" or dense is not None:
            raise SpecError(f"model {location} has the sentence-transformers module {module.get('type')} "
                            f"({module.get('path')}); biolord rebuilds Transformer -> Pooling -> [Dense] -> [Normalize] "
                            "only: load this model with SentenceTransformer instead")
        dense = _read_dense(root / module.get("path", ""), location)
    prompt = ""
    st_config = root / "config_sentence_transformers.json"
    if st_config.is_file():
        cfg = json.loads(st_config.read_text())
        name = cfg.get("default_prompt_name")
        prompt = (cfg.get("prompts") or {}).get(name, "") if name else ""
    return prompt, dense


def _read_dense(folder: Path, location: str) -> dict[str, torch.Tensor]:
    cfg = json.loads((folder / "config.json").read_text())
    if cfg.get("activation_function") not in _IDENTITY or not cfg.get("bias", True) or cfg.get("use_residual"):
        raise SpecError(f"model {location}: its Dense module ({folder.name}) has activation "
                        f"{cfg.get('activation_function')}, bias {cfg.get('bias', True)}, residual "
                        f"{cfg.get('use_residual', False)}; biolord's projection is linear with a bias only: load this "
                        "model with SentenceTransformer instead")
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        weights = load_file(folder / "model.safetensors")
    else:
        from biolord.checkpoint import load_checkpoint

        weights = load_checkpoint(folder / "pytorch_model.bin")
    return {"weight": weights["linear.weight"], "bias": weights["linear.bias"]}


# ---- description -> folder --------------------------------------------------------------------
def export(model, path, card: str | None = None) -> Path:
    """A sentence-transformers folder of an ``Encoder`` or a ``Student`` (prefix and projection included)."""
    from biolord.export import export_sentence_transformers

    if isinstance(model, Student):
        return model.export(path, card)
    return export_sentence_transformers(model, path, card)
