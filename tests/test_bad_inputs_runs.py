"""Catalogue of bad inputs and faults in the train / resume / checkpoint paths: one test per case.

Each case is what a new user or an unlucky cluster job meets (a crafted or foreign checkpoint, a
kill during a write, a full disk, a diverged run, a typo'd path); each test asserts the clear
message or the counted outcome. Tiny model, tiny data; runs of at most 3 steps.
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
import subprocess
import sys

import pytest
import torch

from biolord.checkpoint import (
    CorruptCheckpointError,
    NotACheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
)
from biolord.model_source import ModelNotFoundError
from biolord.pair_phases import before_after_table
from biolord.train import run
from tests.conftest import ROOT, compose, write_obo, write_tiny_model


# ---- helpers ------------------------------------------------------------------------------------
class _Payload:
    """Pickles as a call of ``exec``: loading the file with ``weights_only=False`` writes the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('payload ran')",))


def write_crafted(path, marker):
    """A file shaped like a Lightning checkpoint whose pickle runs a payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"pytorch-lightning_version": "2.6.6", "global_step": 1, "state_dict": {}, "x": _Payload(marker)}, path)
    return path


def _cfg(model_dir, obo, out, cache, *extra):
    return compose([
        "model=hub", f"model.name_or_path={model_dir}", "model.max_seq_length=32",
        f"data.sources=[{{type:obo,path:'{obo}'}}]", "data.batch_size_per_device=8", "data.val_fraction=0.2",
        "data.val_max_concepts=20", f"paths.output_dir={out}", f"paths.cache_dir={cache}", "logger=csv",
        "trainer.max_steps=3", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "eval.every_n_steps=2", "checkpoint.every_n_steps=2", "export=false", *extra,
    ])


def _rows(folder):
    with open(folder / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """One finished 3-step run (checkpoints/step-2.ckpt, last.ckpt at step 3) and a maker of configs."""
    base = tmp_path_factory.mktemp("bad_inputs_runs")
    obo = write_obo(base / "tiny.obo")

    def make(out, *extra):
        return _cfg(tiny_model_dir, obo, out, base / "cache", *extra)

    run(make(base / "run"))
    return base / "run", make


@pytest.fixture
def copy_of(trained, tmp_path):
    """A copy of the finished run folder, to damage."""
    folder = tmp_path / "run"
    shutil.copytree(trained[0], folder)
    return folder


# ---- unsafe and foreign checkpoints -------------------------------------------------------------
def test_the_payload_is_live(tmp_path):
    """The crafted file does run code when unpickled unsafely, so the refusals below mean something."""
    marker = tmp_path / "marker"
    torch.load(write_crafted(tmp_path / "x.ckpt", marker), weights_only=False)
    assert marker.read_text() == "payload ran"


def test_crafted_checkpoint_refused_by_the_soup_loader(tmp_path):
    from biolord.ingredients import load_ingredient

    marker = tmp_path / "marker"
    path = write_crafted(tmp_path / "shared.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"shared\.ckpt holds objects that are not plain weights \(it calls or builds exec\)"):
        load_ingredient(str(path))
    assert not marker.exists()


def test_crafted_checkpoint_refused_as_ckpt_path(trained, tmp_path):
    marker = tmp_path / "marker"
    path = write_crafted(tmp_path / "shared.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match="not plain weights"):
        run(trained[1](tmp_path / "run", f"ckpt_path={path}"))
    assert not marker.exists()


def test_crafted_last_ckpt_refused_on_auto_resume(trained, copy_of, tmp_path):
    marker = tmp_path / "marker"
    write_crafted(copy_of / "checkpoints" / "last.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"last\.ckpt holds objects that are not plain weights"):
        run(trained[1](copy_of))  # never skipped in favour of step-2.ckpt: a crafted file must be looked at
    assert not marker.exists()


def test_checkpoint_of_an_older_biolord_still_loads(tmp_path):
    """Before plain RNG states, checkpoints held numpy's state as a uint32 ndarray: still allowed."""
    import numpy as np

    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "rng": np.random.get_state()}, path)
    assert load_checkpoint(path)["rng"][0] == "MT19937"


