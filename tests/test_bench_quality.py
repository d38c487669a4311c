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
