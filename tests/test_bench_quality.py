"""bench/quality.py refuses to start without accelerate, before it trains anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quality_bench_names_the_missing_accelerate_before_training(tmp_path):
    # accelerate hidden (None in sys.modules makes `import accelerate` raise ImportError)
    code = ("import runpy, sys; sys.modules['accelerate'] = None; "
            f"sys.argv = ['bench/quality.py', '--single', '--out', {str(tmp_path / 'q')!r}]; "
            "runpy.run_path('bench/quality.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "needs accelerate>=1.1.0: pip install -e '.[bench]'" in done.stderr
    assert not (tmp_path / "q").exists()  # nothing trained, no run folder


def test_a_short_sentence_transformers_run_is_called_out(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality_bench", ROOT / "bench" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    quality.print_short_budget_note({"seconds": 968.0, "steps": 281, "calibrated_s_per_step": 3.85}, 1082.4)
    assert "trained 968 of its 1082 s (281 steps planned from a calibrated 3.85 s/step)" in capsys.readouterr().out
    quality.print_short_budget_note({"seconds": 1000.0, "steps": 290, "calibrated_s_per_step": 3.7}, 1082.4)
    assert capsys.readouterr().out == ""