def test_safetensors_as_ckpt_path(trained, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(NotACheckpointError, match=r"model\.safetensors is a file of weights only .*model\.name_or_path=<folder> ckpt_path=none"):
        run(trained[1](tmp_path / "run", f"ckpt_path={path}"))


def test_text_file_as_ckpt_path(trained, tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(NotACheckpointError, match=r"notes\.ckpt is not a PyTorch checkpoint"):
        run(trained[1](tmp_path / "run", f"ckpt_path={path}"))


def test_checkpoint_of_another_base_model(trained, tmp_path, tiny_model_dir):
    other = write_tiny_model(tmp_path / "other_model", hidden=16)
    cfg = trained[1](tmp_path / "run", f"ckpt_path={trained[0] / 'checkpoints' / 'last.ckpt'}",
                     f"model.name_or_path={other}")
    with pytest.raises(ValueError) as err:
        run(cfg)
    message = str(err.value)
    assert re.search(r"is from another model: tensor 'encoder\.transformer\.embeddings\.\S+' has shape \[\d+, 32\] in the "
                     r"checkpoint but \[\d+, 16\] in the model built from model\.name_or_path=\S*other_model;", message)
    # the checkpoint's own description, and the fix with the key that decides a contrastive run's architecture
    assert re.search(r"the checkpoint holds bert \(2 layers, hidden_size 32, vocab_size \d+\), mean pooling, "
                     r"max_seq_length 32, normalised\. This run's architecture comes from model\.name_or_path: resume "
                     r"with model\.name_or_path=\S+, or start fresh from model\.name_or_path=\S*other_model with "
                     r"ckpt_path=none", message), message
    assert f"resume with model.name_or_path={tiny_model_dir}," in message


def test_all_checkpoints_truncated(trained, copy_of):
    for ckpt in (copy_of / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError, match=r"no checkpoint in .* loads .*ckpt_path=none"):
        run(trained[1](copy_of))


# ---- writing checkpoints ------------------------------------------------------------------------
def test_full_disk_names_the_os_error(tmp_path):
    """A write past the file-size limit (EFBIG, as on a full quota): the real OSError and the path."""
    script = (
        "import resource, signal, sys, torch\n"
        "from biolord.checkpoint import AtomicCheckpointIO\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))\n"
        f"AtomicCheckpointIO().save_checkpoint({{'state_dict': {{'w': torch.zeros(100_000)}}}}, {str(tmp_path / 'last.ckpt')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("biolord.checkpoint.CheckpointWriteError: [Errno 27]"), proc.stderr[-2000:]
    assert f"could not write checkpoint {tmp_path / 'last.ckpt'}: File too large" in last
    assert "inline_container" not in last
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file is gone


def test_stale_temp_file_removed_at_start(trained, copy_of, caplog):
    stale = copy_of / "checkpoints" / ".last.ckpt.tmp-4242"
    stale.write_bytes(b"\0" * 1000)
    caplog.set_level(logging.INFO)
    with pytest.raises(FileNotFoundError):  # stop right after the start-up checks
        run(trained[1](copy_of, "ckpt_path=/nonexistent.ckpt"))
    assert not stale.exists()
    assert "interrupted by an earlier kill" in caplog.text and ".last.ckpt.tmp-4242" in caplog.text


# ---- choosing what to resume ----------------------------------------------------------------------
def test_missing_last_ckpt_resumes_from_step_n(trained, copy_of, caplog):
    (copy_of / "checkpoints" / "last.ckpt").unlink()
    caplog.set_level(logging.INFO)
    result = run(trained[1](copy_of))
    assert "last.ckpt is missing: resuming from the newest complete checkpoint" in caplog.text
    assert "step-2.ckpt at step 2" in caplog.text
    assert load_checkpoint(copy_of / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert [h["step"] for h in result["history"]] == [0, 2, 3]  # the history before the kill is kept


def test_kill_between_a_checkpoint_and_its_log_row(trained, copy_of):
    """Lightning logs step 2's training row after writing step-2.ckpt: a kill in between loses it
    from metrics.csv, and the resumed run gets it back from the checkpoint."""
    (copy_of / "checkpoints" / "last.ckpt").unlink()
    rows = _rows(copy_of)
    cut = next(i for i, r in enumerate(rows) if r["epoch"] and r["step"] == "1")
    with open(copy_of / "csv" / "metrics.csv", "w", newline="") as f:  # the file as the kill left it
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:cut])
    run(trained[1](copy_of))
    assert _rows(copy_of) == _rows(trained[0])


def test_truncated_last_ckpt_resumes_from_step_n(trained, copy_of, caplog):
    last = copy_of / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    caplog.set_level(logging.INFO)
    run(trained[1](copy_of))
    assert "last.ckpt is truncated or corrupt: resuming from the newest complete checkpoint" in caplog.text
    assert load_checkpoint(last)["global_step"] == 3


def test_relative_ckpt_path_that_does_not_exist(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"ckpt_path=runs/x does not exist \(resolved against the working "
                                                rf"directory {tmp_path}: {tmp_path}/runs/x\)"):
        run(trained[1](tmp_path / "run", "ckpt_path=runs/x"))


def test_relative_teacher_that_does_not_exist(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match=rf"no local path {tmp_path}/runs/x exists \(relative paths are "
                                                 "resolved against the working directory"):
        run(trained[1](tmp_path / "run", "phase=self_distill", "teacher=runs/x"))


def test_run_name_gives_a_fixed_folder():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    cases = ((["run_name=week1"], "outputs/contrastive/week1"),
             (["run_name=week1", "phase=self_distill"], "outputs/self_distill/week1"),
             (["run_name=week1", "experiment=biolord2023_c"], "outputs/biolord2023_c/week1"))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for overrides, folder in cases:
            cfg = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
            assert OmegaConf.select(cfg, "hydra.run.dir") == folder
        default = hydra_compose(config_name="train", return_hydra_config=True)
    assert OmegaConf.select(default, "hydra.run.dir").startswith("outputs/contrastive/20")  # timestamped


# ---- settings on resume --------------------------------------------------------------------------
def test_changed_lr_on_resume_is_applied(trained, copy_of, caplog):
    (copy_of / "checkpoints" / "last.ckpt").unlink()  # resume from step 2, one step left
    before = {r["step"]: float(r["train/lr"]) for r in _rows(trained[0]) if r["train/lr"]}
    caplog.set_level(logging.INFO)
    run(trained[1](copy_of, "optim.lr=2.5e-5"))
    assert "optim.lr changed on resume: 5e-05 in the checkpoint, 2.5e-05 now (applied from this step" in caplog.text
    after = {r["step"]: float(r["train/lr"]) for r in _rows(copy_of) if r["train/lr"]}
    assert after["0"] == before["0"] and after["1"] == before["1"]  # rows before the checkpoint kept as they were
    assert after["2"] == pytest.approx(before["2"] / 2)  # the schedule kept its position at half the rate
    ckpt = load_checkpoint(copy_of / "checkpoints" / "last.ckpt")
    assert ckpt["lr_schedulers"][0]["base_lrs"] == pytest.approx([2.5e-5, 2.5e-5])


def test_nan_loss_names_causes_and_the_healthy_checkpoint(trained, tmp_path, monkeypatch):
    from biolord.phases.contrastive import ContrastivePhase

    original = ContrastivePhase.training_step

    def diverging(self, batch, batch_idx):
        if self.global_step == 2 and self.optimizer_factory.lr > 1e-5:  # diverges at step 2, unless the lr is lowered
            next(self.encoder.parameters()).data.fill_(float("nan"))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ContrastivePhase, "training_step", diverging)
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 2\. Likely causes: .*optim\.lr=5e-05.*"
                                                 r"phase\.loss\.scale=20\.0.*/last\.ckpt \(step 2\) is healthy.*ckpt_path="):
        run(trained[1](out))
    assert all(load_checkpoint(p)["global_step"] == 2 for p in (out / "checkpoints").glob("*.ckpt"))
    # the advice: the same command with a lower lr resumes the healthy checkpoint and finishes
    run(trained[1](out, "optim.lr=1e-5"))
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 3


