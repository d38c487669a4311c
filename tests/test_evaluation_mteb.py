"""python -m biolord.evaluate mteb=...: mteb runs a local STS task on a model biolord wrote (offline)."""

import json

import pytest

mteb = pytest.importorskip("mteb", reason="MTEB evaluation needs the mteb package (pip install mteb)")

from datasets import Dataset, DatasetDict  # noqa: E402
from mteb.abstasks.sts import AbsTaskSTS  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402

from tests.conftest import compose  # noqa: E402

PAIRS = [
    ("wilson disease", "copper metabolism disorder", 4.0), ("heart defect", "cardiac defect", 5.0),
    ("skin tumor", "dermal cancer", 4.0), ("acute lung infection", "chronic kidney disease", 1.0),
    ("bone growth defect", "skeletal abnormality", 3.0), ("eye pain", "liver iron deposition", 0.0),
    ("inherited brain disorder", "neurological disease", 3.5), ("blood cell", "kidney stone", 0.5),
]


def _metadata(name: str) -> TaskMetadata:
    return TaskMetadata(
        name=name, description="Tiny biomedical STS built by the test.", reference="https://example.org/tiny",
        dataset={"path": "local/tiny-biomedical-sts", "revision": "1"}, type="STS", category="t2t",
        modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"], main_score="cosine_spearman",
        date=("2024-01-01", "2024-01-01"), domains=["Medical"], task_subtypes=[], license="cc-by-4.0",
        annotations_creators="derived", dialect=[], sample_creation="created", bibtex_citation="",
    )


class TinyBiomedicalSTS(AbsTaskSTS):
    """An mteb STS task whose data is an in-memory datasets object (no hub)."""

    metadata = _metadata("TinyBiomedicalSTS")
    min_score, max_score = 0, 5

    def load_data(self, **kwargs) -> None:
        a, b, s = zip(*PAIRS)
        self.dataset = DatasetDict({"test": Dataset.from_dict({"sentence1": a, "sentence2": b, "score": s})})
        self.data_loaded = True


class BrokenSTS(TinyBiomedicalSTS):
    metadata = _metadata("BrokenSTS")

    def load_data(self, **kwargs) -> None:
        raise FileNotFoundError("broken.tsv: file not found")


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory, tiny_model_dir):
    from biolord.encoder import Encoder
    from biolord.export import export_sentence_transformers

    return export_sentence_transformers(Encoder.load(str(tiny_model_dir), max_seq_length=32),
                                        tmp_path_factory.mktemp("mteb") / "model")


def _cfg(tmp_path, folder, *extra):
    return compose([f"models=[{folder}]", "device=cpu", f"output_dir={tmp_path / 'out'}", *extra],
                   config_name="evaluate")


def _expected_spearman(folder, dim=None):
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", truncate_dim=dim)
    a, b = (model.encode([p[i] for p in PAIRS], normalize_embeddings=True) for i in (0, 1))
    return 100 * spearmanr((a * b).sum(1), [p[2] for p in PAIRS])[0]


def test_local_task_writes_mteb_result_files_and_a_biolord_line(tmp_path, st_folder):
    from biolord.evaluation.runner import run

    results = run(_cfg(tmp_path, st_folder, "mteb=tests.test_evaluation_mteb:TinyBiomedicalSTS"))
    assert len(results) == 1
    r = results[0]
    assert (r["kind"], r["benchmark"], r["primary"], r["dim"]) == ("mteb", "TinyBiomedicalSTS", "cosine_spearman", 32)
    assert r["metrics"]["cosine_spearman"] == pytest.approx(_expected_spearman(st_folder), abs=1e-2)
    (file,) = r["files"]
    assert file.startswith(str(tmp_path / "out" / "mteb" / "results")) and file.endswith("TinyBiomedicalSTS.json")
    written = json.loads(open(file).read())  # mteb's own result file
    assert written["task_name"] == "TinyBiomedicalSTS"
    assert 100 * written["scores"]["test"][0]["main_score"] == pytest.approx(r["metrics"]["cosine_spearman"], abs=1e-2)
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["mteb"]
    assert "| TinyBiomedicalSTS | cosine_spearman | – |" in (tmp_path / "out" / "results.md").read_text()


def test_each_truncate_dim_and_a_failing_task_reported_next_to_the_others(tmp_path, st_folder):
    from biolord.evaluation.runner import run

    tasks = "mteb=[tests.test_evaluation_mteb:BrokenSTS,tests.test_evaluation_mteb:TinyBiomedicalSTS]"
    results = run(_cfg(tmp_path, st_folder, tasks, "truncate_dims=[32,8]"))
    ok = [r for r in results if "error" not in r]
    assert [(r["benchmark"], r["dim"]) for r in ok] == [("TinyBiomedicalSTS", 32), ("TinyBiomedicalSTS", 8)]
    assert ok[1]["metrics"]["cosine_spearman"] == pytest.approx(_expected_spearman(st_folder, 8), abs=1e-2)
    assert all("/mteb/dim-" in next(iter(r["files"])) for r in ok)
    failed = [r for r in results if "error" in r]
    assert [r["benchmark"] for r in failed] == ["BrokenSTS", "BrokenSTS"] and "broken.tsv" in failed[0]["error"]


def test_unknown_names_fail_before_any_model_is_loaded(tmp_path):
    from biolord.evaluation.runner import run

    with pytest.raises(ValueError, match=r"mteb='BIOSES' is neither an MTEB benchmark .* nor a task .*BIOSSES"):
        run(_cfg(tmp_path, tmp_path / "no-such-model", "mteb=BIOSES"))
    with pytest.raises(ValueError, match=r"cannot import NoTask from tests.test_evaluation_mteb"):
        run(_cfg(tmp_path, tmp_path / "no-such-model", "mteb=tests.test_evaluation_mteb:NoTask"))
