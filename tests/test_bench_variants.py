"""bench/variants.py --paired: the per-order differences, their mean and range, from quality.jsonl files."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _variants():
    spec = importlib.util.spec_from_file_location("variants", ROOT / "bench" / "variants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quality(path, ours: dict, theirs: dict):
    rows = [{"label": label, "benchmark": b, "primary": "spearman", "metrics": {"spearman": v}}
            for label, scores in (("biolord", ours), ("sentence-transformers", theirs)) for b, v in scores.items()]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + json.dumps({"summary": {}}) + "\n")
    return str(path)


def test_paired_table_means_ranges_and_wins_on_the_mean(tmp_path):
    a = _quality(tmp_path / "a.jsonl", {"mayosrs": 55.0, "umnsrs": 46.0}, {"mayosrs": 53.0, "umnsrs": 44.0})
    b = _quality(tmp_path / "b.jsonl", {"mayosrs": 52.0, "umnsrs": 42.0}, {"mayosrs": 52.0, "umnsrs": 45.0})
    table = _variants().paired_table([a, b])
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "| +2.00 | +0.00 | **+1.00** | +0.00 .. +2.00 | 2/2 |" in rows["mayosrs"]
    assert "| +2.00 | -3.00 | **-0.50** | -3.00 .. +2.00 | 1/2 |" in rows["umnsrs"]
    assert table.endswith("wins on the mean: 1/2")


def test_history_prints_the_benchmark_curve_of_a_run(tmp_path):
    metrics = {"seconds": 65, "heldout_retrieval": [{"step": 0, "acc@1": 80.0, "mrr": 85.0}, {"step": 10, "acc@1": 82.5, "mrr": 86.0}],
               "benchmarks": [{"step": 0, "bench/mayosrs/spearman": 45.5, "bench/mayosrs/pearson": 44.0},
                              {"step": 10, "bench/mayosrs/spearman": 52.25, "bench/biosses/spearman": 81.0}]}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    table = _variants().history_table(path)
    assert "| 10 | 82.50 | 86.00 | 1 min 5 s |" in table
    assert "| step | mayosrs | biosses |" in table and "| 0 | 45.50 | – |" in table and "| 10 | 52.25 | 81.00 |" in table
