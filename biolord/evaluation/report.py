"""Results of an evaluation: JSON lines, a side-by-side markdown table, a bar chart, a model card section.

One JSON line per (model, benchmark) keeps every figure with what produced it (model, n, skipped
rows, sha256 of the data files, seconds), so results from separate runs can be concatenated and
compared, as model-soups does with its JSON-lines results.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CARD_START = "<!-- biolord-benchmarks:start -->"
CARD_END = "<!-- biolord-benchmarks:end -->"


def write_jsonl(results: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for record in results:
            f.write(json.dumps(record) + "\n")
    return path


def scored(results: list[dict]) -> list[dict]:
    """The records with scores (a benchmark that could not be read has an ``error`` record instead)."""
    return [r for r in results if not r.get("error")]


def markdown_table(results: list[dict]) -> str:
    """Rows: benchmark x metric; columns: models (in the order they were evaluated), one per
    dimension when a model was scored at several sizes (``truncate_dims``). A benchmark that could
    not run has a ``not run`` row, and its reason is listed under the table."""
    if not results:
        return ""
    failed = {r["benchmark"]: r["error"] for r in results if r.get("error")}
    results = scored(results)
    labels = _columns(results)
    rows: dict[tuple[str, str], dict] = {}
    n_of: dict[str, int] = {}
    for r in results:
        n_of.setdefault(r["benchmark"], r["n"])
        for metric, value in r["metrics"].items():
            rows.setdefault((r["benchmark"], metric), {})[_column(r)] = value
    lines = [
        "| benchmark | metric | n | " + " | ".join(labels.values()) + " |",
        "|---|---|---:|" + "---:|" * len(labels),
    ]
    for (bench, metric), values in rows.items():
        cells = [f"{values[c]:.2f}" if c in values else "–" for c in labels]
        n = n_of[bench] if n_of[bench] is not None else "–"
        lines.append(f"| {bench} | {metric} | {n} | " + " | ".join(cells) + " |")
    for bench in failed:
        lines.append(f"| {bench} | not run | – | " + " | ".join("error" for _ in labels) + " |")
    seconds = {}
    for r in results:
        seconds.setdefault(_column(r), {})[r["benchmark"]] = r["seconds"]
    if seconds:
        lines.append("")
        lines.append("Seconds per benchmark: " + "; ".join(
            f"{label}: " + ", ".join(f"{b} {s:.1f}" for b, s in seconds[c].items())
            for c, label in labels.items() if c in seconds))
    if failed:
        lines.append("")
        lines.append("Not run:")
        lines += [f"- {bench}: {reason}" for bench, reason in failed.items()]
    return "\n".join(lines)


def dimension_table(results: list[dict]) -> str:
    """One row per model x dimension, one column per benchmark (its primary metric); empty unless
    some model was scored at more than one size (Matryoshka: how much each size keeps)."""
    results = scored(results)
    columns = _columns(results)
    if all(len({r.get("dim") for r in results if r["model"] == m}) < 2 for m in {r["model"] for r in results}):
        return ""
    benches = list(dict.fromkeys(r["benchmark"] for r in results))
    value = {(_column(r), r["benchmark"]): r["metrics"].get(r["primary"]) for r in results}
    primary = {r["benchmark"]: r["primary"] for r in results}
    lines = [
        "| model | dim | " + " | ".join(f"{b} {primary[b]}" for b in benches) + " |",
        "|---|---:|" + "---:|" * len(benches),
    ]
    for (model, dim) in columns:
        cells = [f"{value[(model, dim), b]:.2f}" if value.get(((model, dim), b)) is not None else "–" for b in benches]
        lines.append(f"| {_short(model)} | {dim if dim is not None else '–'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _column(record: dict) -> tuple[str, int | None]:
    return record["model"], record.get("dim")


def _columns(results: list[dict]) -> dict[tuple[str, int | None], str]:
    """(model, dim) -> its column label, in evaluation order; the dim shows when the model has several."""
    keys = list(dict.fromkeys(_column(r) for r in results))
    several = {m for m, _ in keys if sum(1 for k in keys if k[0] == m) > 1}
    return {(m, d): f"{_short(m)} @{d}" if m in several else _short(m) for m, d in keys}


def bar_chart(results: list[dict], path: Path) -> Path | None:
    """One group of bars per benchmark (its primary metric), one bar per model."""
    results = scored(results)
    if not results:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = _columns(results)  # (model, dim) -> label
    benches = list(dict.fromkeys(r["benchmark"] for r in results))
    value = {(_column(r), r["benchmark"]): r["metrics"][r["primary"]] for r in results if r["primary"] in r["metrics"]}
    label = {r["benchmark"]: f"{r['benchmark']}\n{r['primary']}" for r in results}
    x = np.arange(len(benches))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(benches) * max(1, len(models) / 2)), 4))
    for i, (model, name) in enumerate(models.items()):
        heights = [value.get((model, b), np.nan) for b in benches]
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, heights, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, [label[b] for b in benches], fontsize=8)
    ax.set_ylabel("score (x100)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def card_section(results: list[dict]) -> str:
    """The markdown a model card carries between markers, so that a later evaluation replaces it."""
    return f"{CARD_START}\n## Benchmarks\n\n{markdown_table(results)}\n{CARD_END}\n"


def update_model_card(model_dir: Path, results: list[dict], full_dim: int | None = None) -> Path:
    """Put (or replace) the benchmark section in ``<model_dir>/README.md`` and the scores in its
    ``model-index`` (the YAML header the Hub reads); a score at a truncated size (``truncate_dims``)
    has the config ``dim=<k>``."""
    from dataclasses import replace

    from biolord import card as model_card

    card = model_dir / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    section = card_section(results)
    pattern = re.compile(re.escape(CARD_START) + r".*?" + re.escape(CARD_END) + r"\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    scores = [replace(s, config=None if r.get("dim") in (None, full_dim) else f"dim={r['dim']}")
              for r in scored(results) for s in model_card.benchmark_scores({r["benchmark"]: r["metrics"]})]
    card.write_text(model_card.with_scores(text, scores, model_name=_short(str(model_dir))), encoding="utf-8")
    return card


def _short(model: str) -> str:
    """Column label: the last two path parts of a folder, the spec of a package or hub model."""
    if model.startswith("package:"):
        return model[len("package:"):].split("/")[0]
    parts = Path(model).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else model