def test_non_finite_weights_are_never_saved(trained, tmp_path, monkeypatch):
    from biolord.evaluation.callback import HeldOutRetrievalCallback

    def poison(self, trainer, pl_module, outputs, batch, batch_idx):  # weights NaN, loss of this step finite
        if trainer.global_step == 2:
            next(pl_module.encoder.parameters()).data.fill_(float("nan"))

    monkeypatch.setattr(HeldOutRetrievalCallback, "on_train_batch_end", poison)
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"weights are NaN/inf at step 2 .*step-2\.ckpt not written.*Likely causes"):
        run(trained[1](out))
    assert not list((out / "checkpoints").glob("*.ckpt"))  # nothing a later run could resume


def test_trainer_max_steps_minus_one(trained, tmp_path):
    with pytest.raises(ValueError, match=r"trainer\.max_steps=-1 with trainer\.max_epochs=-1 means train forever.*"
                                         r"trainer\.max_epochs=N with trainer\.max_steps=-1"):
        run(trained[1](tmp_path / "run", "trainer.max_steps=-1"))


def test_batch_size_zero(trained, tmp_path):
    with pytest.raises(ValueError, match=r"data\.batch_size_per_device=0: give a positive number"):
        run(trained[1](tmp_path / "run", "data.batch_size_per_device=0"))


# ---- what a resumed or late-evaluated run reports --------------------------------------------------
def test_first_row_is_base_only_at_step_zero():
    point = {"acc@1": 50.0, "mrr": 60.0, "n": 10}
    assert "| base | 0 |" in before_after_table([{"step": 0, **point}, {"step": 3, **point}])
    late = before_after_table([{"step": 2, **point}, {"step": 3, **point}])  # eval.at_start=false
    assert "base" not in late and "| first evaluated | 2 |" in late and "| trained | 3 |" in late
    assert before_after_table([{"step": 3, **point}]).splitlines()[-1].startswith("| trained | 3 |")


def test_fresh_start_replaces_the_old_curves(trained, copy_of):
    run(trained[1](copy_of, "ckpt_path=none"))
    rows = _rows(copy_of)
    assert [r["step"] for r in rows] == [r["step"] for r in _rows(trained[0])]  # not appended to the old ones
