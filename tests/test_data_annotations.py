"""HPO disease -> phenotype annotations as description rows (biolord.data.annotations)."""

from collections import Counter

import pytest

from biolord.data.annotations import annotation_rows, frequency

OBO = """format-version: 1.2

[Term]
id: HP:1
name: Arachnodactyly

[Term]
id: HP:2
name: Tall stature

[Term]
id: HP:3
name: Ectopia lentis

[Term]
id: HP:4
name: Myopia
"""
HEADER = "#description: test\ndatabase_id\tdisease_name\tqualifier\thpo_id\treference\tevidence\tonset\tfrequency\tsex\tmodifier\taspect\tbiocuration\n"


def _line(disease, name, hpo, freq="", qualifier="", aspect="P"):
    return f"{disease}\t{name}\t{qualifier}\t{hpo}\tPMID:1\tPCS\t\t{freq}\t\t\t{aspect}\tx\n"


@pytest.fixture
def files(tmp_path):
    obo = tmp_path / "hp.obo"
    obo.write_text(OBO)
    hpoa = tmp_path / "phenotype.hpoa"
    hpoa.write_text(HEADER + "".join([
        _line("OMIM:1", "Marfan syndrome", "HP:4", "HP:0040283"),       # occasional: last
        _line("OMIM:1", "Marfan syndrome", "HP:1", "HP:0040281"),       # very frequent: first
        _line("OMIM:1", "Marfan syndrome", "HP:2", "3/4"),
        _line("OMIM:1", "Marfan syndrome", "HP:3", "", qualifier="NOT"),  # counted, left out
        _line("OMIM:1", "Marfan syndrome", "HP:0000006", aspect="I"),    # inheritance: counted, left out
        _line("OMIM:2", "Other disease", "HP:3", "HP:0040285"),         # excluded (0 %): no row at all
        _line("OMIM:3", "Third disease", "HP:99", "1/2"),               # not in the OBO file: counted
    ]))
    return hpoa, obo


def test_rows_rank_features_by_frequency_and_count_what_is_left_out(files):
    hpoa, obo = files
    stats = Counter()
    rows = list(annotation_rows({"type": "hpo_annotations", "path": str(hpoa), "obo": str(obo)}, stats, Counter()))
    assert rows == [{"concept_id": "OMIM:1", "name": "Marfan syndrome",
                     "text": "Marfan syndrome is characterized by arachnodactyly, tall stature and myopia.",
                     "kind": "description", "source": "hpo_annotations"}]
    assert stats == Counter({"NOT annotation": 1, "annotation not a phenotypic abnormality (onset, inheritance, ...)": 1,
                             "feature excluded (0%)": 1, "feature id not in hp.obo (obsolete)": 1})


def test_long_feature_lists_become_several_rows(files):
    hpoa, obo = files
    entry = {"type": "hpo_annotations", "path": str(hpoa), "obo": str(obo), "features_per_row": 2, "max_rows_per_disease": 5}
    texts = [r["text"] for r in annotation_rows(entry, Counter(), Counter())]
    assert texts == ["Marfan syndrome is characterized by arachnodactyly and tall stature.",
                     "Marfan syndrome is characterized by myopia."]
    one = [r["text"] for r in annotation_rows({**entry, "max_rows_per_disease": 1}, Counter(), Counter())]
    assert one == texts[:1]


def test_frequency_forms():
    assert frequency("HP:0040281") == 0.9 and frequency("3/4") == 0.75 and frequency("45%") == 0.45
    assert frequency("") == 0.5 and frequency("1/0") is None and frequency("often") is None


def test_bad_files_name_the_file(tmp_path, files):
    with pytest.raises(FileNotFoundError, match="phenotype.hpoa file"):
        list(annotation_rows({"path": str(tmp_path / "missing.hpoa")}, Counter(), Counter()))
    bad = tmp_path / "bad.hpoa"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not an HPO annotation file"):
        list(annotation_rows({"path": str(bad), "obo": str(files[1])}, Counter(), Counter()))
    with pytest.raises(ValueError, match="must be >= 1"):
        list(annotation_rows({"path": str(files[0]), "features_per_row": 0}, Counter(), Counter()))


def test_a_build_parses_an_obo_file_once_for_all_its_sources(files, tmp_path, monkeypatch):
    """Two ontology sources and the annotations read one OBO file (as the default data reads hp.obo):
    one parse, and each source's rows and counts are what a parse of its own gives."""
    from biolord.data import ontology
    from biolord.data.build import load_or_build

    hpoa, obo = files
    obo.write_text(OBO.replace("format-version: 1.2\n", "") + "\n[Term]\nid: HP:5\nname: Old\nis_obsolete: true\n")
    sources = [{"type": "obo", "path": str(obo), "kinds": ["synonym", "description"], "name": "a"},
               {"type": "obo", "path": str(obo), "name": "b"},
               {"type": "hpo_annotations", "path": str(hpoa), "obo": str(obo)}]
    alone = [load_or_build([entry], 0, tmp_path / f"alone{i}") for i, entry in enumerate(sources)]
    parses = []
    parse = ontology.obo_concepts
    monkeypatch.setattr(ontology, "obo_concepts", lambda *a, **k: parses.append(a[0]) or parse(*a, **k))
    table = load_or_build(sources, 0, tmp_path / "together")
    assert parses == [str(obo)]
    for name, one in zip(table.sources, alone):
        assert table.report["read_leniently"][name] == one.report["read_leniently"][one.sources[0]]
        assert table.report["terms_excluded"][name] == one.report["terms_excluded"][one.sources[0]]
    assert table.report["read_leniently"]["a"] == {"no header (format-version 1.2 assumed)": 1}
    assert table.report["read_leniently"][table.sources[2]] == {"no header (format-version 1.2 assumed)": 1}
    assert table.report["terms_excluded"]["b"]["obsolete"] == 1
    rows = lambda t: sorted((r["concept_id"], r["name"], r["text"], r["kind"]) for r in t.dataset.to_list())
    assert rows(table) == sorted(sum((rows(one) for one in alone), []))


def test_a_build_reads_a_packaged_ontology_once_for_all_its_sources(tmp_path, monkeypatch):
    """The default data reads MONDO twice (definitions; synonyms and descriptions): one read per build,
    and each source's rows are what a build of its own gives (HsapDv here: 239 concepts, fast)."""
    from biolord.data import ontology
    from biolord.data.build import load_or_build

    sources = [{"type": "cellxgene", "ontology": "HsapDv", "kinds": ["definition"], "name": "d"},
               {"type": "cellxgene", "ontology": "HsapDv", "kinds": ["synonym", "description"], "name": "g"}]
    alone = [load_or_build([entry], 0, tmp_path / f"alone{i}") for i, entry in enumerate(sources)]
    reads = []
    read = ontology.cellxgene_concepts
    monkeypatch.setattr(ontology, "cellxgene_concepts", lambda *a, **k: reads.append(a[0]) or read(*a, **k))
    table = load_or_build(sources, 0, tmp_path / "together")
    assert reads == ["HsapDv"]
    rows = lambda t: sorted((r["concept_id"], r["name"], r["text"], r["kind"]) for r in t.dataset.to_list())
    assert rows(table) == sorted(sum((rows(one) for one in alone), [])) and len(rows(table)) > 239
