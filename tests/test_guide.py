"""Guided false-negative filtering (phase.guide, GISTEmbed) through the one run path, ``run(cfg)``.

The loss-level rule is tested against a loop reference in tests/test_losses.py and over 2 processes
in tests/test_distributed.py; here: the config reaches the loss, the guide's vectors land in the
teacher cache once per text, and a bad guide is named before training.
"""

import csv

import pytest

from biolord.model_source import ModelNotFoundError
from biolord.train import run


def _step_losses(folder):
    rows = list(csv.DictReader(open(folder / "csv" / "metrics.csv")))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


def test_guided_run_masks_candidates_and_caches_the_guide(tiny_train_cfg, tiny_model_dir, tmp_path, caplog):
    common = ["eval.every_n_steps=0", "export=false", "trainer.max_steps=2", "seed=7"]
    run(tiny_train_cfg(*common, f"paths.output_dir={tmp_path / 'plain'}"))
    cache = tmp_path / "guide_cache"
    with caplog.at_level("INFO"):
        run(tiny_train_cfg(*common, f"paths.output_dir={tmp_path / 'guided'}", f"phase.guide.model={tiny_model_dir}",
                           f"phase.guide.cache_dir={cache}"))
    assert "guided false-negative filter" in caplog.text  # the batch line says it is on
    plain, guided = _step_losses(tmp_path / "plain"), _step_losses(tmp_path / "guided")
    # same seed, same batch, same dropout: masked candidates leave the softmax's denominator, so the
    # guided loss is lower (the untrained tiny guide finds many candidates closer than the positive)
    assert guided[0] < plain[0] - 1e-3
    shards = list(cache.rglob("*.safetensors"))
    assert shards  # the guide's vectors were stored, one vector per text
    assert "teacher cache (guide):" in caplog.text and "'texts_encoded': 0" not in caplog.text


def test_a_guide_that_does_not_exist_is_named(tiny_train_cfg, tmp_path):
    with pytest.raises(ModelNotFoundError, match="phase.guide.model=.*no_such_guide"):
        run(tiny_train_cfg("export=false", f"phase.guide.model={tmp_path / 'no_such_guide'}"))
