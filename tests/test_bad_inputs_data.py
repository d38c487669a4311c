"""The catalogue of bad data inputs (issue 13): each case, on tiny data made here, ends in a clear
error naming the file and the fix, or in a counted skip / lenient read reported in data_stats.json.

OBO snippets are shaped like real releases: a synonym type used but never declared (as in a disease
ontology's official subset), RO relations without a [Typedef], parents from another ontology, no
header, old-style `def` without `[]`, and one true syntax error.
"""

import json
import logging
from collections import Counter

import pytest
from omegaconf import OmegaConf

from biolord.data import ontology
from biolord.data.build import load_or_build
from biolord.data.datamodule import PairDataModule
from biolord.data.obo_repair import Repair
from biolord.data.ontology import OboSyntaxError, obo_concepts
from biolord.data.parallel import ParallelDataError, _file_records, clean, from_records
from biolord.data.tables import LINE_BREAK, DataFileError

TERMS = """
[Term]
id: DOID:4
name: disease
def: "A disposition to undergo pathological processes." []

[Term]
id: DOID:114
name: heart disease
def: "A cardiovascular system disease that involves the heart." [url:http://en.wikipedia.org/wiki/Heart_disease]
synonym: "cardiopathy" EXACT OMO:0003012 []
synonym: "heart disorder" EXACT []
is_a: DOID:4 ! disease
relationship: RO:0004026 UBERON:0000948 ! disease has location heart
"""


