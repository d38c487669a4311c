"""``run(cfg)``: score one or several models on the configured benchmarks and write the results.

Benchmarks are read once (files parsed, hashed, checked) before any model is loaded, so that a
bad file is reported in seconds; then each model is loaded, scored on every benchmark through one
``TextEmbedder`` (each distinct text encoded once per model), and released.

A benchmark that cannot be read (file missing, unparsable, bad spec) does not stop the others: it
becomes an error row of the results (table, JSON lines, console) with the reason and the fix, and
the rest are scored (held-out retrieval needs no file). ``strict=true`` then exits with status 1
after writing the results, for scripts and CI that must notice; the default is to carry on, the
way a user trying the suite without every public file wants it.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from biolord import encoder_spec, matryoshka, model_source
from biolord.devices import pick_device
from biolord.evaluation import benchmarks as registry
from biolord.evaluation import report
from biolord.evaluation.embedder import TextEmbedder, TruncatedEmbedder
from biolord.evaluation.files import evals_dir_or_default
from biolord.evaluation.model_names import models_to_score

log = logging.getLogger(__name__)


# What reading a benchmark can raise for a reason in its files or spec (ValueError covers
# BenchmarkFileError and UnicodeDecodeError; TypeError is a spec missing a required key).
READ_ERRORS = (ValueError, OSError, TypeError, KeyError, csv.Error)


def build_benchmarks(names, evals_dir=None, search_dirs=(), **context) -> list:
    """Every benchmark, or the first error: for callers whose result needs all of them (a greedy
    soup's score, the training callback)."""
    if not names:
        raise ValueError("benchmarks is empty; name at least one, e.g. benchmarks=[biosses,stsb]")
    return [registry.build(entry, evals_dir=evals_dir, search_dirs=search_dirs, **context) for entry in names]


def build_benchmarks_or_errors(names, evals_dir=None, search_dirs=(), **context) -> tuple[list, list[dict]]:
    """Each benchmark read on its own: ``(benchmarks, errors)``, an error being ``{benchmark, kind, error}``."""
    if not names:
        raise ValueError("benchmarks is empty; name at least one, e.g. benchmarks=[biosses,stsb]")
    benches, errors = [], []
    for entry in names:
        start = time.perf_counter()
        try:
            bench = registry.build(entry, evals_dir=evals_dir, search_dirs=search_dirs, **context)
        except READ_ERRORS as err:
            name, kind = _entry_name(entry, search_dirs)
            errors.append({"benchmark": name, "kind": kind, "error": f"{type(err).__name__}: {err}"})
            log.error("benchmark %s not run: %s", name, err)
            continue
        log.info("benchmark %s (%s) read in %.1fs", bench.name, bench.kind, time.perf_counter() - start)
        benches.append(bench)
    return benches, errors


def _entry_name(entry, search_dirs=()) -> tuple[str, str | None]:
    """The name and kind a benchmark entry would have had, for its error row."""
    try:
        spec = registry.load_spec(entry, search_dirs)
        return str(spec["name"]), spec.get("kind")
    except READ_ERRORS:
        if isinstance(entry, dict) or hasattr(entry, "get"):
            return str(entry.get("name") or entry.get("kind") or entry), entry.get("kind")
        return str(entry), None


def evaluate_encoder(embedder: TextEmbedder, benchmarks: list, model_name: str) -> list[dict]:
    """One result record per benchmark, in order."""
    records = []
    for bench in benchmarks:
        start = time.perf_counter()
        encoded_before = embedder.texts_encoded
        embedder.label = bench.name
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


def run(cfg: DictConfig) -> list[dict]:
    models = models_to_score(cfg.get("model"), cfg.get("models"))
    if not models:
        raise ValueError("no model to evaluate; give model=<folder or hub id> or models=[a,b]")
    truncate_dims = matryoshka.check_dims(cfg.get("truncate_dims"), None, "truncate_dims")
    if cfg.get("mteb"):
        from biolord.evaluation import mteb_tasks  # mteb is an optional dependency

        results = mteb_tasks.run(models, cfg.mteb, Path(cfg.output_dir), cfg.batch_size,
                                 pick_device(cfg.get("device")), truncate_dims)
        _write(results, Path(cfg.output_dir))
        return results
    evals_dir = evals_dir_or_default(cfg.get("evals_dir"))
    data_cfg = cfg.get("data")
    log.info("benchmark files are read from %s (evals_dir= or BIOLORD_EVALS_DIR)", evals_dir)
    benches, errors = build_benchmarks_or_errors(list(cfg.benchmarks), evals_dir, cfg.get("benchmark_dirs") or (),
                                                 data=data_cfg)
    device = pick_device(cfg.get("device"))
    results: list[dict] = []
    for name in models:
        name = str(name)
        failed = [{"model": name, **e} for e in errors]
        if not benches:  # nothing readable: no model to load
            results.extend(failed)
            continue
        # the one loader: a folder, a run folder or a checkpoint of any phase, a multilingual student
        # with its prefix and projection included (the vectors SentenceTransformer(path) gives)
        encoder = encoder_spec.load_model(name, pooling=cfg.get("pooling"), normalize=cfg.get("normalize"),
                                          max_seq_length=cfg.get("max_seq_length")).to(device)
        log.info("model %s: %s, device %s", name, encoder_spec.describe(encoder), device)
        embedder = TextEmbedder(encoder, cfg.batch_size, cfg.get("cache_dir") or None, device)
        records = []
        # one size at a time, each a view on the same full vectors (the model runs once per text)
        for dim in matryoshka.check_dims(truncate_dims, encoder.dim, "truncate_dims") or [None]:
            view = embedder if dim is None else TruncatedEmbedder(embedder, dim)
            for r in evaluate_encoder(view, benches, name if dim is None else f"{name} @{dim}"):
                r["model"], r["dim"] = name, dim or encoder.dim
                records.append(r)
        for r in records:
            r["settings"] = {"pooling": encoder.pooling, "max_seq_length": encoder.max_seq_length,
                             "normalize": encoder.normalize}
        results.extend(records + failed)
        if cfg.get("update_model_card") and _is_local_folder(name):
            log.info("benchmark section written to %s", report.update_model_card(Path(name), records, encoder.dim))
        del encoder, embedder
    _write(results, Path(cfg.output_dir))
    if errors:
        log.warning("%d of %d benchmarks not run: %s. Put their files in %s (or set evals_dir= / BIOLORD_EVALS_DIR)",
                    len(errors), len(errors) + len(benches), ", ".join(e["benchmark"] for e in errors), evals_dir)
        if cfg.get("strict"):
            log.error("strict=true: exit status 1 because %d benchmark(s) could not run", len(errors))
            raise SystemExit(1)
    return results


def _write(results: list[dict], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    report.write_jsonl(results, output_dir / "results.jsonl")
    table = report.markdown_table(results)
    by_dim = report.dimension_table(results)  # empty unless a model was scored at several sizes
    if by_dim:
        table += "\n\nPrimary metric per model and dimension:\n\n" + by_dim
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
