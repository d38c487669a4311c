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
    """Rows: benchmark x metric; columns: models (in the order they were evaluated). A benchmark
    that could not run has a ``not run`` row, and its reason is listed under the table."""
    if not results:
        return ""
    models = list(dict.fromkeys(r["model"] for r in results))
    failed = {r["benchmark"]: r["error"] for r in results if r.get("error")}
    results = scored(results)
    rows: dict[tuple[str, str], dict] = {}
    n_of: dict[str, int] = {}
    for r in results:
        n_of.setdefault(r["benchmark"], r["n"])
        for metric, value in r["metrics"].items():
            rows.setdefault((r["benchmark"], metric), {})[r["model"]] = value
    lines = [
        "| benchmark | metric | n | " + " | ".join(_short(m) for m in models) + " |",
        "|---|---|---:|" + "---:|" * len(models),
    ]
    for (bench, metric), values in rows.items():
        cells = [f"{values[m]:.2f}" if m in values else "–" for m in models]
        lines.append(f"| {bench} | {metric} | {n_of[bench]} | " + " | ".join(cells) + " |")
    for bench in failed:
        lines.append(f"| {bench} | not run | – | " + " | ".join("error" for _ in models) + " |")
    seconds = {}
    for r in results:
        seconds.setdefault(r["model"], {})[r["benchmark"]] = r["seconds"]
    if seconds:
        lines.append("")
        lines.append("Seconds per benchmark: " + "; ".join(
            f"{_short(m)}: " + ", ".join(f"{b} {s:.1f}" for b, s in seconds[m].items()) for m in models if m in seconds))
    if failed:
        lines.append("")
        lines.append("Not run:")
        lines += [f"- {bench}: {reason}" for bench, reason in failed.items()]
    return "\n".join(lines)


def bar_chart(results: list[dict], path: Path) -> Path | None:
    """One group of bars per benchmark (its primary metric), one bar per model."""
    results = scored(results)
    if not results:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(r["model"] for r in results))
    benches = list(dict.fromkeys(r["benchmark"] for r in results))
    value = {(r["model"], r["benchmark"]): r["metrics"][r["primary"]] for r in results}
    label = {r["benchmark"]: f"{r['benchmark']}\n{r['primary']}" for r in results}
    x = np.arange(len(benches))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(benches) * max(1, len(models) / 2)), 4))
    for i, model in enumerate(models):
        heights = [value.get((model, b), np.nan) for b in benches]
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, heights, width, label=_short(model))
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


def update_model_card(model_dir: Path, results: list[dict]) -> Path:
    """Put (or replace) the benchmark section in ``<model_dir>/README.md``."""
    card = model_dir / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    section = card_section(results)
    pattern = re.compile(re.escape(CARD_START) + r".*?" + re.escape(CARD_END) + r"\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    card.write_text(text, encoding="utf-8")
    return card


def _short(model: str) -> str:
    """Column label: the last two path parts of a folder, the spec of a package or hub model."""
    if model.startswith("package:"):
        return model[len("package:"):].split("/")[0]
    parts = Path(model).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else model
