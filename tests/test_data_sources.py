"""Files, Hugging Face datasets (AGCT layout), mixing; bad input counted or reported clearly."""

import json

import pytest

from biolord.data.build import load_or_build
from biolord.data.tables import ColumnError, parse_agct
from biolord.train import run

AGCT_ROWS = [
    '"heart disease one" refers to a rare disease of the heart characterized by one defect.',
    '"liver disorder two" refers to a chronic disorder of the liver with copper deposition.',
    '"kidney syndrome three" refers to an inherited syndrome of the kidney.',
    '"bone defect four" refers to a defect of the bone and muscle.',
    '"eye disease five" refers to a disease of the eye characterized by pain.',
    '"skin disorder six" refers to a disorder of the skin with inflammation.',
    '"brain tumor seven" refers to a tumor of the brain.',
    '"blood defect eight" refers to a defect of the blood and iron metabolism.',
    '"lung infection nine" refers to an acute infection of the lung.',
    '"muscle pain ten" refers to chronic pain of the muscle.',
    "this row has no quoted name",
    '"" refers to nothing',
]


def test_parse_agct():
    assert parse_agct('"Wilson disease" refers to a rare copper disorder.') == ("Wilson disease", "a rare copper disorder.")
    assert parse_agct("Wilson disease is a disorder") is None
    assert parse_agct(None) is None


@pytest.fixture
def agct_dir(tmp_path):
    from datasets import Dataset

    folder = tmp_path / "agct"
    Dataset.from_dict({"text": AGCT_ROWS * 3}).save_to_disk(str(folder))
    return folder


@pytest.fixture
def parquet_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    organs = ["heart", "liver", "kidney", "bone", "eye", "skin", "brain", "blood", "lung", "muscle"]
    rows = {
        "cui": [f"C{i:03d}" for i in range(40)],
        "term": [f"{organs[i % 10]} disease {i}" for i in range(40)],
        "definition": [f"a rare disease of the {organs[i % 10]} with {organs[(i + 1) % 10]} defect" for i in range(40)],
    }
    rows["term"][3] = ""  # empty name: counted
    rows["definition"][4] = None  # missing text: counted
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.table(rows), path)
    return path


def test_agct_saved_dataset_counts_unparseable_rows(agct_dir, tmp_path):
    table = load_or_build([{"type": "hf", "path": str(agct_dir), "format": "agct", "name": "agct"}], 0, tmp_path / "c")
    assert table.report["kept"]["agct"] == 10  # 30 parsed, 20 exact duplicates
    assert table.report["skipped"]["agct (duplicate pair)"] == 20
    assert table.report["terms_excluded"]["agct"]["unparseable AGCT row"] == 6


def test_agct_text_file(tmp_path):
    path = tmp_path / "agct.txt"
    path.write_text("\n".join(AGCT_ROWS) + "\n")
    table = load_or_build([{"type": "file", "path": str(path), "format": "agct"}], 0, tmp_path / "c")
    assert table.report["kept"]["agct"] == 10
    assert table.report["terms_excluded"]["agct"]["unparseable AGCT row"] == 2


def test_parquet_with_column_mapping_counts_bad_rows(parquet_file, tmp_path):
    entry = {"type": "file", "path": str(parquet_file), "columns": {"concept_id": "cui", "name": "term", "text": "definition"}}
    table = load_or_build([entry], 0, tmp_path / "c")
    assert table.report["kept"]["pairs"] == 38
    assert table.report["skipped"] == {"pairs (empty name)": 1, "pairs (missing text)": 1}
    # default column names are tried: term/definition are candidates, cui is not (concept = name)
    auto = load_or_build([{"type": "file", "path": str(parquet_file)}], 0, tmp_path / "c")
    assert auto.report["kept"]["pairs"] == 38


def test_unknown_column_lists_the_columns(parquet_file, tmp_path):
    entry = {"type": "file", "path": str(parquet_file), "columns": {"name": "nope"}}
    with pytest.raises(ColumnError, match=r"column 'nope' \(for name\) not found .*available: \['cui', 'term', 'definition'\]"):
        load_or_build([entry], 0, tmp_path / "c")


def test_tsv_jsonl_and_missing_file(tmp_path):
    (tmp_path / "a.tsv").write_text("name\ttext\theart\tan organ\n".replace("\theart", "\nheart"))
    (tmp_path / "b.jsonl").write_text(json.dumps({"name": "liver", "text": "an organ", "concept_id": 7}) + "\n" + json.dumps({"name": 3, "text": "x"}) + "\n")
    table = load_or_build([{"type": "file", "path": str(tmp_path / "a.tsv")}, {"type": "file", "path": str(tmp_path / "b.jsonl")}], 0, tmp_path / "c")
    assert table.report["kept"] == {"a": 1, "b": 1}
    assert table.report["skipped"] == {"b (missing concept_id)": 1}  # b's second row has a name but no id
    (tmp_path / "n.jsonl").write_text(json.dumps({"concept_id": "X:1", "name": 3, "text": "x"}) + "\n")
    numeric = load_or_build([{"type": "file", "path": str(tmp_path / "n.jsonl")}, {"type": "file", "path": str(tmp_path / "a.tsv")}],
                            0, tmp_path / "c")
    assert numeric.report["skipped"] == {"n (number-only name)": 1} and numeric.report["kept"] == {"a": 1}
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_or_build([{"type": "file", "path": str(tmp_path / "nope.csv")}], 0, tmp_path / "c")


def test_cache_is_reused_and_invalidated_when_the_file_changes(parquet_file, tmp_path):
    entry = {"type": "file", "path": str(parquet_file)}
    first = load_or_build([entry], 0, tmp_path / "c")
    assert load_or_build([entry], 0, tmp_path / "c").folder == first.folder
    import os
    os.utime(parquet_file, ns=(1, 1))
    assert load_or_build([entry], 0, tmp_path / "c").folder != first.folder


@pytest.mark.parametrize("which", ["agct", "parquet", "obo", "mix"])
def test_training_runs_from_each_source_and_a_mix(which, agct_dir, parquet_file, tiny_obo, tiny_train_cfg, tmp_path):
    sources = {
        "agct": f"{{type:hf,path:'{agct_dir}',format:agct}}",
        "parquet": f"{{type:file,path:'{parquet_file}',columns:{{concept_id:cui}}}}",
        "obo": f"{{type:obo,path:'{tiny_obo}'}}",
    }
    if which == "mix":
        spec = ",".join(s[:-1] + f",weight:{w}}}" for s, w in zip(sources.values(), (1, 2, 1)))
    else:
        spec = sources[which]
    run(tiny_train_cfg(f"data.sources=[{spec}]", "data.batch_size_per_device=4", "data.val_fraction=0.1", "eval.at_start=false"))
    from biolord.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 3
    stats = json.loads((tmp_path / "run" / "data_stats.json").read_text())
    assert stats["train_rows"] > 0 and len(stats["sources"]) == (3 if which == "mix" else 1)


def test_data_statistics_command(tiny_obo, tiny_model_dir, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run(
        [sys.executable, "-m", "biolord.data", "model=hub", f"model.name_or_path={tiny_model_dir}",
         f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", f"paths.cache_dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/out"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rows: " in proc.stdout and "tokens per text" in proc.stdout and "terms excluded from tiny: obsolete 1" in proc.stdout
    stats = json.loads((tmp_path / "out" / "data_statistics.json").read_text())
    assert stats["kinds"]["definition"] > 0 and stats["concepts"] == 41
