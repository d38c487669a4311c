"""One table of every recipe variant tried: rows from the evaluation files of several runs.

Issue 11 asks for the table of each recipe tried, the ones that lost included. Each variant is a
``label=results.jsonl`` argument: a ``python -m biolord.evaluate`` output or a ``bench/quality.py``
``quality.jsonl`` (then ``label=file@model`` picks one of its models: base, sentence-transformers,
biolord). A row's benchmarks may come from several files (``label=a.jsonl+b.jsonl``, e.g. NCBI scored
separately). The table is ``biolord.pipeline.primary_table`` with a difference column against the
``--reference`` row, so that no figure is typed by hand::

    python bench/variants.py "ST 600 s=runs/st600/evaluation/results.jsonl@sentence-transformers" \\
        "default=runs/e4/evaluation/results.jsonl@biolord" "+ Matryoshka=runs/v2/eval/results.jsonl" \\
        --reference "ST 600 s" > variants.md
    python bench/variants.py --history outputs/contrastive/<run>/metrics.json   # a run's held-out (and benchmark) curve
    python bench/variants.py --paired o0/quality.jsonl o1/quality.jsonl o2/quality.jsonl

``--paired`` reads several ``bench/quality.py`` runs of one recipe under different data orders
(``--seed``): one comparison moves by several points from order to order (UMNSRS-sim by ~3.7), so
a lever is judged on the mean difference and its spread, not on one order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def read_variant(spec: str) -> tuple[str, list[dict]]:
    """``label=file[@model][+file[@model]...]`` -> (label, result rows relabelled)."""
    label, eq, files = spec.partition("=")
    if not eq or not files:
        raise SystemExit(f"variant {spec!r}: give label=results.jsonl[@model]")
    rows = []
    for part in files.split("+"):
        path, _, model = part.partition("@")
        if not Path(path).is_file():
            raise SystemExit(f"variant {label!r}: {path} not found")
        found = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        found = [r for r in found if "benchmark" in r and (not model or model in (r.get("label"), r.get("model")))]
        if not found:
            raise SystemExit(f"variant {label!r}: no result rows{f' for model {model!r}' if model else ''} in {path}")
        rows += [{**r, "label": label} for r in found]
    return label, rows


def history_table(metrics_json: Path) -> str:
    """A training run's held-out retrieval at every evaluation, and its wall time (its metrics.json)."""
    metrics = json.loads(Path(metrics_json).read_text())
    history = metrics.get("heldout_retrieval") or []
    if not history:
        raise SystemExit(f"{metrics_json}: no heldout_retrieval history (a train.py run's metrics.json)")
    minutes, seconds = divmod(round(metrics.get("seconds") or 0), 60)
    lines = ["| step | held-out acc@1 | held-out MRR | wall time |", "|---:|---:|---:|---:|"]
    for i, h in enumerate(history):
        wall = f"{minutes} min {seconds} s" if i == len(history) - 1 and metrics.get("seconds") else ""
        lines.append(f"| {h['step']} | {h['acc@1']:.2f} | {h['mrr']:.2f} | {wall} |")
    curve = benchmark_curve(metrics.get("benchmarks") or [])
    return "\n".join(lines) + (f"\n\n{curve}" if curve else "")


def benchmark_curve(history: list[dict]) -> str:
    """The training callback's benchmark scores (``bench.every_n_steps``), one row per step: the
    Spearman of each relatedness / STS benchmark (its ``bench/<name>/spearman`` key)."""
    names = list(dict.fromkeys(k.split("/")[1] for h in history for k in h if k.endswith("/spearman")))
    if not names:
        return ""
    lines = ["| step | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for h in history:
        cells = [f"{h[f'bench/{n}/spearman']:.2f}" if f"bench/{n}/spearman" in h else "–" for n in names]
        lines.append(f"| {h['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(files: list[str], ours: str = "biolord", theirs: str = "sentence-transformers") -> str:
    """Per benchmark: ``ours - theirs`` under each run, the mean, the range and the runs won; then
    the wins on the mean (the figure a single run's ``wins:`` line estimates)."""
    per_run = []
    for path in files:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        by = {(r["label"], r["benchmark"]): r["metrics"][r["primary"]] for r in rows if "benchmark" in r}
        benches = [b for (label, b) in by if label == ours and (theirs, b) in by]
        if not benches:
            raise SystemExit(f"{path}: no benchmark scored for both {ours!r} and {theirs!r}")
        per_run.append({b: by[(ours, b)] - by[(theirs, b)] for b in benches})
    benches = [b for b in per_run[0] if all(b in run for run in per_run)]
    head = " | ".join(f"run {i + 1}" for i in range(len(files)))
    lines = [f"| benchmark | {head} | mean | min .. max | runs won |", "|---|" + "---:|" * (len(files) + 3)]
    won_on_mean = 0
    for b in benches:
        diffs = [run[b] for run in per_run]
        mean = sum(diffs) / len(diffs)
        won_on_mean += mean >= 0
        lines.append(f"| {b} | " + " | ".join(f"{d:+.2f}" for d in diffs)
                     + f" | **{mean:+.2f}** | {min(diffs):+.2f} .. {max(diffs):+.2f} | {sum(d >= 0 for d in diffs)}/{len(diffs)} |")
    runs = "; ".join(f"run {i + 1}: {f}" for i, f in enumerate(files))
    lines.append(f"\n{ours} - {theirs} per run ({runs}); wins on the mean: {won_on_mean}/{len(benches)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", help="label=results.jsonl[@model][+more]")
    parser.add_argument("--reference", default=None, help="label of the row the last column compares against")
    parser.add_argument("--history", default=None, help="a train.py run's metrics.json: its held-out curve (and its benchmark curve, with bench.every_n_steps) instead")
    parser.add_argument("--paired", nargs="+", default=None, help="quality.jsonl files of one recipe, one per data order")
    args = parser.parse_args()
    if args.paired:
        print(paired_table(args.paired))
        return
    if args.history:
        print(history_table(Path(args.history)))
        return
    if not args.variants:
        parser.error("give variants (label=results.jsonl[@model]) or --history metrics.json")

    from biolord.pipeline import primary_table

    results = [r for spec in args.variants for r in read_variant(spec)[1]]
    table = primary_table(results).splitlines()
    if args.reference:
        by = {(r["label"], r["benchmark"]): r["metrics"][r["primary"]] for r in results}
        benches = list(dict.fromkeys(r["benchmark"] for r in results))
        table[0] += f" wins vs {args.reference} |"
        table[1] += "---:|"
        for i, line in enumerate(table[2:], 2):
            label = line.split(" | ")[0].removeprefix("| ")
            both = [b for b in benches if (label, b) in by and (args.reference, b) in by]
            won = sum(by[(label, b)] >= by[(args.reference, b)] for b in both)
            table[i] += f" {won}/{len(both)} |"
    print("\n".join(table))


if __name__ == "__main__":
    main()
