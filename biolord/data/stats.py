"""Statistics of a configured data source: rows, concepts, kinds, token lengths, rows skipped and why."""

from __future__ import annotations

import numpy as np

from biolord.data.datamodule import PairDataModule


def data_statistics(dm: PairDataModule, tokenizer, sample: int = 5000, seed: int = 0) -> dict:
    dm.setup()
    table = dm.table
    keep = table.keep
    kinds = table.dataset.data.column("kind").to_numpy(zero_copy_only=False)[keep]
    source_ids = table.column("source_id")[keep]
    keys = table.column("concept_key")[keep]
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(keep)
    picked = np.sort(rng.choice(rows, size=min(sample, len(rows)), replace=False)) if len(rows) else rows
    sub = table.dataset.select(picked.tolist())
    percentiles = (50, 90, 95, 99, 100)
    lengths = {}
    for side in ("name", "text"):
        # tokenised only to measure: verbose=False drops transformers' "Token indices sequence
        # length is longer than the specified maximum ... indexing errors" warning (the model
        # never sees these ids; training truncates to model.max_seq_length)
        texts = sub.data.column(side).to_pylist()
        n_tokens = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]])
        lengths[side] = {f"p{p}": int(np.percentile(n_tokens, p)) for p in percentiles} if len(n_tokens) else {}
    return {
        "rows": int(keep.sum()),
        "concepts": int(len(np.unique(keys))),
        "train_rows": int(len(dm.train_indices)),
        "heldout_concepts_for_retrieval": len(dm.heldout),
        "rows_per_source": {table.sources[i]: int(n) for i, n in enumerate(np.bincount(source_ids, minlength=len(table.sources)))},
        "kinds": {str(k): int(n) for k, n in zip(*np.unique(kinds, return_counts=True))},
        "tokens_per_side": {"sampled_rows": int(len(picked)), **lengths},
        "skipped": table.report.get("skipped", {}),
        "terms_excluded": table.report.get("terms_excluded", {}),
        "read_leniently": table.report.get("read_leniently", {}),
        "truncated": dm.truncated,
        "unused_sources": dm.unused,
    }


def format_statistics(stats: dict) -> str:
    lines = [f"rows: {stats['rows']}  concepts: {stats['concepts']}  training rows: {stats['train_rows']}  "
             f"held-out concepts scored: {stats['heldout_concepts_for_retrieval']}"]
    lines.append("rows per source: " + ", ".join(f"{k} {v}" for k, v in stats["rows_per_source"].items()))
    lines.append("kinds: " + ", ".join(f"{k} {v}" for k, v in stats["kinds"].items()))
    tok = stats["tokens_per_side"]
    for side in ("name", "text"):
        if tok.get(side):
            lines.append(f"tokens per {side} ({tok['sampled_rows']} sampled rows): " + ", ".join(f"{k} {v}" for k, v in tok[side].items()))
    if stats["skipped"]:
        lines.append("rows skipped: " + "; ".join(f"{k}: {v}" for k, v in stats["skipped"].items()))
    else:
        lines.append("rows skipped: none")
    for src, reasons in stats["terms_excluded"].items():
        if reasons:
            lines.append(f"terms excluded from {src}: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    for src, reasons in stats.get("read_leniently", {}).items():
        if reasons:
            lines.append(f"read leniently from {src} (terms kept): " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    truncated = stats.get("truncated") or {}
    for side in ("name", "text"):
        cut = {k: v for k, v in (truncated.get(side) or {}).items() if v}
        if cut:
            lines.append(f"rows whose {side} is cut at {truncated['max_tokens']} tokens: " + ", ".join(f"{k} {v}" for k, v in cut.items()))
    for src, n in (stats.get("unused_sources") or {}).items():
        lines.append(f"never sampled (weight 0): {src} ({n} training rows)")
    return "\n".join(lines)
