"""Exact resume: a run killed mid-way (SIGKILL) and resumed ends with the weights of an uninterrupted run."""

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


def _cmd(out, tiny_model_dir, tiny_obo, cache, *extra):
    return [
        sys.executable, str(ROOT / "train.py"), "model=hub", f"model.name_or_path={tiny_model_dir}", "model.max_seq_length=32",
        f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", "data.batch_size_per_device=4", "data.val_fraction=0.2",
        f"paths.cache_dir={cache}", f"hydra.run.dir={out}", "logger=none", f"trainer.max_steps={STEPS}",
        "trainer.enable_progress_bar=false", "eval.every_n_steps=0", "eval.at_start=false", "checkpoint.every_n_steps=10",
        "export=false", *extra,
    ]


def _weights(path):
    return load_checkpoint(path)["state_dict"]


@pytest.mark.timeout(600)
def test_killed_run_resumes_bit_for_bit(tmp_path, tiny_model_dir, tiny_obo):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cache = tmp_path / "cache"
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cmd(full, tiny_model_dir, tiny_obo, cache), check=True, env=env, capture_output=True, cwd=ROOT)

    proc = subprocess.Popen(_cmd(killed, tiny_model_dir, tiny_obo, cache), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step-20.ckpt").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # last.ckpt is written after step-N.ckpt: a kill between the two leaves the previous one
    stopped_at = load_checkpoint(killed / "checkpoints" / "last.ckpt")["global_step"]
    assert 10 <= stopped_at < STEPS

    # the same command again: the run folder holds last.ckpt, so it resumes by itself
    subprocess.run(_cmd(killed, tiny_model_dir, tiny_obo, cache), check=True, env=env, capture_output=True, cwd=ROOT)
    a, b = _weights(full / "checkpoints" / "last.ckpt"), _weights(killed / "checkpoints" / "last.ckpt")
    assert load_checkpoint(killed / "checkpoints" / "last.ckpt")["global_step"] == STEPS
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_ckpt_path_errors(tiny_train_cfg, tmp_path):
    from biolord.train import resume_path

    cfg = tiny_train_cfg("ckpt_path=last")
    with pytest.raises(FileNotFoundError, match="ckpt_path=last but .*last.ckpt does not exist"):
        resume_path(cfg, tmp_path / "run")
    cfg = tiny_train_cfg(f"ckpt_path={tmp_path}/nope.ckpt")
    with pytest.raises(FileNotFoundError, match="nope.ckpt does not exist"):
        resume_path(cfg, tmp_path / "run")
