"""The contrastive phase under Lightning DDP: 2 CPU processes (gloo), one run folder, rank 0 writes."""

import json
import os
import subprocess
import sys

import pytest

from biolord.checkpoint import load_checkpoint
from tests.conftest import ROOT


@pytest.mark.timeout(600)
def test_two_process_ddp_run(tmp_path, tiny_model_dir, tiny_obo):
    out = tmp_path / "run"
    cmd = [
        sys.executable, str(ROOT / "train.py"), "trainer=ddp_cpu", "model=hub", f"model.name_or_path={tiny_model_dir}",
        "model.max_seq_length=32", f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", "data.batch_size_per_device=4",
        "data.val_fraction=0.2", f"paths.cache_dir={tmp_path}/cache", f"hydra.run.dir={out}", "trainer.max_steps=4",
        "eval.every_n_steps=2", "checkpoint.every_n_steps=2", "trainer.enable_progress_bar=false",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    assert "4 pairs per device x 2 devices = 8 pairs per step" in proc.stdout + proc.stderr
    ckpt = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 4
    assert json.loads((out / "metrics.json").read_text())["heldout_retrieval"][-1]["step"] == 4
    assert (out / "model" / "model.safetensors").exists()
    assert not list(tmp_path.glob("outputs*")) and not (ROOT / "outputs" / "contrastive" / "run").exists()
    # only one run folder: rank 1 did not create its own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run", "tiny.obo"]
