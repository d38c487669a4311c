"""``trainer.precision=auto``: bf16 autocast only where the hardware computes in bf16."""

from __future__ import annotations

import logging

import torch

from biolord import precision
from biolord.train import run


def test_auto_picks_bf16_only_on_a_cpu_with_bf16_instructions(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.resolve("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.resolve("auto", "cpu") == "32-true"
    assert precision.resolve("32-true", "cpu") == "32-true" and precision.resolve(None, "cpu") == "32-true"


def test_auto_on_a_gpu_falls_back_to_fp16_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve("auto", "gpu") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve("auto", "gpu") == "16-mixed"


def test_explicit_bf16_is_kept_with_a_warning_where_it_is_emulated(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="biolord.precision"):
        assert precision.resolve("bf16-mixed", "cpu") == "bf16-mixed"
    assert "trainer.precision=bf16-mixed on a CPU without bf16 instructions" in caplog.text
    caplog.clear()
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with caplog.at_level(logging.WARNING, logger="biolord.precision"):
        precision.resolve("bf16-mixed", "cpu")
    assert caplog.text == ""


def test_a_run_trains_and_checkpoints_with_the_resolved_precision(tiny_train_cfg, tmp_path, monkeypatch):
    """The shipped default says auto; the run (and what its checkpoint records) gets a real precision."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    cfg = tiny_train_cfg("trainer.max_steps=2", "trainer.precision=auto")  # the tiny fixture says 32-true
    run(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["biolord_config"]["trainer"]["precision"] == "32-true"
