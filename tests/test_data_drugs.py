"""Drug names as BioLORD rows (biolord.data.drugs): brands <-> generic, ChEBI definition, MeSH class."""

import bz2
import importlib.util
import os
import pickle
import sys
from collections import Counter

import pytest

from biolord.data import drugs
from biolord.data.sources import source_rows

DICTIONARY = {
    "drug_variant_to_canonical": {
        "diltiazem": ["diltiazem"], "cardizem": ["diltiazem"], "tiazac": ["diltiazem"], "cartia": ["diltiazem"],
        "benzazepines": ["benzazepines"],
        "paraoxon": ["paraoxon"], "fosfakol": ["paraoxon"],
    },
    "drug_canonical_to_data": {
        "diltiazem": {"name": "Diltiazem", "drugbank_id": "DB00343", "medline_plus_id": "a684027",
                      "mesh_tree": ["D03.633.100.079.150"]},
        "benzazepines": {"name": "Benzazepines", "mesh_id": "D001549", "mesh_tree": ["D03.633.100.079"],
                         "wikipedia_url": "https://en.wikipedia.org/wiki/Benzazepine"},
        "paraoxon": {"name": "Paraoxon", "mesh_id": "D010261"},  # a chemical without a clinical page
    },
    "drug_variant_to_variant_data": {},
}


def _write(path, obj, compress=True):
    data = pickle.dumps(obj)
    path.write_bytes(bz2.compress(data) if compress else data)
    return path


def _rows(path, **entry):
    stats = Counter()
    rows = list(source_rows({"type": "drugs", "path": str(path), "kinds": ["synonym", "description"], **entry},
                            stats, Counter()))
    return rows, stats


def test_clinical_drugs_give_brand_synonyms_and_their_mesh_class(tmp_path):
    rows, stats = _rows(_write(tmp_path / "d.pkl.bz2", DICTIONARY))
    diltiazem = [(r["name"], r["text"], r["kind"]) for r in rows if r["concept_id"] == "drugbank:DB00343"]
    assert diltiazem == [
        ("Diltiazem", "cardizem", "synonym"), ("Diltiazem", "tiazac", "synonym"), ("Diltiazem", "cartia", "synonym"),
        *[(name, "Diltiazem is a benzazepines.", "description") for name in ("Diltiazem", "cardizem", "tiazac", "cartia")],
    ]
    assert {r["source"] for r in rows} == {"drugs"}
    # paraoxon has no MedlinePlus / NHS / Wikipedia page: left out under the default subset, and counted
    assert not any(r["concept_id"] == "mesh:D010261" for r in rows)
    assert stats["drug without a MedlinePlus, NHS or Wikipedia page (subset: clinical)"] == 1
    assert stats["drugs with a MeSH class"] == 1


def test_subset_all_and_max_synonyms(tmp_path):
    path = _write(tmp_path / "d.pkl.bz2", DICTIONARY)
    rows, stats = _rows(path, subset="all", max_synonyms=1)
    assert ("Paraoxon", "fosfakol") in {(r["name"], r["text"]) for r in rows}
    assert [r["text"] for r in rows if r["kind"] == "synonym" and r["name"] == "Diltiazem"] == ["cardizem"]
    assert stats["drug names beyond max_synonyms=1"] == 2
    with pytest.raises(ValueError, match="subset='every'"):
        _rows(path, subset="every")
    with pytest.raises(ValueError, match="max_synonyms=-1"):
        _rows(path, max_synonyms=-1)


def test_a_brand_is_paired_with_the_chebi_definition_of_its_drug(tmp_path):
    concepts = drugs.drug_concepts(DICTIONARY, "clinical", 8, {"diltiazem": "A calcium-channel blocker."}, Counter())
    rows = [r for c in concepts for r in drugs.ontology.concept_rows(c, "drugs", ["definition"])]
    assert {(r["name"], r["text"]) for r in rows if r["concept_id"] == "drugbank:DB00343"} == {
        (name, "A calcium-channel blocker.") for name in ("Diltiazem", "cardizem", "tiazac", "cartia")}


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = _write(tmp_path / "evil.pkl.bz2", {"drug_variant_to_canonical": Payload()})
    with pytest.raises(ValueError, match="only plain containers"):
        _rows(path)
    assert not marker.exists()


def test_bad_dictionaries_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="drug dictionary not found"):
        _rows(tmp_path / "missing.pkl.bz2")
    with pytest.raises(ValueError, match="a dict with"):
        _rows(_write(tmp_path / "list.pkl", [1, 2], compress=False))
    (tmp_path / "junk.bz2").write_bytes(b"BZh9 not bz2 at all")
    with pytest.raises(ValueError, match="not a drug-named-entity-recognition dictionary"):
        _rows(tmp_path / "junk.bz2")


def test_the_packaged_dictionary_is_found_without_importing_the_package():
    if importlib.util.find_spec(drugs.PACKAGE) is None:
        pytest.skip("drug-named-entity-recognition is not installed")
    sys.modules.pop(drugs.PACKAGE, None)
    path = drugs.dictionary_path()
    assert path.name == drugs.FILE and path.is_file()
    assert drugs.PACKAGE not in sys.modules  # its import would unpickle the file with plain pickle
    # the shipped file holds only what the plain reader builds (a new release with globals would fail here)
    table = drugs.load_dictionary(path)
    assert len(table["drug_canonical_to_data"]) > 10_000 and table["drug_variant_to_canonical"]["cardizem"] == ["diltiazem"]
