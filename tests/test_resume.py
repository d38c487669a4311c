"""Exact resume: a run killed mid-way (SIGKILL) and resumed ends with the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from biolord.checkpoint import load_checkpoint
from tests.conftest import ROOT

STEPS = 60


def _cmd(name, tiny_model_dir, tiny_obo, cache, *extra):
    """The same command for both runs but the run name: run_name=<name> -> outputs/contrastive/<name>."""
    return [
        sys.executable, str(ROOT / "train.py"), "model=hub", f"model.name_or_path={tiny_model_dir}", "model.max_seq_length=32",
        f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", "data.batch_size_per_device=4", "data.val_fraction=0.2",
        f"paths.cache_dir={cache}", f"run_name={name}", "logger=csv", "trainer.log_every_n_steps=1",
        f"trainer.max_steps={STEPS}", "trainer.enable_progress_bar=false", "eval.every_n_steps=15", "eval.at_start=true",
        "checkpoint.every_n_steps=10", *extra,
    ]


def _weights(path):
    return load_checkpoint(path)["state_dict"]


def _report(folder, name):
    """metrics.csv, metrics.json without its timing and location fields, and the model card, with the
    run's own name and folder written as 'RUN' (the only things that differ between the two runs)."""
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("seconds", "model_dir"):
        metrics.pop(key)
    card = (folder / "model" / "README.md").read_text().replace(str(folder), "RUN").replace(f"run_name: {name}\n", "run_name: RUN\n")
    return (folder / "csv" / "metrics.csv").read_text(), metrics, card


@pytest.mark.timeout(600)
def test_killed_run_resumes_bit_for_bit(tmp_path, tiny_model_dir, tiny_obo):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cache = tmp_path / "cache"
    full, killed = tmp_path / "outputs/contrastive/uninterrupted", tmp_path / "outputs/contrastive/killed"
    subprocess.run(_cmd("uninterrupted", tiny_model_dir, tiny_obo, cache), check=True, env=env, capture_output=True,
                   cwd=tmp_path)

    proc = subprocess.Popen(_cmd("killed", tiny_model_dir, tiny_obo, cache), env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step-20.ckpt").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    stopped_at = max(load_checkpoint(p)["global_step"] for p in (killed / "checkpoints").glob("*.ckpt"))
    assert 20 <= stopped_at < STEPS
    assert not (killed / "model").exists()

    # the same command again: the run folder holds checkpoints, so it resumes by itself
    resumed = subprocess.run(_cmd("killed", tiny_model_dir, tiny_obo, cache), check=True, env=env,
                             capture_output=True, text=True, cwd=tmp_path)
    assert "resuming" in resumed.stderr + resumed.stdout
    a, b = _weights(full / "checkpoints" / "last.ckpt"), _weights(killed / "checkpoints" / "last.ckpt")
    assert load_checkpoint(killed / "checkpoints" / "last.ckpt")["global_step"] == STEPS
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    # the curves, the held-out history and the model card read as the uninterrupted run's
    (csv_a, json_a, card_a), (csv_b, json_b, card_b) = _report(full, "uninterrupted"), _report(killed, "killed")
    assert [h["step"] for h in json_a["heldout_retrieval"]] == [0, 15, 30, 45, 60]
    assert csv_b.splitlines() == csv_a.splitlines()
    assert json_b == json_a
    assert card_b == card_a
    assert "| base | 0 |" in card_a and "| trained | 60 |" in card_a


def test_ckpt_path_errors(tmp_path):
    from biolord.resume_point import select

    with pytest.raises(FileNotFoundError, match="ckpt_path=last but .*last.ckpt does not exist"):
        select("last", tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="nope.ckpt does not exist"):
        select(f"{tmp_path}/nope.ckpt", tmp_path / "run")
    assert select(None, tmp_path / "run") is None and select("none", tmp_path / "run") is None
