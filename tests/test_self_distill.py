"""Self-distillation: losses against hand computations, the teacher cache reused, bad input, a run."""

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from biolord.losses_distill import similarity_kl, squared_distance
from biolord.train import run


def unit(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_similarity_kl_matches_hand_computation():
    sa, sb, ta, tb = unit(4, 8, 0), unit(4, 8, 1), unit(4, 8, 2), unit(4, 8, 3)
    p = torch.softmax(20 * ta @ tb.T, dim=1)
    q = torch.softmax(20 * sa @ sb.T, dim=1)
    expected = (p * (p.log() - q.log())).sum(1).mean()
    assert similarity_kl(sa, sb, ta, tb).item() == pytest.approx(expected.item(), rel=1e-5)
    assert similarity_kl(ta, tb, ta, tb).item() == pytest.approx(0.0, abs=1e-6)
    assert squared_distance(sa, sa).item() == 0.0


def test_squared_distance_does_not_shrink_with_the_dimension():
    """For unit vectors the term is 2 - 2 cos at any d; F.mse_loss's mean over elements is d times smaller,
    the scale that made the sentence teacher inert beside InfoNCE at d = 384."""
    for d in (8, 384):
        s, t = unit(16, d, 0), unit(16, d, 1)
        expected = (2 - 2 * (s * t).sum(1)).mean()
        assert squared_distance(s, t).item() == pytest.approx(expected.item(), rel=1e-5)
        assert squared_distance(s, t).item() == pytest.approx(d * F.mse_loss(s, t).item(), rel=1e-5)


@pytest.fixture
def contrastive_run(tiny_train_cfg, tmp_path):
    run(tiny_train_cfg(f"paths.output_dir={tmp_path}/contrastive"))
    return tmp_path / "contrastive"


def test_self_distill_run_reuses_the_teacher_cache(tiny_train_cfg, contrastive_run, tmp_path, monkeypatch):
    from biolord.teacher_cache import FrozenTeacher

    calls = []
    original = FrozenTeacher.encode

    def counting(self, texts, batch_size=64):
        calls.append(len(texts))
        return original(self, texts, batch_size)

    monkeypatch.setattr(FrozenTeacher, "encode", counting)
    overrides = [
        "phase=self_distill", f"teacher={contrastive_run}", "phase.weights.contrastive=0.5",
        "data.max_train_rows=16", "data.batch_size_per_device=8", "trainer.max_steps=4",  # 2 batches an epoch: 2 epochs
        "phase.sentence_teacher=${model.name_or_path}",
    ]
    result = run(tiny_train_cfg(*overrides, f"paths.output_dir={tmp_path}/sd1"))
    first = sum(calls)
    assert first > 0 and result["history"][-1]["step"] == 4
    # each loss term is logged on its own, unweighted, beside the total (the same CSV row: the same step)
    logged = list(csv.DictReader((tmp_path / "sd1" / "csv" / "metrics.csv").open()))
    for term in ("train/mse", "train/kl", "train/contrastive"):
        values = [float(r[term]) for r in logged if r.get(term)]
        assert len(values) == 4 and all(v > 0 for v in values), (term, values)
    step0 = {k: float(v) for k, v in next(r for r in logged if r.get("train/mse")).items() if k.startswith("train/")}
    assert step0["train/loss"] == pytest.approx(step0["train/mse"] + step0["train/kl"] + 0.5 * step0["train/contrastive"], rel=1e-4)
    # a second run with the same teachers and data: every vector comes from disk
    calls.clear()
    run(tiny_train_cfg(*overrides, f"paths.output_dir={tmp_path}/sd2"))
    assert sum(calls) == 0
    assert (tmp_path / "sd2" / "model" / "model.safetensors").exists()


def test_teacher_not_called_on_the_second_epoch(tiny_train_cfg, contrastive_run, tmp_path, monkeypatch):
    """Each teacher call is matched with the epoch that made it, read from the batches a callback added
    through the config (``+callbacks.seen``) recorded."""
    import json

    from biolord.teacher_cache import FrozenTeacher

    seen = tmp_path / "seen"
    steps_at_call = []
    original = FrozenTeacher.encode

    def counting(self, texts, batch_size=64):
        lines = (seen / "rank0.jsonl").read_text().splitlines() if (seen / "rank0.jsonl").exists() else []
        steps_at_call.append(json.loads(lines[-1])["epoch"] if lines else None)  # None: before training
        return original(self, texts, batch_size)

    monkeypatch.setattr(FrozenTeacher, "encode", counting)
    run(tiny_train_cfg("phase=self_distill", f"teacher={contrastive_run}", "data.max_train_rows=16",
                       "data.batch_size_per_device=8", "trainer.max_steps=6", "eval.every_n_steps=0",
                       "+callbacks.seen._target_=tests.run_callbacks.BatchRecorder", f"+callbacks.seen.folder={seen}",
                       f"phase.teacher_cache_dir={tmp_path}/fresh_cache", f"paths.output_dir={tmp_path}/sd"))
    epochs = [json.loads(line)["epoch"] for line in (seen / "rank0.jsonl").read_text().splitlines()]
    assert len(epochs) == 6 and epochs == sorted(epochs) and epochs[-1] >= 1  # the callback from config saw every step
    assert 0 in steps_at_call  # epoch 0 fills the cache
    assert not [e for e in steps_at_call if e is not None and e > 0]  # epochs 1 and 2 never call the teacher


def test_bad_inputs(tiny_train_cfg, tmp_path, contrastive_run):
    from biolord.model_source import ModelNotFoundError

    with pytest.raises(ValueError, match="phase=self_distill needs a teacher"):
        run(tiny_train_cfg("phase=self_distill"))
    with pytest.raises(ModelNotFoundError, match="model path does not exist"):
        run(tiny_train_cfg("phase=self_distill", f"teacher={tmp_path}/missing/run"))
    with pytest.raises(ValueError, match="must be >= 0 and not all 0"):
        run(tiny_train_cfg("phase=self_distill", f"teacher={contrastive_run}", "phase.weights.mse=0", "phase.weights.kl=0"))
    with pytest.raises(ValueError, match="phase.student_init='nope'"):
        run(tiny_train_cfg("phase=self_distill", f"teacher={contrastive_run}", "phase.student_init=nope"))


@pytest.mark.parametrize("student_init", ["teacher", "base"])
def test_the_exported_model_is_the_trained_student(tiny_train_cfg, contrastive_run, tmp_path, student_init):
    """Regression: with student_init=teacher the base model used to be exported instead of the student."""
    from safetensors.torch import load_file

    cfg = tiny_train_cfg("phase=self_distill", f"teacher={contrastive_run}", f"phase.student_init={student_init}",
                         "data.max_train_rows=16", "data.batch_size_per_device=8", "trainer.max_steps=2",
                         f"paths.output_dir={tmp_path}/sd")
    run(cfg)
    exported = load_file(str(tmp_path / "sd" / "model" / "model.safetensors"))
    teacher = load_file(str(contrastive_run / "model" / "model.safetensors"))
    base = load_file(str(Path(cfg.model.name_or_path) / "model.safetensors"))
    trained = {k: v for k, v in exported.items() if k in teacher and v.dtype.is_floating_point and "pooler" not in k}
    assert trained and set(trained) <= set(base)
    assert any(not torch.equal(v, teacher[k]) for k, v in trained.items())  # moved away from the teacher
    assert any(not torch.equal(v, base[k]) for k, v in trained.items())  # and is not the base model
    start = teacher if student_init == "teacher" else base
    # two small steps: the student is still close to where it started, not to the other model
    dist = lambda ref: sum((v - ref[k]).abs().sum().item() for k, v in trained.items())  # noqa: E731
    other = base if student_init == "teacher" else teacher
    assert dist(start) < dist(other)


def test_resume_with_another_teacher_names_the_teacher_and_the_checkpoints_architecture(tiny_train_cfg, contrastive_run,
                                                                                         tmp_path):
    """student_init=teacher: the student's architecture comes from `teacher`, whatever model.name_or_path
    says; resuming such a run with a teacher of another size names `teacher=` (the old advice named
    model.name_or_path, which changes nothing here) and what the checkpoint holds."""
    import re

    from tests.conftest import write_tiny_model

    common = ["phase=self_distill", "phase.student_init=teacher", "data.max_train_rows=16", "trainer.max_steps=2",
              "export=false", f"paths.output_dir={tmp_path}/sd"]
    run(tiny_train_cfg(*common, f"teacher={contrastive_run}"))
    narrow = write_tiny_model(tmp_path / "narrow", hidden=16)
    with pytest.raises(ValueError) as err:
        run(tiny_train_cfg(*common, f"teacher={narrow}"))
    message = str(err.value)
    assert re.search(r"tensor 'encoder\.transformer\.\S+' has shape \[\d+, 32\] in the checkpoint but \[\d+, 16\] in "
                     r"the model built from teacher=\S*narrow; the checkpoint holds bert \(2 layers, hidden_size 32, ", message)
    assert (f"This run's architecture comes from teacher: resume with teacher={contrastive_run}, or start fresh "
            f"from teacher={narrow} with ckpt_path=none") in message
    assert "model.name_or_path" not in message
