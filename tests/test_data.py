import textwrap
from collections import Counter

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from biolord.data.collate import PairCollator
from biolord.data.datamodule import PairDataModule
from biolord.data.ontology import OboSyntaxError, concept_rows, obo_concepts, Concept
from biolord.data.rows import CleaningReport, NoUsableRowsError, clean_rows
from biolord.data.split import concept_key, concept_unit
from biolord.data.verbalize import describe


def test_obo_builder_reads_names_synonyms_definitions_and_relations(tiny_obo):
    stats = Counter()
    concepts = {c.id: c for c in obo_concepts(tiny_obo, stats)}
    assert stats["obsolete"] == 1 and "TST:9999999" not in concepts
    c = concepts["TST:0000005"]
    assert c.label == "skin disorder two"
    assert c.synonyms == ["two skin disorder"]  # EXACT only by default; RELATED excluded
    assert c.definition.startswith("A rare disorder of the skin")
    assert c.parents == ["disease"]
    assert c.relations == [("part_of", "liver disorder one")]
    rows = list(concept_rows(c, "tst", ["description"]))
    assert rows[0]["text"] == "skin disorder two is a disease. skin disorder two is part of liver disorder one."
    related = obo_concepts(tiny_obo, Counter(), synonym_scopes=("EXACT", "RELATED"))
    assert any("skin abnormality two" in x.synonyms for x in related)


def test_concept_rows_have_the_three_kinds():
    c = Concept("X:1", "Wilson disease", ["hepatolenticular degeneration"], "A copper disorder.", ["copper metabolism disorder", "autosomal recessive disease"])
    rows = list(concept_rows(c, "test", ["definition", "synonym", "description"]))
    kinds = Counter(r["kind"] for r in rows)
    assert kinds == {"definition": 2, "synonym": 1, "description": 2}
    desc = next(r["text"] for r in rows if r["kind"] == "description")
    assert desc == "Wilson disease is a copper metabolism disorder and an autosomal recessive disease."


def test_verbalize_relations_and_nothing_to_say():
    assert describe("heart", [], [("part_of", "Cardiovascular system")]) == "heart is part of cardiovascular system."
    assert describe("X", ["HIV infection"]) == "X is a HIV infection."
    assert describe("X", []) is None


def test_bad_rows_are_counted_never_silently_dropped():
    rows = [
        {"concept_id": "A", "name": "heart", "text": "an organ", "kind": "definition", "source": "s"},
        {"concept_id": "A", "name": "heart", "text": "an organ", "kind": "definition", "source": "s"},
        {"concept_id": "B", "name": "", "text": "x", "kind": "definition", "source": "s"},
        {"concept_id": "C", "name": 3.5, "text": "x", "kind": "definition", "source": "s"},
        {"concept_id": "D", "name": "y", "text": None, "kind": "definition", "source": "s"},
        {"concept_id": "E", "name": "Liver", "text": "liver", "kind": "synonym", "source": "s"},
        {"concept_id": "F", "name": "a", "text": "b", "kind": "nonsense", "source": "s"},
    ]
    report = CleaningReport()
    kept = list(clean_rows(rows, report))
    assert len(kept) == 1
    assert report.kept["s"] == 1
    assert report.skipped == Counter({
        ("s", "duplicate pair"): 1,
        ("s", "empty name"): 1,
        ("s", "number-only name"): 1,
        ("s", "missing text"): 1,
        ("s", "name equals text"): 1,
        ("s", "unknown kind 'nonsense'"): 1,
    })
    assert sum(report.skipped.values()) + sum(report.kept.values()) == len(rows)


def test_the_concept_hash_is_pinned():
    """Every split (contrastive held-out concepts, the multilingual held-out codes, the scored subset)
    and the built-rows cache rest on these values: a change of the hash moves concepts across the
    split and makes runs before and after it incomparable, so it must be a deliberate one."""
    assert concept_unit("MONDO:0010200", 0) == 0.5614424092050375
    assert concept_unit("A000", 0) == 0.2946657478699282
    assert concept_unit("MONDO:0010200", 1) != concept_unit("MONDO:0010200", 0)
    assert concept_key("C:1") == concept_key("C:1") != concept_key("C:2")


def test_multilingual_names_hold_out_the_concepts_the_shared_hash_puts_first():
    """The parallel names use the same hash as the contrastive split: the k held-out codes are the
    k with the lowest ``concept_unit``, in every language."""
    from biolord.data.parallel import ParallelRow, split_by_concept

    codes = [f"C{i:03d}" for i in range(40)]
    rows = [ParallelRow(c, lang, f"name {c}", f"{lang} {c}") for c in codes for lang in ("de", "fr")]
    train, held = split_by_concept(rows, heldout_concepts=5, seed=3)
    lowest = sorted(codes, key=lambda c: concept_unit(c, 3))[:5]
    assert {r.concept_id for r in held} == set(lowest)
    assert {(r.concept_id, r.lang) for r in held} == {(c, lang) for c in lowest for lang in ("de", "fr")}
    assert not {r.concept_id for r in train} & set(lowest) and len(train) == 2 * 35


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """Built rows shared by this module's tests (each build is seconds of CPU), inside pytest's tmp folder."""
    return tmp_path_factory.mktemp("data_cache")


