"""Deterministic held-out split *by concept*: no concept has rows on both sides.

A concept is held out when a salted hash of its id falls below ``fraction``: the decision depends
on the id alone, so it is stable across runs, machines, ranks and data versions (a concept added to
the ontology does not move any other concept across the split).
"""

from __future__ import annotations

import hashlib


def concept_unit(concept_id: str, seed: int) -> float:
    """The concept's position in [0, 1) under ``seed``: the held-out split and its subsets."""
    digest = hashlib.blake2b(f"{seed}:{concept_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_held_out(concept_id: str, fraction: float, seed: int = 0) -> bool:
    return concept_unit(concept_id, seed) < fraction


def concept_key(concept_id: str) -> int:
    """A stable signed 64-bit integer for a concept id, comparable across ranks (loss masking)."""
    digest = hashlib.blake2b(concept_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
