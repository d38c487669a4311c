"""One checkpoint format: every phase's checkpoint describes its model (``encoder_spec`` +
``encoder_state``), and readers rebuild it from that alone. The base models the runs started from
are deleted before reading, so no reader can fall back to ``model.name_or_path``.

Must-show of issue 12: ``average.py`` over two multilingual runs of one student, and over a
contrastive + a self-distilled run, each read through its checkpoints; a refusal naming the
tensors when the architectures differ; the soup loads with ``SentenceTransformer(path)`` and gives
biolord's vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from biolord import encoder_spec, soup
from biolord.checkpoint import (
    ENCODER_SPEC, ENCODER_STATE, EncoderSpecCallback, NoEncoderSpecError, UnsafeCheckpointError, load_checkpoint,
    read_encoder,
)
from biolord.encoder import Encoder
from biolord.model_source import ModelNotFoundError, find_model
from biolord.soup import SoupError
from biolord.student import Student
from tests.conftest import write_tiny_model
from tests.test_bad_inputs_runs import write_crafted
from tests.test_distill import compose as compose_distill
from tests.test_distill import parallel_rows, write_tsv
from tests.test_soup import compose_average

TEXTS = ["wilson disease", "copper deposition in the liver", "heart defect of the kidney"]


def st_vectors(folder) -> torch.Tensor:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_tensor=True).cpu()


def mean_state(paths) -> dict[str, torch.Tensor]:
    states = [read_encoder(p)[1] for p in paths]
    return {k: sum(s[k].float() for s in states) / len(states) for k in states[0]}


def assert_soup_is_the_mean(model_dir: Path, ckpts: list[Path]) -> None:
    """The exported soup's every tensor (projection included) is the mean of the checkpoints' encoder_state."""
    got = encoder_spec.state_of(encoder_spec.load_model(str(model_dir)))
    expected = mean_state(ckpts)
    assert set(got) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(got[k].float(), v, atol=1e-6, rtol=1e-5, msg=k)


def write_described_checkpoint(model, path: Path) -> Path:
    """A checkpoint holding exactly what EncoderSpecCallback writes (no training: for the refusal tests)."""
    ckpt = {"state_dict": {}, "global_step": 0}
    EncoderSpecCallback(model).on_save_checkpoint(None, None, ckpt)
    torch.save(ckpt, path)
    return path


# ---- must-show: two multilingual runs of the same student --------------------------------------
def test_average_two_multilingual_runs_through_their_checkpoints(tmp_path, tiny_model_dir):
    from biolord.train import run as distill

    student_dir = write_tiny_model(tmp_path / "student16", hidden=16)  # 16-d student, projection to the 32-d teacher
    data = write_tsv(tmp_path / "pairs.tsv", parallel_rows())
    runs = []
    for seed in (1, 2):
        out = tmp_path / f"multilingual{seed}"
        distill(compose_distill([
            f"teacher={tiny_model_dir}", f"student={student_dir}", "model.max_seq_length=32",
            "model.prefix='query: '", "model.projection=true", "model.freeze_word_embeddings=false",
            f"data.source={data}", "data.languages=[de,fr]", "data.heldout_concepts=6", "data.max_train_concepts=null",
            "data.batch_size_per_device=8", f"seed={seed}", f"paths.output_dir={out}",
            f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_steps=3", "trainer.enable_progress_bar=false",
            "checkpoint.every_n_steps=100", "eval.at_start=false", "export=false",
        ]))
        runs.append(out)
    shutil.rmtree(student_dir)  # only the checkpoints' own description is left
    ckpts = [r / "checkpoints" / "last.ckpt" for r in runs]
    spec, state = read_encoder(ckpts[0])
    assert (spec["prefix"], spec["projection"], spec["normalize"]) == ("query: ", {"in_features": 16, "out_features": 32}, True)
    assert not torch.equal(state["projection.weight"], read_encoder(ckpts[1])[1]["projection.weight"])  # two runs

    # run folders without model/ (export=false): the finder reads their newest checkpoint
    result = soup.run(compose_average([f"ckpts=[{runs[0]},{runs[1]}]", f"output_dir={tmp_path / 'soup'}"]))
    assert [Path(r["path"]) for r in result["soup"]] == [c.resolve() for c in ckpts]
    model_dir = Path(result["model_dir"])
    assert_soup_is_the_mean(model_dir, ckpts)
    ours = encoder_spec.load_model(str(model_dir))
    assert isinstance(ours, Student) and ours.prefix == "query: " and ours.dim == 32
    torch.testing.assert_close(ours.encode(TEXTS), st_vectors(model_dir), atol=1e-5, rtol=1e-4)
    # the soup built straight from the averaged state gives the same vectors: the export lost nothing
    rebuilt = encoder_spec.build(spec, {k: v for k, v in mean_state(ckpts).items()})
    torch.testing.assert_close(rebuilt.encode(TEXTS), ours.encode(TEXTS), atol=1e-5, rtol=1e-4)
    config = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert config["default_prompt_name"] == "query" and config["prompts"] == {"query": "query: "}


# ---- must-show: a contrastive and a self-distilled run ----------------------------------------
def test_average_contrastive_and_self_distilled_runs_through_their_checkpoints(tiny_train_cfg, tmp_path):
    """student_init=teacher with model.name_or_path naming another architecture: the old reader took the
    architecture from model.name_or_path (here 64-d) and failed; the checkpoint's own description is 32-d."""
    from biolord.train import run as train

    base = write_tiny_model(tmp_path / "base")
    wide = write_tiny_model(tmp_path / "wide", hidden=64)
    small = ["data.max_train_rows=16", "trainer.max_steps=3", "export=false"]
    c_dir = Path(train(tiny_train_cfg(*small, f"model.name_or_path={base}", f"paths.output_dir={tmp_path / 'c'}"))["output_dir"])
    # the teacher is a run folder without model/: self_distill's teacher loader reads its checkpoint
    s_dir = Path(train(tiny_train_cfg(
        *small, "phase=self_distill", f"teacher={c_dir}", "phase.student_init=teacher",
        f"model.name_or_path={wide}", f"paths.output_dir={tmp_path / 's'}"))["output_dir"])
    shutil.rmtree(base)
    shutil.rmtree(wide)
    ckpts = [c_dir / "checkpoints" / "last.ckpt", s_dir / "checkpoints" / "last.ckpt"]
    specs = [read_encoder(c)[0] for c in ckpts]
    assert [s["transformer_config"]["hidden_size"] for s in specs] == [32, 32]
    assert all(s["prefix"] == "" and s["projection"] is None for s in specs)
    key = "transformer.encoder.layer.1.output.dense.weight"
    assert not torch.equal(read_encoder(ckpts[0])[1][key], read_encoder(ckpts[1])[1][key])  # the student moved

    result = soup.run(compose_average([f"ckpts=[{ckpts[0]},{ckpts[1]}]", f"output_dir={tmp_path / 'soup'}"]))
    model_dir = Path(result["model_dir"])
    assert_soup_is_the_mean(model_dir, ckpts)
    torch.testing.assert_close(Encoder.load(str(model_dir)).encode(TEXTS), st_vectors(model_dir), atol=1e-5, rtol=1e-4)
    # evaluate / link / teachers load a checkpoint through encoder_spec.load_model: the run's own vectors
    from_ckpt = encoder_spec.load_model(str(ckpts[1]))
    assert (from_ckpt.pooling, from_ckpt.normalize, from_ckpt.max_seq_length) == ("mean", True, 32)
    direct = encoder_spec.build(specs[1], read_encoder(ckpts[1])[1])
    torch.testing.assert_close(from_ckpt.encode(TEXTS), direct.encode(TEXTS))


