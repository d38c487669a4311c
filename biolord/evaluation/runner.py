"""``run(cfg)``: score one or several models on the configured benchmarks and write the results.

Benchmarks are read once (files parsed, hashed, checked) before any model is loaded, so that a
bad file fails in seconds; then each model is loaded, scored on every benchmark through one
``TextEmbedder`` (each distinct text encoded once per model), and released.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from biolord import model_source
from biolord.encoder import Encoder
from biolord.evaluation import benchmarks as registry
from biolord.evaluation import report
from biolord.evaluation.cache import EmbeddingCache
from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.files import evals_dir_or_default

log = logging.getLogger(__name__)


def build_benchmarks(names, evals_dir=None, search_dirs=(), **context) -> list:
    if not names:
        raise ValueError("benchmarks is empty; name at least one, e.g. benchmarks=[biosses,stsb]")
    return [registry.build(entry, evals_dir=evals_dir, search_dirs=search_dirs, **context) for entry in names]


def evaluate_encoder(embedder: TextEmbedder, benchmarks: list, model_name: str) -> list[dict]:
    """One result record per benchmark, in order."""
    records = []
    for bench in benchmarks:
        start = time.perf_counter()
        encoded_before = embedder.texts_encoded
        out = bench.run(embedder)
        seconds = time.perf_counter() - start
        record = {
            "model": model_name,
            "benchmark": bench.name,
            "kind": bench.kind,
            "primary": bench.primary,
            "n": out["n"],
            "metrics": {k: round(float(v), 4) for k, v in out["metrics"].items()},
            "skipped": out.get("skipped", {}),
            "texts_encoded": embedder.texts_encoded - encoded_before,
            "seconds": round(seconds, 2),
            "files": bench.files,
        }
        if out.get("details"):
            record["details"] = out["details"]
        log.info("%s | %s: %s (n=%d, %.1fs)", model_name, bench.name,
                 ", ".join(f"{k} {v:.2f}" for k, v in record["metrics"].items()), record["n"], seconds)
        records.append(record)
    return records


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run(cfg: DictConfig) -> list[dict]:
    models = list(cfg.get("models") or [])
    if not models:
        raise ValueError("no model to evaluate; give model=<folder or hub id> or models=[a,b]")
    evals_dir = evals_dir_or_default(cfg.get("evals_dir"))
    data_cfg = cfg.get("data")
    benches = build_benchmarks(list(cfg.benchmarks), evals_dir, cfg.get("benchmark_dirs") or (), data=data_cfg)
    cache = EmbeddingCache(cfg.cache_dir) if cfg.get("cache_dir") else None
    device = pick_device(cfg.get("device"))
    results: list[dict] = []
    for name in models:
        name = str(name)
        encoder = Encoder.load(name, pooling=cfg.get("pooling"), normalize=cfg.get("normalize"),
                               max_seq_length=cfg.get("max_seq_length")).to(device)
        log.info("model %s: pooling %s, max_seq_length %d, device %s",
                 name, encoder.pooling, encoder.max_seq_length, device)
        embedder = TextEmbedder(encoder, cfg.batch_size, cache, device)
        records = evaluate_encoder(embedder, benches, name)
        for r in records:
            r["settings"] = {"pooling": encoder.pooling, "max_seq_length": encoder.max_seq_length,
                             "normalize": encoder.normalize}
        results.extend(records)
        if cfg.get("update_model_card") and _is_local_folder(name):
            log.info("benchmark section written to %s", report.update_model_card(Path(name), records))
        del encoder, embedder
    _write(results, Path(cfg.output_dir))
    return results


def _write(results: list[dict], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    report.write_jsonl(results, output_dir / "results.jsonl")
    table = report.markdown_table(results)
    (output_dir / "results.md").write_text(table + "\n", encoding="utf-8")
    report.bar_chart(results, output_dir / "results.png")
    print("\n" + table + f"\n\nresults: {output_dir}/results.jsonl, results.md, results.png")


def _is_local_folder(name: str) -> bool:
    """A run's model/ folder or another local folder (never an installed package or a hub cache)."""
    if name.startswith("package:"):
        return False
    try:
        return Path(model_source.resolve(name)).is_dir()
    except model_source.ModelNotFoundError:
        return False