def _obo(tmp_path, text: str, name: str = "wild.obo"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _build(tmp_path, *entries):
    return load_or_build(list(entries), 0, tmp_path / "cache")


# ---- ontologies ----------------------------------------------------------------------------------
def test_obo_undeclared_synonym_type_is_declared_counted_and_the_term_kept(tmp_path):
    path = _obo(tmp_path, "format-version: 1.2\nontology: doid\n" + TERMS)
    table = _build(tmp_path, {"type": "obo", "path": str(path)})
    lenient = table.report["read_leniently"]["wild"]
    assert lenient["undeclared synonym type (declared)"] == 1
    heart = [r for r in table.dataset.to_list() if r["concept_id"] == "DOID:114"]
    assert {"cardiopathy", "heart disorder"} <= {r["text"] for r in heart if r["kind"] == "synonym"}
    assert table.report["kept"]["wild"] > 0 and table.report["terms_excluded"]["wild"] == {}


def test_obo_unknown_relation_and_a_parent_of_another_ontology_are_counted(tmp_path):
    path = _obo(tmp_path, "format-version: 1.2\n" + TERMS + "relationship: has_weird_link DOID:4\nis_a: MONDO:0005267\n")
    stats, lenient = Counter(), Counter()
    concepts = {c.id: c for c in obo_concepts(path, stats, lenient=lenient)}
    heart = concepts["DOID:114"]
    assert lenient["undeclared relation (read by its id)"] == 2  # RO:0004026 and has_weird_link
    assert lenient["reference to a term not in the file (left out)"] == 2  # UBERON:0000948, MONDO:0005267
    assert heart.parents == ["disease"]  # the foreign parent has no label here: left out
    assert heart.relations == [("has_weird_link", "disease")]  # a target outside the file says nothing
    assert set(concepts) == {"DOID:4", "DOID:114"} and stats == {}  # the stand-ins are no concepts


def test_obo_without_header_or_format_version_and_def_without_xrefs(tmp_path):
    no_header = _obo(tmp_path, TERMS.replace(' [url:http://en.wikipedia.org/wiki/Heart_disease]', ""), "no_header.obo")
    lenient = Counter()
    concepts = obo_concepts(no_header, Counter(), lenient=lenient)
    assert {c.id for c in concepts} == {"DOID:4", "DOID:114"}
    assert lenient["no header (format-version 1.2 assumed)"] == 1
    assert lenient["def without xref list ([] added)"] == 1
    late_version = _obo(tmp_path, "! exported by a script\nontology: doid\nformat-version: 1.2\n" + TERMS, "late.obo")
    lenient = Counter()
    assert len(obo_concepts(late_version, Counter(), lenient=lenient)) == 2
    assert lenient["no format-version at the top (1.2 assumed)"] == 1 and lenient["comment line (blanked)"] == 1


def test_obo_true_syntax_error_names_the_file_and_its_own_line(tmp_path):
    # header lines are inserted for the undeclared synonym type: the line reported is still the file's
    lines = ("ontology: doid\n" + TERMS + "\n[Term]\nid: DOID:9\nname: broken\ndef: \"no closing quote []\n").split("\n")
    bad_line = next(i for i, line in enumerate(lines, 1) if "no closing quote" in line)
    path = _obo(tmp_path, "\n".join(lines), "broken.obo")
    with pytest.raises(OboSyntaxError, match=rf"broken\.obo at line {bad_line}: .*Fix that line"):
        obo_concepts(path, Counter())


def test_obo_empty_file_is_named(tmp_path):
    with pytest.raises(OboSyntaxError, match=r"empty\.obo is empty \(0 bytes\)"):
        obo_concepts(_obo(tmp_path, "", "empty.obo"), Counter())


def test_obo_construct_the_repair_does_not_know_keeps_the_term(tmp_path, monkeypatch):
    """The last line of defence: pronto refusing a clause while the terms are read costs that term's
    synonyms and relations, counted, never the build."""
    monkeypatch.setattr(ontology, "repair_obo", lambda raw: Repair(None))
    path = _obo(tmp_path, "format-version: 1.2\n" + TERMS.replace("relationship: RO:0004026 UBERON:0000948 ! disease has location heart\n", ""))
    lenient = Counter()
    concepts = {c.id: c for c in obo_concepts(path, Counter(), lenient=lenient)}
    assert concepts["DOID:114"].definition.startswith("A cardiovascular") and concepts["DOID:114"].synonyms == []
    assert lenient[ontology.UNREADABLE] == 1


# ---- files -------------------------------------------------------------------------------------
def _pairs(n: int, start: int = 0) -> list[str]:
    return [f"C{i}\tterm {i}\tdefinition number {i} of a rare disease" for i in range(start, start + n)]


def test_tsv_quote_at_field_start_does_not_swallow_rows(tmp_path):
    rows = _pairs(110)
    rows[5] = 'C5\tterm 5\t"a quote that opens a definition and is never closed'
    rows[15] = 'C15\tterm 15\ta definition with a " further down'
    rows[20] = 'C20\tterm 20\t"Quoted" words that start a definition'
    path = tmp_path / "quotes.tsv"
    path.write_text("concept_id\tname\ttext\n" + "\n".join(rows) + "\n")
    table = _build(tmp_path, {"type": "file", "path": str(path)})
    assert table.report["kept"] == {"quotes": 110} and table.report["skipped"] == {}
    texts = set(table.dataset["text"])
    assert {'"a quote that opens a definition and is never closed', '"Quoted" words that start a definition'} <= texts
    assert max(len(t) for t in texts) < 60


def test_csv_stray_quote_rows_are_skipped_and_counted(tmp_path):
    rows = ["concept_id,name,text"] + [f"C{i},term {i},definition {i} of a disease" for i in range(20)]
    rows[3] = 'C2,term 2,"a stray quote opens here'
    rows[8] = 'C7,term 7,and closes " here'
    path = tmp_path / "stray.csv"
    path.write_text("\n".join(rows) + "\n")
    table = _build(tmp_path, {"type": "file", "path": str(path)})
    assert table.report["skipped"] == {f"stray ({LINE_BREAK})": 1}  # the merged record, counted
    assert table.report["kept"]["stray"] == 20 - 6  # rows 2..7 became one record
    never_closed = tmp_path / "open.csv"
    never_closed.write_text('name,text\nheart,"an organ\nliver,a gland\n')
    with pytest.raises(DataFileError, match=r"open\.csv could not be read: .*EOF inside string.*quoting: 3"):
        _build(tmp_path, {"type": "file", "path": str(never_closed)})
    extra = tmp_path / "extra.csv"
    extra.write_text("name,text\nheart,an organ\nliver,a gland,extra field\n")
    with pytest.raises(DataFileError, match=r"extra\.csv could not be read: .*Expected 2 fields in line 3, saw 3\. Check that line"):
        _build(tmp_path, {"type": "file", "path": str(extra)})


def test_number_only_texts_are_skipped_alike_in_a_half_and_an_all_number_column(tmp_path):
    half = tmp_path / "half.csv"
    half.write_text("name,text\n" + "\n".join(f"term {i}," + (f"{1000 + i}" if i % 2 else f"definition {i}") for i in range(10)) + "\n")
    whole = tmp_path / "whole.csv"
    whole.write_text("name,text\n" + "\n".join(f"term {i},{1000 + i}" for i in range(4)) + "\nterm x,1.5e3\n")
    table = _build(tmp_path, {"type": "file", "path": str(half)}, {"type": "file", "path": str(whole)})
    assert table.report["skipped"] == {"half (number-only text)": 5, "whole (number-only text)": 5}
    assert table.report["kept"] == {"half": 5}


def test_same_file_stem_gets_two_names(tmp_path, caplog):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder, n in (("a", 3), ("b", 5)):
        (tmp_path / folder / "pairs.tsv").write_text("name\ttext\n" + "\n".join(f"{folder} term {i}\tdefinition {i}" for i in range(n)) + "\n")
    with caplog.at_level(logging.WARNING, logger="biolord.data.build"):
        table = _build(tmp_path, {"type": "file", "path": str(tmp_path / "a" / "pairs.tsv")}, {"type": "file", "path": str(tmp_path / "b" / "pairs.tsv")})
    assert table.sources == ["pairs", "pairs_2"] and table.report["kept"] == {"pairs": 3, "pairs_2": 5}
    assert "reported as 'pairs_2'" in caplog.text


def test_empty_blank_and_non_utf8_files_are_named_with_the_fix(tmp_path):
    (tmp_path / "empty.tsv").write_bytes(b"")
    with pytest.raises(DataFileError, match=r"empty\.tsv is empty \(0 bytes\)"):
        _build(tmp_path, {"type": "file", "path": str(tmp_path / "empty.tsv")})
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(DataFileError, match=r"blank\.csv holds no header and no rows"):
        _build(tmp_path, {"type": "file", "path": str(tmp_path / "blank.csv")})
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("name\ttext\nheart\tan organ\ncafé au lait spot\ttache café au lait\n".encode("latin-1"))
    offset = latin.read_bytes().index(b"\xe9")
    with pytest.raises(DataFileError, match=rf"latin\.tsv is not UTF-8: byte 0xe9 at byte {offset} \(line 3\).*read_kwargs: \{{encoding"):
        _build(tmp_path, {"type": "file", "path": str(latin)})
    fixed = _build(tmp_path, {"type": "file", "path": str(latin), "read_kwargs": {"encoding": "latin-1"}})  # the fix works
    assert "tache café au lait" in fixed.dataset["text"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"name": "heart", "text": "an organ"}\n{"name": "liver", \n')
    with pytest.raises(DataFileError, match=r"broken\.jsonl could not be read"):
        _build(tmp_path, {"type": "file", "path": str(broken)})


def test_parallel_tsv_quote_and_encoding(tmp_path):
    path = tmp_path / "par.tsv"
    path.write_text('en\txx\tlang\nheart\t"Herz\tde\nliver\tLeber"\tde\nkidney\tNiere\tde\n')
    records, available = _file_records(str(path))
    data = clean(from_records(records, available, str(path)), ["de"])
    assert [r.xx for r in data.rows] == ['"Herz', 'Leber"', "Niere"]  # three rows, none swallowed
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("en\txx\tlang\ncoffee\tcafé\tfr\n".encode("latin-1"))
    with pytest.raises(ParallelDataError, match=r"is not UTF-8: byte 0xe9 at byte \d+ \(line 2\)"):
        _file_records(str(latin))


# ---- weights and data_stats.json ----------------------------------------------------------------
def _cfg(tmp_path, sources, **kw):
    base = dict(sources=sources, val_fraction=0.2, split_seed=0, val_max_concepts=None, max_train_rows=None,
                batch_size_per_device=2, num_workers=0, cache_dir=str(tmp_path / "cache"))
    return OmegaConf.create({**base, **kw})


def _tsv(tmp_path, name: str, n: int, long_every: int = 0) -> str:
    words = "a rare disease of the heart with pain and fever"
    lines = [f"{name}{i}\t{name} term {i}\t" + (" ".join([words] * 20) if long_every and i % long_every == 0 else f"{words} {i}") for i in range(n)]
    path = tmp_path / f"{name}.tsv"
    path.write_text("concept_id\tname\ttext\n" + "\n".join(lines) + "\n")
    return str(path)


def test_negative_or_non_number_weight_is_an_error_before_reading(tmp_path, tiny_encoder):
    sources = [{"type": "file", "path": str(tmp_path / "not_read.tsv"), "weight": -1}, {"type": "file", "path": _tsv(tmp_path, "b", 10), "weight": 3}]
    dm = PairDataModule(_cfg(tmp_path, sources), tiny_encoder.tokenizer, 32)
    with pytest.raises(ValueError, match=r"data.sources\[0\] \(not_read\) has weight=-1; .*give a number >= 0"):
        dm.setup()  # the first file does not exist: the weight is checked before anything is read
    sources[0]["weight"] = "lots"
    with pytest.raises(ValueError, match=r"weight='lots'"):
        PairDataModule(_cfg(tmp_path, sources), tiny_encoder.tokenizer, 32).setup()
    sources[0]["weight"], sources[1]["weight"] = 0, 0
    with pytest.raises(ValueError, match="every data.sources weight is 0"):
        PairDataModule(_cfg(tmp_path, sources), tiny_encoder.tokenizer, 32).setup()


def test_weight_zero_source_is_logged_unused_and_long_texts_counted_truncated(tmp_path, tiny_encoder, caplog):
    sources = [
        {"type": "file", "path": _tsv(tmp_path, "used", 40, long_every=4), "weight": 1},
        {"type": "file", "path": _tsv(tmp_path, "idle", 30), "weight": 0},
    ]
    out = tmp_path / "run"
    dm = PairDataModule(_cfg(tmp_path, sources), tiny_encoder.tokenizer, 32, str(out))
    with caplog.at_level(logging.WARNING, logger="biolord.data.datamodule"):
        dm.setup()
    stats = json.loads((out / "data_stats.json").read_text())
    idle_train = stats["unused_sources"]["idle"]
    assert 0 < idle_train < 30 and "data.sources[1] (idle) has weight 0" in caplog.text
    source_of = dm.table.column("source_id")[dm.train_indices]
    assert (source_of == 0).all() and stats["train_rows"] == len(dm.train_indices)  # never sampled, not counted
    assert stats["truncated"]["max_tokens"] == 32
    assert stats["truncated"]["text"] == {"used": 10, "idle": 0}  # the 10 long definitions, exactly
    assert stats["truncated"]["name"] == {"used": 0, "idle": 0}
