"""TeacherCache: each text goes through the teacher once, across lookups, instances and runs."""

import pytest
import torch

from biolord.teacher_cache import FrozenTeacher, TeacherCache


class CountingTeacher:
    """A fake teacher: a fixed vector per text, and a count of calls and texts."""

    dim = 4

    def __init__(self):
        self.calls, self.texts = 0, []

    def fingerprint(self):
        return "fake-teacher"

    def encode(self, texts, batch_size=64):
        self.calls += 1
        self.texts += list(texts)
        return torch.stack([torch.tensor([len(t), t.count("a"), t.count("e"), 1.0]) for t in texts])  # (n, 4)


def test_lookup_encodes_each_text_once_and_counts(tmp_path):
    teacher = CountingTeacher()
    cache = TeacherCache(tmp_path, teacher)
    first = cache.lookup(["alpha", "beta", "alpha"])  # (3, 4)
    assert first.shape == (3, 4) and torch.equal(first[0], first[2])
    assert teacher.texts == ["alpha", "beta"] and cache.stats()["misses"] == 3 and cache.stats()["hits"] == 0
    again = cache.lookup(["beta", "alpha"])
    assert teacher.calls == 1 and cache.hits == 2
    assert torch.equal(again, first[[1, 0]])
    cache.lookup(["beta", "gamma"])
    assert teacher.texts == ["alpha", "beta", "gamma"] and cache.teacher_calls == 2


def test_vectors_persist_and_another_instance_never_calls_the_teacher(tmp_path):
    teacher = CountingTeacher()
    assert TeacherCache(tmp_path, teacher).warm(["alpha", "beta", "gamma"], chunk=2) == 3
    assert len(list((tmp_path / "fake-teacher").glob("*.safetensors"))) == 2
    other = CountingTeacher()
    reread = TeacherCache(tmp_path, other)
    assert len(reread) == 3 and "gamma" in reread
    vectors = reread.lookup(["gamma", "alpha"])
    assert other.calls == 0 and reread.hits == 2
    assert torch.equal(vectors, teacher.encode(["gamma", "alpha"]))
    # no teacher at all: fine for cached texts, a clear error for new ones
    offline = TeacherCache(tmp_path, fingerprint="fake-teacher")
    assert offline.lookup(["beta"]).shape == (1, 4)
    with pytest.raises(KeyError, match="not in the teacher cache"):
        offline.lookup(["delta"])


def test_a_different_teacher_has_its_own_vectors(tmp_path):
    TeacherCache(tmp_path, CountingTeacher()).warm(["alpha"])
    other = TeacherCache(tmp_path, fingerprint="another-teacher")
    assert len(other) == 0 and "alpha" not in other


def test_damaged_shard_is_ignored_and_re_encoded(tmp_path):
    TeacherCache(tmp_path, CountingTeacher()).warm(["alpha"])
    for shard in (tmp_path / "fake-teacher").glob("*.safetensors"):
        shard.write_bytes(b"truncated")
    teacher = CountingTeacher()
    cache = TeacherCache(tmp_path, teacher)
    assert len(cache) == 0
    cache.lookup(["alpha"])
    assert teacher.calls == 1


def test_frozen_teacher_stays_in_eval_mode_and_keys_on_weights_and_prefix(tiny_encoder):
    teacher = FrozenTeacher(tiny_encoder)
    teacher.train()
    assert not teacher.training and not teacher.encoder.training
    assert not any(p.requires_grad for p in teacher.parameters())
    with_prefix = FrozenTeacher(tiny_encoder, prefix="query: ")
    assert teacher.fingerprint() != with_prefix.fingerprint()
    v = teacher.encode(["wilson disease"])
    assert v.shape == (1, tiny_encoder.dim)
    assert torch.allclose(v, tiny_encoder.encode(["wilson disease"]))
    before = teacher.fingerprint()
    with torch.no_grad():
        next(tiny_encoder.transformer.parameters()).add_(1.0)  # retrained weights, same path
    assert teacher.fingerprint() != before


def test_teacher_precision_follows_the_trainer_and_names_a_bad_value():
    from biolord.teacher_cache import teacher_precision

    assert teacher_precision("auto", "bf16-mixed") == "bf16" and teacher_precision(None, "32-true") is None
    assert teacher_precision("32", "bf16-mixed") is None and teacher_precision("bf16", "32-true") == "bf16"
    with pytest.raises(ValueError, match="teacher precision 'fp8'.*auto"):
        teacher_precision("fp8", "bf16-mixed")


def test_a_bf16_teacher_is_close_to_float32_and_keyed_apart(tiny_model_dir):
    """bf16 autocast makes a distillation step cheaper; its vectors differ by rounding, so they get
    their own key and never mix with float32 vectors (an evaluation's) in one store."""
    from biolord.encoder import Encoder

    encoder = Encoder.load(str(tiny_model_dir), max_seq_length=32)
    fp32, bf16 = FrozenTeacher(encoder), FrozenTeacher(encoder, precision="bf16")
    texts = ["wilson disease", "a disorder of copper metabolism", "acute lung infection with fever"]
    a, b = fp32.encode(texts), bf16.encode(texts)  # (3, d) each
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # the bf16 forward did run
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99
    assert bf16.fingerprint() == fp32.fingerprint() + "-bf16"
    with pytest.raises(ValueError, match="precision 'fp16'"):
        FrozenTeacher(encoder, precision="fp16")