def _data_cfg(cache_dir, **kw):
    base = dict(sources=[], val_fraction=0.2, split_seed=0, val_max_concepts=None, max_train_rows=None,
                batch_size_per_device=4, num_workers=0, cache_dir=str(cache_dir))
    base.update(kw)
    return OmegaConf.create(base)


def test_datamodule_splits_by_concept_and_writes_stats(tiny_obo, tiny_encoder, tmp_path, data_cache):
    dm = PairDataModule(_data_cfg(data_cache, sources=[{"type": "obo", "path": str(tiny_obo)}], val_fraction=0.2),
                        tiny_encoder.tokenizer, 32, str(tmp_path))
    dm.setup()
    train_ids = set(dm.table.dataset.select(dm.train_indices.tolist())["concept_id"])
    every_id = set(dm.table.dataset.select(np.flatnonzero(dm.table.keep).tolist())["concept_id"])
    assert train_ids == {c for c in every_id if concept_unit(c, 0) >= 0.2} != every_id  # the split seed's hash decides
    assert set(dm.heldout.concept_ids) <= every_id - train_ids
    assert len(dm.heldout) > 0 and len(dm.heldout.names) == len(dm.heldout.definitions)
    assert (tmp_path / "data_stats.json").exists()
    batch = next(iter(dm.train_dataloader()))
    assert batch["anchor"]["input_ids"].shape[0] == 4 and batch["concept_id"].dtype == torch.long


def test_collator_pads_each_side_separately(tiny_encoder):
    rows = [
        {"concept_id": "A", "name": "eye", "text": "a long text about the eye and the liver and the heart"},
        {"concept_id": "A", "name": "eye defect", "text": "short"},
    ]
    batch = PairCollator(tiny_encoder.tokenizer, 32)(rows)
    assert batch["anchor"]["input_ids"].shape[1] < batch["positive"]["input_ids"].shape[1]
    assert batch["concept_id"][0] == batch["concept_id"][1]


def test_source_without_usable_rows(tmp_path, tiny_encoder):
    empty = tmp_path / "empty.obo"
    empty.write_text("format-version: 1.2\n\n[Term]\nid: X:1\nname: gone\nis_obsolete: true\n")
    dm = PairDataModule(_data_cfg(tmp_path / "c", sources=[{"type": "obo", "path": str(empty)}]), tiny_encoder.tokenizer, 32)
    with pytest.raises(NoUsableRowsError, match="gave no usable row"):
        dm.setup()


def test_batch_larger_than_data(tiny_obo, tiny_encoder, data_cache):
    dm = PairDataModule(_data_cfg(data_cache, sources=[{"type": "obo", "path": str(tiny_obo)}], batch_size_per_device=100000), tiny_encoder.tokenizer, 32)
    with pytest.raises(ValueError, match=r"data.batch_size_per_device=100000 \(x 1 devices\) is larger than the \d+ training rows"):
        dm.setup()


def test_missing_and_broken_obo(tmp_path):
    with pytest.raises(FileNotFoundError, match="OBO file not found"):
        obo_concepts(tmp_path / "nope.obo", Counter())
    bad = tmp_path / "bad.obo"
    bad.write_text("format-version: 1.2\n\n[Term]\nid: X:1\nname: ok\nis_a: \n[Term\nid broken\n")
    with pytest.raises(OboSyntaxError, match="bad.obo"):
        obo_concepts(bad, Counter())


def test_unknown_source_type_and_kind(tiny_encoder, tmp_path):
    dm = PairDataModule(_data_cfg(tmp_path, sources=[{"type": "ftp"}]), tiny_encoder.tokenizer, 32)
    with pytest.raises(ValueError, match="unknown data source type 'ftp'.*available"):
        dm.setup()
    dm = PairDataModule(_data_cfg(tmp_path, sources=[{"type": "hpo", "kinds": ["defs"]}]), tiny_encoder.tokenizer, 32)
    with pytest.raises(ValueError, match="unknown kind 'defs'"):
        dm.setup()


