"""Every reader (``biolord.evaluate``, ``biolord.link``, the teachers and the student of a distillation)
reads a multilingual student as ``SentenceTransformer(path)`` does: input prefix and projection
included, from its exported folder or from its run folder (a checkpoint's ``encoder_spec``), through
the one loader ``biolord.encoder_spec.load_model``. Before, evaluate and link refused a student
(``Encoder.load`` lacks the projection) and a reader that dropped the prefix gave other vectors.

The student's base model is deleted before any reader runs: only the student's own description is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from biolord import config_store, encoder_spec
from biolord.embedding_store import EmbeddingStore
from biolord.encoder import Encoder
from biolord.evaluation.linking import TextPreprocess, read_dictionary
from biolord.student import Student
from tests.conftest import ROOT, write_tiny_model
from tests.evaluation_tiny import VOCAB_WORDS
from tests.test_checkpoint_spec import write_described_checkpoint
from tests.test_evaluation_linking import DICTIONARY, PUBTATOR

BENCH = "benchmarks=[{name: toy, kind: linking, mentions: {path: m.txt}, dictionary: {path: dict.txt}, top_k: [1, 3]}]"


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """(exported folder, run folder holding only checkpoints/last.ckpt) of one 16-d student with the
    prefix 'query: ' and a projection to 24 dimensions."""
    root = tmp_path_factory.mktemp("student")
    base = write_tiny_model(root / "base", hidden=16, words=[*VOCAB_WORDS, "query", "passage"])
    torch.manual_seed(3)
    model = Student(Encoder.load(str(base), max_seq_length=32), prefix="query: ", teacher_dim=24, projection=True)
    folder = model.export(root / "folder", card="a tiny student")
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    write_described_checkpoint(model, run / "checkpoints" / "last.ckpt")
    shutil.rmtree(base)
    return folder, run


def st_encode(folder, texts) -> torch.Tensor:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(list(texts), convert_to_tensor=True).cpu()


def write_benchmark_files(folder: Path) -> list[str]:
    """The linking toy benchmark's files; returns the dictionary names as the benchmark encodes them."""
    (folder / "dict.txt").write_text(DICTIONARY)
    (folder / "m.txt").write_text(PUBTATOR)
    return read_dictionary(folder / "dict.txt", preprocess=TextPreprocess()).names


def only_store(cache: Path) -> EmbeddingStore:
    [folder] = list(cache.iterdir())  # one model, one fingerprint
    return EmbeddingStore(cache, folder.name)


def test_evaluate_scores_a_student_folder_and_run_with_the_vectors_of_sentence_transformers(tmp_path, student):
    from biolord.evaluation.runner import run

    folder, run_dir = student
    names = write_benchmark_files(tmp_path)
    expected = st_encode(folder, names)  # (7, 24): prefix and projection applied by sentence-transformers
    assert expected.shape[1] == 24
    records, keys = {}, {}
    for label, model in (("folder", folder), ("run", run_dir)):
        [record] = run(config_store.compose("evaluate", [
            f"models=[{model}]", f"evals_dir={tmp_path}", BENCH, f"cache_dir={tmp_path / label / 'cache'}",
            f"output_dir={tmp_path / label / 'out'}", "device=cpu"]))
        assert record["n"] == 4 and record["settings"]["max_seq_length"] == 32
        store = only_store(tmp_path / label / "cache")
        # the dictionary vectors the evaluation stored are the ones SentenceTransformer(path) gives
        torch.testing.assert_close(store.get(names), expected, atol=1e-5, rtol=1e-4)
        records[label], keys[label] = record["metrics"], store.fingerprint
    assert records["folder"] == records["run"]
    assert keys["folder"] == keys["run"]  # one model, read from its folder or its checkpoint: one cache key


