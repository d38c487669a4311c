"""Tracking (W&B offline, soft failure, TensorBoard) and cluster launching (submitit, local)."""

import os
import subprocess
import sys

import pytest

from biolord import loggers as loggers_mod
from biolord.train import run
from tests.conftest import CONF, ROOT


def test_wandb_offline_run_writes_its_files(tiny_train_cfg, tmp_path, monkeypatch):
    """What W&B guarantees, read through its public API; never its record log (``*.wandb``), which
    its writer may still be flushing after ``finish()`` returns (it was once found with only its
    7-byte header): the config and the summary the run holds, the offline run folder."""
    pytest.importorskip("wandb")
    import math

    from biolord import train as train_mod

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = []

    def finish_and_keep(loggers):  # the run's summary is read while the run is live (after finish it is empty)
        for logger in loggers:
            if type(logger).__name__ == "WandbLogger":
                run_ = logger.experiment
                seen.append((run_, dict(run_.summary)))
        loggers_mod.finish_loggers(loggers)

    monkeypatch.setattr(train_mod, "finish_loggers", finish_and_keep)
    run(tiny_train_cfg("logger=wandb", "wandb_artifact=true"))
    assert len(seen) == 1
    wandb_run, summary = seen[0]
    assert wandb_run.offline
    assert wandb_run.config["data"]["batch_size_per_device"] == 8  # the resolved config was logged
    assert math.isfinite(summary["train/loss"]) and "val/heldout_acc@1" in summary  # and the metrics
    folder = tmp_path / "run" / "wandb"
    runs = list(folder.glob(f"offline-run-*-{wandb_run.id}"))  # what `wandb sync` uploads
    assert len(runs) == 1 and (runs[0] / f"run-{wandb_run.id}.wandb").is_file()


def test_wandb_unreachable_falls_back_to_offline(tiny_train_cfg, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(loggers_mod, "wandb_reachable", lambda *a, **k: False)
    created = loggers_mod.instantiate_loggers(tiny_train_cfg("logger=wandb"))
    assert created and created[0]._offline is True


def test_tensorboard_logger(tiny_train_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    run(tiny_train_cfg("logger=tensorboard"))
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))


def test_slurm_launcher_config_composes():
    from hydra import compose, initialize_config_dir

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "trainer=slurm", "hydra.launcher.nodes=2"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp"


@pytest.mark.timeout(600)
def test_submitit_local_runs_a_tiny_job(tmp_path, tiny_model_dir, tiny_obo):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cmd = [
        sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={tmp_path}/sweep", "model=hub", f"model.name_or_path={tiny_model_dir}", "model.max_seq_length=32",
        f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", "data.batch_size_per_device=4", "data.val_fraction=0.2",
        f"paths.cache_dir={tmp_path}/cache", "trainer.max_steps=2", "eval.every_n_steps=0", "trainer.enable_progress_bar=false",
        "logger=none",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = tmp_path / "sweep" / "0"
    assert (job / "model" / "model.safetensors").exists() and (job / "checkpoints" / "last.ckpt").exists()
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # submitit's job folder: it really went through submitit
