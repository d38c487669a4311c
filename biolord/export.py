"""Encoder -> a sentence-transformers folder that ``SentenceTransformer(path)`` loads.

The folder uses the classic layout (transformer files at the root, ``1_Pooling/``,
``2_Normalize/``, ``modules.json``, ``sentence_bert_config.json``) that every
sentence-transformers release since 2.x reads, with weights as safetensors. It is written into a
temporary sibling folder and renamed into place (``biolord.atomic``), so an interrupted export
never leaves a half-written model behind, and it gets the permissions the umask gives any folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from biolord.atomic import atomic_folder
from biolord.encoder import Encoder


def export_sentence_transformers(
    encoder: Encoder, path: str | os.PathLike, card: str | None = None, finish: Callable[[Path], None] | None = None
) -> Path:
    """Write ``encoder`` to ``path`` (replaced if it exists); ``card`` becomes README.md.

    ``finish(folder)`` adds files of the caller's own (a projection, prompts) before the folder
    is put in place, so that those are part of the same atomic write.
    """
    with atomic_folder(path) as tmp:
        write_model_files(encoder, tmp, card)
        if finish is not None:
            finish(tmp)
    return Path(path)


def write_model_files(encoder: Encoder, folder: Path, card: str | None) -> None:
    """The sentence-transformers files of ``encoder`` into an existing (empty) ``folder``; not atomic."""
    import sentence_transformers
    import torch
    import transformers

    encoder.transformer.save_pretrained(folder, safe_serialization=True)
    encoder.tokenizer.save_pretrained(folder)
    _dump(folder / "sentence_bert_config.json", {"max_seq_length": encoder.max_seq_length, "do_lower_case": False})
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if encoder.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir()
    _dump(folder / "modules.json", modules)
    (folder / "1_Pooling").mkdir()
    _dump(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": encoder.dim,
            "pooling_mode_cls_token": encoder.pooling == "cls",
            "pooling_mode_mean_tokens": encoder.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    _dump(
        folder / "config_sentence_transformers.json",
        {
            "__version__": {
                "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "pytorch": torch.__version__,
            },
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (folder / "README.md").write_text(card or default_card(encoder))


def default_card(encoder: Encoder, extra: str = "") -> str:
    """The card of a folder written outside a training run (a conversion, a test): biolord.card's generator."""
    from biolord import card

    return card.model_card(title="biolord model", summary=f"Written by biolord from `{encoder.source}`.",
                           model_facts=card.encoder_facts(encoder), base_model=encoder.source, sections=[extra])


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")
