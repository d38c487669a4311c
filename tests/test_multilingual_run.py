"""The multilingual phase through distill.py, as users run it: 2 processes (gloo) that each train on
their own pairs, and a run killed with SIGKILL that resumes to the weights of an uninterrupted one.

The same mechanisms as the contrastive phase's tests (tests/test_ddp_run.py, tests/test_resume.py):
both phases run through ``biolord.train.run``.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from biolord.checkpoint import load_checkpoint
from tests.conftest import ROOT
from tests.test_distill import parallel_rows, write_tsv

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cmd(tmp_path, tiny_model_dir, *extra):
    pairs = tmp_path / "pairs.tsv"
    if not pairs.exists():
        write_tsv(pairs, parallel_rows())  # 30 concepts x (de, fr); 6 held out: 48 training pairs
    return [
        sys.executable, str(ROOT / "distill.py"), f"teacher={tiny_model_dir}", f"student={tiny_model_dir}",
        "model.max_seq_length=32", f"data.source={pairs}", "data.languages=[de,fr]", "data.heldout_concepts=6",
        "data.max_train_concepts=null", "data.batch_size_per_device=4", f"paths.cache_dir={tmp_path}/cache",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "checkpoint.every_n_steps=5",
        "eval.every_n_steps=5", *extra,
    ]


def _run(cmd, cwd):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.timeout(600)
def test_two_process_run_gives_each_rank_its_own_pairs(tmp_path, tiny_model_dir):
    out, seen = tmp_path / "run", tmp_path / "seen"
    log = _run(_cmd(tmp_path, tiny_model_dir, "trainer=ddp_cpu", f"hydra.run.dir={out}", "trainer.max_steps=8",
                    "+callbacks.seen._target_=tests.run_callbacks.BatchRecorder", f"+callbacks.seen.folder={seen}"),
               cwd=tmp_path)
    assert "Starting with 2 processes" in log
    assert "4 pairs per device x 2 devices = 8 pairs per step" in log
    ranks = [[json.loads(line) for line in (seen / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [b["step"] for b in ranks[0]] == [b["step"] for b in ranks[1]] == list(range(8))
    per_epoch: dict[int, list[str]] = {}
    for a, b in zip(*ranks):
        assert len(a["rows"]) == len(b["rows"]) == 4
        assert not set(a["rows"]) & set(b["rows"]), f"step {a['step']}: both ranks trained on {set(a['rows']) & set(b['rows'])}"
        per_epoch.setdefault(a["epoch"], []).extend(a["rows"] + b["rows"])
    # 48 pairs / 8 a step = 6 steps an epoch: the 8 steps reach a second epoch, and within an epoch no
    # pair is seen twice by any rank (the ranks share one plan of global batches)
    assert sorted(per_epoch) == [0, 1] and len(per_epoch[0]) == 48
    assert all(len(rows) == len(set(rows)) for rows in per_epoch.values())
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 8
    assert json.loads((out / "metrics.json").read_text())["heldout"][-1]["step"] == 8  # rank 0 wrote it
    assert (out / "model" / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "pairs.tsv", "run", "seen"]  # one run folder


STEPS = 20


@pytest.mark.timeout(900)
def test_killed_run_resumes_bit_for_bit(tmp_path, tiny_model_dir):
    full, killed = tmp_path / "outputs/distill/uninterrupted", tmp_path / "outputs/distill/killed"
    common = _cmd(tmp_path, tiny_model_dir, f"trainer.max_steps={STEPS}")
    _run([*common, "run_name=uninterrupted"], cwd=tmp_path)

    # killed (SIGKILL, by itself) at the end of step 12, before that step's checkpoint: step-10.ckpt is the newest
    kill = ["+callbacks.kill._target_=tests.run_callbacks.KillAt", "+callbacks.kill.step=12",
            f"+callbacks.kill.marker={tmp_path}/killed_once"]
    proc = subprocess.run([*common, "run_name=killed", *kill], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert max(load_checkpoint(p)["global_step"] for p in (killed / "checkpoints").glob("*.ckpt")) == 10
    assert not (killed / "model").exists()

    # the same command again: the run folder holds checkpoints, so it resumes by itself
    log = _run([*common, "run_name=killed", *kill], cwd=tmp_path)
    assert "resuming from" in log and "at step 10" in log
    a, b = (load_checkpoint(f / "checkpoints" / "last.ckpt") for f in (full, killed))
    assert a["global_step"] == b["global_step"] == STEPS
    assert a["state_dict"].keys() == b["state_dict"].keys()
    different = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    # the held-out history (kept in the checkpoints) and the training curve read as the uninterrupted run's
    ja, jb = (json.loads((f / "metrics.json").read_text()) for f in (full, killed))
    assert [h["step"] for h in ja["heldout"]] == [0, 0, 5, 10, 15, 20]  # "as loaded", then the Procrustes start
    assert jb["heldout"] == ja["heldout"] and jb["teacher_reference"] == ja["teacher_reference"]
    csv_a, csv_b = ((f / "csv" / "metrics.csv").read_text().splitlines() for f in (full, killed))
    assert csv_b == csv_a