# ---- the format itself ------------------------------------------------------------------------
def test_run_checkpoint_stores_the_weights_once(tiny_train_cfg):
    """encoder_state holds the state_dict's own tensors: torch.save writes each storage once."""
    from biolord.train import run as train

    run_dir = Path(train(tiny_train_cfg("data.max_train_rows=16", "trainer.max_steps=1", "export=false"))["output_dir"])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    key = "embeddings.word_embeddings.weight"
    ours, lightning = ckpt[ENCODER_STATE][f"transformer.{key}"], ckpt["state_dict"][f"encoder.transformer.{key}"]
    assert ours.untyped_storage().data_ptr() == lightning.untyped_storage().data_ptr()
    assert set(ckpt[ENCODER_SPEC]["tokenizer_files"]) >= {"tokenizer_config.json"}
    assert find_model(str(run_dir)).location == str((run_dir / "checkpoints" / "last.ckpt").resolve())


def test_architectures_that_differ_are_refused_naming_the_tensors(tmp_path, tiny_model_dir):
    narrow = write_described_checkpoint(Encoder.load(str(tiny_model_dir)), tmp_path / "narrow.ckpt")
    wide = write_described_checkpoint(Encoder.load(str(write_tiny_model(tmp_path / "w", hidden=64))), tmp_path / "wide.ckpt")
    with pytest.raises(SoupError, match=r"different architectures cannot be averaged: .*narrow.ckpt.* and .*wide.ckpt.* "
                                        r"hidden_size 32 vs 64.*tensor 'transformer\.embeddings\.word_embeddings\.weight' "
                                        r"is \[\d+, 32\] in .*narrow.ckpt but \[\d+, 64\] in .*wide.ckpt"):
        soup.run(compose_average([f"ckpts=[{narrow},{wide}]", f"output_dir={tmp_path / 'out'}"]))
    # same transformer, but one is a student with a projection: the projection's tensors are named
    student = Student(Encoder.load(str(tiny_model_dir)), teacher_dim=32, projection=True)
    projected = write_described_checkpoint(student, tmp_path / "projected.ckpt")
    with pytest.raises(SoupError, match=r"tensor 'projection\.(weight|bias)' is in .*projected.ckpt.* but not in .*narrow.ckpt"):
        soup.run(compose_average([f"ckpts=[{projected},{narrow}]", f"output_dir={tmp_path / 'out'}"]))


