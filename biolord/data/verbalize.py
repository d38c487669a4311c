"""Knowledge-graph facts -> one BioLORD-style description sentence.

BioLORD (Remy et al. 2022, 2023) pairs concept names with short descriptions generated from the
ontology graph, e.g. "Wilson disease is a copper metabolism disorder and an autosomal recessive
disease." This module writes such sentences from a concept's parents and other relations.
"""

from __future__ import annotations

from typing import Sequence

# OBO relation ids / names -> verb phrases; unknown relations fall back to their name with '_' -> ' '.
RELATION_PHRASES = {
    "part_of": "is part of",
    "BFO:0000050": "is part of",
    "has_part": "has part",
    "BFO:0000051": "has part",
    "develops_from": "develops from",
    "RO:0002202": "develops from",
    "located_in": "is located in",
    "RO:0001025": "is located in",
    "disease_has_location": "affects",
    "RO:0004026": "affects",
    "has_modifier": "has modifier",
    "RO:0002573": "has modifier",
    "capable_of": "is capable of",
    "RO:0002215": "is capable of",
}


def article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def lower_first(label: str) -> str:
    """'Abnormality of the eye' -> 'abnormality of the eye'; keeps acronyms ('HIV infection')."""
    if len(label) > 1 and label[0].isupper() and not label[1].isupper() and not label[1].isdigit():
        return label[0].lower() + label[1:]
    return label


def join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def describe(name: str, parents: Sequence[str], relations: Sequence[tuple[str, str]] = (),
             ancestors: Sequence[str] = ()) -> str | None:
    """One sentence per fact group; ``relations`` are (relation id or name, target label) pairs,
    ``ancestors`` the labels further up than the parents ("X is a Y. X is also a Z.").

    Returns None when the concept has no parent and no relation (nothing to say).
    """
    sentences = []
    parents = [lower_first(p) for p in dict.fromkeys(parents) if p]
    if parents:
        sentences.append(f"{name} is " + join([f"{article(p)} {p}" for p in parents]) + ".")
    above = [lower_first(a) for a in dict.fromkeys(ancestors) if a]
    if above:
        sentences.append(f"{name} is also " + join([f"{article(a)} {a}" for a in above]) + ".")
    by_phrase: dict[str, list[str]] = {}
    for relation, target in relations:
        if not target:
            continue
        phrase = RELATION_PHRASES.get(relation, relation.replace("_", " "))
        by_phrase.setdefault(phrase, []).append(lower_first(target))
    for phrase, targets in by_phrase.items():
        sentences.append(f"{name} {phrase} " + join(list(dict.fromkeys(targets))) + ".")
    return " ".join(sentences) if sentences else None
