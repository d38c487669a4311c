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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="label=results.jsonl[@model][+more]")
    parser.add_argument("--reference", default=None, help="label of the row the last column compares against")
    args = parser.parse_args()

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
