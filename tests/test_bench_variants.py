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
