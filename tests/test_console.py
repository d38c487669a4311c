"""What the terminal shows: the progress helper's log lines, the training bar's figures, one copy of
each Lightning message, the elapsed time, and the usage text of every entry point."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from biolord import console
from biolord.console import Progress, format_seconds, progress

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(console.time, "perf_counter", fake)
    return fake


def test_log_mode_writes_a_line_per_interval_with_rate_and_eta_then_a_summary(clock, caplog):
    caplog.set_level(logging.INFO, logger="biolord.console")
    bar = Progress(total=1000, desc="encoding for ncbi_disease", unit="texts", interval=30, mode="log")
    for _ in range(10):  # 100 texts every 10 s: a line at 30 s, 60 s, 90 s
        clock.now += 10
        bar.update(100)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[0] == ("encoding for ncbi_disease: 300/1000 texts (30%), 10.0 texts/s, 30.0 s elapsed, "
                        "ETA 1 min 10 s")
    assert lines[2].startswith("encoding for ncbi_disease: 900/1000 texts (90%)") and lines[2].endswith("ETA 10.0 s")
    assert lines[3] == "encoding for ncbi_disease: 1000 texts in 1 min 40 s (10.0 texts/s)"


def test_log_mode_is_silent_for_short_work_and_counts_unknown_totals(clock, caplog):
    caplog.set_level(logging.INFO, logger="biolord.console")
    with Progress(total=20, desc="quick", unit="texts", mode="log") as bar:  # min_seconds=2 by default
        clock.now += 0.5
        bar.update(20)
    assert caplog.records == []
    for _ in progress(iter(range(5)), desc="data: reading tiny", unit="rows", mode="log", min_seconds=0.0):
        clock.now += 1
    assert [r.getMessage() for r in caplog.records] == ["data: reading tiny: 5 rows in 5.0 s (1.0 rows/s)"]


def test_mode_from_the_environment_and_the_terminal(monkeypatch):
    monkeypatch.delenv("BIOLORD_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal (a CI log): log lines
    assert console.progress_mode() == "log"
    monkeypatch.setenv("BIOLORD_PROGRESS", "off")
    assert console.progress_mode() == "off"
    monkeypatch.setenv("RANK", "1")  # another rank: nothing, whatever the setting
    monkeypatch.setenv("BIOLORD_PROGRESS", "bar")
    assert console.progress_mode() == "off"
    monkeypatch.setenv("BIOLORD_PROGRESS", "loud")
    with pytest.raises(ValueError, match="BIOLORD_PROGRESS='loud'.*bar"):
        console.progress_mode()


def test_format_seconds():
    assert [format_seconds(s) for s in (3.21, 59.96, 319, 7380)] == ["3.2 s", "60.0 s", "5 min 19 s", "2 h 03 min"]


def test_training_bar_shows_the_learning_rate_in_scientific_notation():
    from biolord.progress_bar import format_metric

    assert format_metric("train/lr", 5e-05) == "5.00e-05"
    assert format_metric("train/lr", 0.0) == "0.00e+00"
    assert format_metric("train/loss", 1.63149) == "1.631"


def test_session_logs_the_elapsed_time_and_drops_lightning_duplicates(caplog):
    import lightning  # noqa: F401  (its import adds the handler that doubled every message)

    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)  # as Hydra's job logging does
    root.addHandler(handler)
    own = sys.modules["lightning"]._console
    lightning_logger = logging.getLogger("lightning")
    had_own = own in lightning_logger.handlers
    lightning_logger.addHandler(own)
    caplog.set_level(logging.INFO)
    try:
        with console.session("train"):
            assert own not in lightning_logger.handlers  # Lightning's records reach the root handler only
            logging.getLogger("lightning.pytorch.utilities.rank_zero").info("💡 Tip: try installing litlogger")
            logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False")
    finally:
        root.removeHandler(handler)
        if had_own:
            lightning_logger.addHandler(own)
    messages = [r.getMessage() for r in caplog.records]
    assert "GPU available: False" in messages and not any("litlogger" in m for m in messages)
    assert messages[-1].startswith("train finished in ")


def test_training_run_ends_with_the_bar_summary_in_a_log(tiny_train_cfg, caplog, monkeypatch):
    """trainer.enable_progress_bar=true: the step bar (here as log lines: not a terminal) counts
    optimizer steps to max_steps and reports the loss and the learning rate in scientific notation."""
    from biolord.train import run

    monkeypatch.setenv("BIOLORD_PROGRESS", "log")
    caplog.set_level(logging.INFO, logger="biolord.console")
    run(tiny_train_cfg("trainer.enable_progress_bar=true", "export=false", "eval.every_n_steps=0"))
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train: ")]
    assert len(summary) == 1 and summary[0].startswith("train: 3 steps in ")
    assert "epoch 0" in summary[0] and "lr " in summary[0] and "e-0" in summary[0].split("lr ")[1]


HELP_SCRIPT = r"""
import runpy, sys
from hydra.core.global_hydra import GlobalHydra
for target in sys.argv[1:]:
    sys.argv = [target, "--help"]
    GlobalHydra.instance().clear()
    print("=== " + target, flush=True)
    try:
        if target.endswith(".py"):
            runpy.run_path(target, run_name="__main__")
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        assert exit.code in (None, 0), (target, exit.code)
"""

ENTRY_POINTS = {
    "train.py": ["Usage: python train.py", "debug=fast", "Config groups", "experiment: biolord2023_c"],
    "average.py": ["Usage: python average.py ckpts=", "method=greedy"],
    "distill.py": ["Usage: python distill.py", "teacher="],
    "pipeline.py": ["Usage: python pipeline.py", "soup="],
    "biolord.evaluate": ["Usage: python -m biolord.evaluate model=", "strict", "BIOLORD_EVALS_DIR"],
    "biolord.link": ["Usage: python -m biolord.link dictionary=", "top_k=5"],
    "biolord.data": ["Usage: python -m biolord.data", "stats_sample"],
}


def test_every_entry_point_prints_its_usage_with_help():
    """``--help`` composes the config only (no model, no data): all seven in one interpreter."""
    out = subprocess.run([sys.executable, "-c", HELP_SCRIPT, *ENTRY_POINTS], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    sections = dict(part.split("\n", 1) for part in out.stdout.split("=== ")[1:])
    for target, expected in ENTRY_POINTS.items():
        for text in expected:
            assert text in sections[target], (target, text, sections[target][:500])
        assert "is powered by Hydra" not in sections[target]  # Hydra's generic page is replaced