def test_embedded_default_sources_build():
    """The packaged MONDO data (no network): labels, definitions and descriptions come out."""
    pytest.importorskip("cellxgene_ontology_guide")
    from biolord.data.ontology import cellxgene_concepts

    stats = Counter()
    concepts, version = cellxgene_concepts("MONDO", stats)
    assert len(concepts) > 20000 and stats["obsolete"] > 0 and version
    wilson = next(c for c in concepts if c.id == "MONDO:0010200")
    assert wilson.label == "Wilson disease" and wilson.definition and wilson.parents


def test_definitions_lose_their_html_markup_and_each_cleaned_one_is_counted():
    """ChEBI's shipped definitions carry <em>, <sub> and entities; they must not reach the tokenizer."""
    from biolord.data.ontology import plain_text

    lenient = Counter()
    text = "A P2Y<small><sub>12</sub></small> receptor antagonist of <em>o</em>-chlorobenzyl &amp; kin  (the <i>S</i> form)."
    assert plain_text(text, lenient) == "A P2Y12 receptor antagonist of o-chlorobenzyl & kin (the S form)."
    assert plain_text("A plain definition, 3 < 4.", lenient) == "A plain definition, 3 < 4."
    assert plain_text("<p></p>", lenient) is None and plain_text(None, lenient) is None
    assert lenient == Counter({"markup removed from definition": 2})


def test_statistics_measure_long_texts_without_the_indexing_warning_in_their_own_run_folder(tiny_obo, tiny_encoder, caplog,
                                                                                           monkeypatch):
    """``python -m biolord.data`` tokenises whole texts only to measure them: no "Token indices
    sequence length is longer ... indexing errors" warning; its run folder is outputs/data/<time>,
    not a training run's outputs/contrastive/<time>; and every source gets a line with rows and seconds."""
    import copy
    import logging

    from hydra import compose, initialize_config_dir

    from biolord.data.stats import data_statistics
    from tests.conftest import CONF

    tokenizer = copy.deepcopy(tiny_encoder.tokenizer)
    tokenizer.model_max_length = 4  # shorter than every definition of the tiny ontology
    caplog.set_level(logging.INFO, logger="biolord.console")
    monkeypatch.setenv("BIOLORD_PROGRESS", "log")  # log lines even when pytest runs in a terminal (-s)
    data_cfg = _data_cfg(tiny_obo.parent / "cache", sources=[{"type": "obo", "path": str(tiny_obo)}])
    stats = data_statistics(PairDataModule(data_cfg, tokenizer, 32), tokenizer, sample=50)
    assert stats["tokens_per_side"]["text"]["p100"] > tokenizer.model_max_length
    assert "sequence-length-is-longer-than-the-specified-maximum" not in tokenizer.deprecation_warnings
    assert any(r.getMessage().startswith("data: reading tiny: ") and " rows in " in r.getMessage() for r in caplog.records)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="data_stats", overrides=["data=biolord"], return_hydra_config=True)
    assert cfg.hydra.run.dir.startswith("outputs/data/") and cfg.data.sources


def test_rows_carry_their_concepts_first_parent_as_group(tiny_obo, tiny_encoder, tmp_path):
    dm = PairDataModule(_data_cfg(tmp_path / "cache", sources=[{"type": "obo", "path": str(tiny_obo)}], sibling_clusters=4),
                        tiny_encoder.tokenizer, 32)
    dm.setup()
    ids = np.asarray(dm.table.dataset["concept_id"])
    groups, keys = dm.table.column("group_key"), dm.table.column("concept_key")
    children = ids != "TST:0000000"
    assert len(set(groups[children].tolist())) == 1  # every child's parent is "disease"
    assert set(groups[~children].tolist()) == set(keys[~children].tolist())  # the root: a family of its own
    sampler = dm.sampler()
    assert sampler.cluster_size == 4 and len(sampler.group_keys) == len(dm.train_indices)


def test_file_rows_read_an_optional_group_column(tmp_path):
    from biolord.data.tables import table_rows

    path = tmp_path / "pairs.tsv"
    path.write_text("concept_id\tname\ttext\tparent\nA\talpha\tthe first\tgreek\nB\tbeta\tthe second\t\n")
    rows = list(clean_rows(table_rows({"type": "file", "path": str(path)}, Counter()), CleaningReport()))
    assert [r["group"] for r in rows] == ["greek", None]  # an empty cell is no group