def test_link_on_a_student_gives_sentence_transformers_scores(tmp_path, student):
    from biolord.link import load_linker
    from biolord.link import run as link

    folder, run_dir = student
    names = write_benchmark_files(tmp_path)
    for model in (folder, run_dir):
        [candidates] = link(config_store.compose("link", [
            f"model={model}", f"dictionary={tmp_path / 'dict.txt'}", "mention=wilson disease", "top_k=3",
            "device=cpu", f"cache_dir={tmp_path / 'cache'}"]))
        assert [c["rank"] for c in candidates] == [1, 2, 3]
        assert candidates[0]["concept_id"] == "D004" and candidates[0]["score"] == pytest.approx(1.0, abs=1e-5)
        vectors = torch.nn.functional.normalize(st_encode(folder, ["wilson disease", *names]), dim=1)  # (8, 24)
        for c in candidates:  # each score is the cosine of sentence-transformers' vectors
            expected = float(vectors[0] @ vectors[1 + names.index(TextPreprocess()(c["name"]))])
            assert c["score"] == pytest.approx(expected, abs=1e-4)
    # the Python API without a loaded encoder reads the student too
    linker = load_linker(str(run_dir), str(tmp_path / "dict.txt"), cache_dir=None, device="cpu")
    [[best]] = linker.link(["copper toxicosis"], top_k=1)  # a synonym of Wilson disease in the dictionary
    assert (best["concept_id"], best["name"]) == ("D004", "copper toxicosis")


def test_link_command_on_a_student_run_folder(tmp_path, student):
    """``python -m biolord.link model=<run folder of a student>``, as a user types it."""
    _, run_dir = student
    write_benchmark_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "BIOLORD_PROGRESS": "log"}
    out = subprocess.run(
        [sys.executable, "-m", "biolord.link", f"model={run_dir}", "dictionary=dict.txt", "mention=breast cancer",
         "top_k=1", "json=true", "device=cpu", "cache_dir=null"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)[0]["candidates"][0]["concept_id"] == "D002|600001"


def test_self_distill_teacher_and_student_init_read_a_student(tmp_path, student, tiny_train_cfg):
    """The teacher loader gives the student with its projection (24-d, so a 32-d student is refused by
    dimension, not by loader); student_init=teacher names why a student cannot be copied."""
    from biolord.pair_phases import SelfDistillHooks

    folder, run_dir = student
    hooks = SelfDistillHooks(tiny_train_cfg("phase=self_distill", f"teacher={run_dir}", "phase.student_init=teacher"))
    with pytest.raises(ValueError, match=r"student_init=teacher: the teacher .*run is bert .*prefix 'query: ', "
                                         r"projection 16 -> 24.*use phase.student_init=base"):
        hooks.network()
    base = SelfDistillHooks(tiny_train_cfg("phase=self_distill", f"teacher={folder}", "phase.student_init=base"))
    with pytest.raises(ValueError, match=r"teacher .*folder has dimension 24 but the student .* has 32"):
        base.module(base.network(), None, None)


def test_a_student_continues_with_its_prefix_and_projection_and_teaches_with_them(tmp_path, student):
    """distill.py with student=<a student's run folder> and teacher=<a student's folder>: the teacher's
    vectors in the cache are sentence-transformers' (prefix and projection), the student keeps its
    trained projection (no Procrustes start): with lr=0 the exported model is the loaded one."""
    from biolord.teacher_cache import TeacherCache
    from biolord.train import run
    from tests.test_distill import compose, parallel_rows, write_tsv

    folder, run_dir = student
    rows = parallel_rows(12)
    common = [f"teacher={folder}", f"data.source={write_tsv(tmp_path / 'pairs.tsv', rows)}", "data.languages=[de,fr]",
              "data.heldout_concepts=3", "data.max_train_concepts=null", "data.batch_size_per_device=4",
              f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_steps=2", "trainer.enable_progress_bar=false",
              "eval.at_start=false", "model.max_seq_length=32", "model.freeze_word_embeddings=false"]
    with pytest.raises(ValueError, match=r"student=.*run was trained with the input prefix 'query: ' .*model.prefix=''; "
                                         r"set model.prefix='query: '"):
        run(compose([*common, f"student={run_dir}", "model.prefix=''", f"paths.output_dir={tmp_path / 'bad'}"]))
    result = run(compose([*common, f"student={run_dir}", "model.prefix='query: '", "optim.lr=0",
                          f"paths.output_dir={tmp_path / 'out'}"]))
    english = list(dict.fromkeys(en for en, _, _ in rows))
    teacher_key = encoder_spec.fingerprint(encoder_spec.load_model(str(folder)))
    cached = TeacherCache(tmp_path / "cache" / "teacher_embeddings", fingerprint=teacher_key)
    torch.testing.assert_close(cached.lookup(english), st_encode(folder, english), atol=1e-5, rtol=1e-4)
    assert cached.stats()["teacher_calls"] == 0  # all there, under the one fingerprint
    exported = Path(result["model_dir"])
    torch.testing.assert_close(st_encode(exported, english), st_encode(folder, english), atol=1e-5, rtol=1e-4)