def test_unreadable_checkpoints_name_the_file_and_the_fix(tmp_path):
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"encoder.transformer.w": torch.zeros(1)}, "global_step": 3}, old)
    with pytest.raises(NoEncoderSpecError, match=r"old.ckpt does not describe its model .*Give the run's model/ folder"):
        Encoder.load(str(old))
    marker = tmp_path / "marker"
    crafted = write_crafted(tmp_path / "crafted.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match="not plain weights"):
        encoder_spec.load_model(str(crafted))
    assert not marker.exists()  # weights-only loading: the payload never ran
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"neither a model folder .* nor a biolord run folder"):
        find_model(str(tmp_path / "empty_run"))


def test_student_folder_is_a_student_and_encoder_load_refuses_it(tmp_path, tiny_model_dir):
    """An exported multilingual folder: load_model gives its vectors; Encoder.load does not drop its parts silently."""
    student = Student(Encoder.load(str(tiny_model_dir), max_seq_length=32), prefix="query: ", teacher_dim=32,
                      projection=True)
    folder = student.export(tmp_path / "student", card="card")
    loaded = encoder_spec.load_model(str(folder))
    torch.testing.assert_close(loaded.encode(TEXTS), st_vectors(folder), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(loaded.encode(TEXTS), student.encode(TEXTS), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"input prefix 'query: ' and/or a projection .*encoder_spec.load_model"):
        Encoder.load(str(folder))
    dense = json.loads((folder / "2_Dense" / "config.json").read_text())
    (folder / "2_Dense" / "config.json").write_text(json.dumps({**dense, "activation_function": "torch.nn.modules.activation.Tanh"}))
    with pytest.raises(encoder_spec.SpecError, match=r"Dense module \(2_Dense\) has activation .*Tanh"):
        encoder_spec.load_model(str(folder))


def test_fingerprint_sees_the_prefix_and_the_projection(tiny_model_dir):
    import copy

    a = Student(Encoder.load(str(tiny_model_dir)), prefix="query: ", teacher_dim=32, projection=True)
    b = copy.deepcopy(a)
    assert encoder_spec.fingerprint(a) == encoder_spec.fingerprint(b)
    with torch.no_grad():
        b.projection.bias.add_(1e-3)  # only the projection differs
    assert encoder_spec.fingerprint(a) != encoder_spec.fingerprint(b)
    c = copy.deepcopy(a)
    c.prefix = "passage: "
    assert encoder_spec.fingerprint(a) != encoder_spec.fingerprint(c)