def test_description_depth_names_the_ancestors_once_and_rejects_bad_depths(tmp_path):
    """``description_depth: 3`` adds the grandparents and great-grandparents to the description, nearest first,
    each once (a diamond does not repeat one); the default (1) names the parents only."""
    obo = textwrap.dedent("""\
        format-version: 1.2
        ontology: dep

        [Term]
        id: DEP:1
        name: disease

        [Term]
        id: DEP:2
        name: lung disease
        is_a: DEP:1

        [Term]
        id: DEP:3
        name: airway disease
        is_a: DEP:1

        [Term]
        id: DEP:4
        name: bronchial disease
        is_a: DEP:2
        is_a: DEP:3

        [Term]
        id: DEP:5
        name: asthma
        synonym: "bronchial asthma" EXACT []
        is_a: DEP:4
        """)
    from biolord.data.sources import source_rows

    path = tmp_path / "dep.obo"
    path.write_text(obo)

    def texts(**extra):
        rows = source_rows({"type": "obo", "path": str(path), "kinds": ["description"], **extra}, Counter())
        return {(r["name"], r["text"]) for r in rows if r["concept_id"] == "DEP:5"}

    assert texts() == {(n, "asthma is a bronchial disease.") for n in ("asthma", "bronchial asthma")}
    deep = "asthma is a bronchial disease. asthma is also an airway disease, a lung disease and a disease."
    assert texts(description_depth=3) == {(n, deep) for n in ("asthma", "bronchial asthma")}
    for bad in (0, "2", 1.5):
        with pytest.raises(ValueError, match="description_depth"):
            list(source_rows({"type": "obo", "path": str(path), "description_depth": bad}, Counter()))


def test_abbreviation_kind_pairs_the_label_with_its_abbreviations_only():
    from biolord.data.ontology import is_abbreviation

    assert all(is_abbreviation(s) for s in ("DMD", "A-T", "T-PLL", "SCA2", "VFib", "GLUT1DS", "CMS-TA"))
    assert not any(is_abbreviation(s) for s in ("Tinea", "type 2", "A", "dmd", "Wilson disease", "HNPCC syndrome", "ABCDEFGHIJK"))
    c = Concept("X:1", "familial adenomatous polyposis", ["FAP", "adenomatous polyposis coli", "A-P-C"], "A polyposis.")
    rows = list(concept_rows(c, "test", ["abbreviation"]))
    assert [(r["name"], r["text"], r["kind"]) for r in rows] == [
        ("familial adenomatous polyposis", "FAP", "abbreviation"), ("familial adenomatous polyposis", "A-P-C", "abbreviation")]
    # opt-in: a source that names no kinds gives the three BioLORD kinds, not the abbreviation repeats
    from biolord.data.rows import DEFAULT_KINDS

    assert "abbreviation" not in DEFAULT_KINDS


def test_abbreviation_rows_survive_beside_the_same_synonym_pair_and_deduplicate_among_themselves(tmp_path, data_cache):
    """An abbreviation source repeats synonym pairs on purpose, to weight them up: the build's exact
    de-duplication must not drop it as a copy of the synonym rows, yet two abbreviation sources that
    give the same pair keep one."""
    from biolord.data.build import load_or_build

    obo = tmp_path / "abbr.obo"
    obo.write_text(textwrap.dedent("""\
        format-version: 1.2
        ontology: abbr

        [Term]
        id: AB:1
        name: familial adenomatous polyposis
        synonym: "FAP" EXACT []
        synonym: "adenomatous polyposis coli" EXACT []
        """))
    sources = [{"type": "obo", "path": str(obo), "kinds": ["synonym"], "name": "graph"},
               {"type": "obo", "path": str(obo), "kinds": ["abbreviation"], "name": "abbr"},
               {"type": "obo", "path": str(obo), "kinds": ["abbreviation"], "name": "abbr_again"}]
    table = load_or_build(sources, split_seed=0, cache_dir=tmp_path / "cache")
    kept = table.dataset.select(np.flatnonzero(table.keep).tolist())
    assert sorted(zip(kept["kind"], kept["text"])) == [("abbreviation", "FAP"), ("synonym", "FAP"), ("synonym", "adenomatous polyposis coli")]
    assert table.report["skipped"] == {"abbr_again (duplicate pair)": 1}


def test_the_abbreviation_data_config_is_the_default_four_sources_plus_two_abbreviation_sources(tmp_path):
    """``data=embedded_abbreviations`` must stay the embedded default plus abbreviations: the same four
    sources (weights added to keep their by-row-count mix), then one abbreviation source per ontology."""
    from tests.conftest import compose

    default = OmegaConf.to_container(compose([f"paths.output_dir={tmp_path}"]).data.sources)
    abbr = OmegaConf.to_container(compose([f"paths.output_dir={tmp_path}", "data=embedded_abbreviations"]).data.sources)
    assert [{k: v for k, v in s.items() if k != "weight"} for s in abbr[:4]] == default
    assert all(s["weight"] > 0 for s in abbr) and [s["kinds"] for s in abbr[4:]] == [["abbreviation"], ["abbreviation"]]
    share = sum(s["weight"] for s in abbr[4:]) / sum(s["weight"] for s in abbr)
    assert 0.14 < share < 0.16  # the 15 % the config's comment and docs/training.md state
