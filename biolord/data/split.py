"""Deterministic held-out split *by concept*: no concept has rows on both sides.

The one concept hash of the project: a concept's position in [0, 1) is a salted hash of its id
(``concept_unit``), so the decision depends on the id alone and is stable across runs, machines,
ranks and data versions (a concept added to the ontology does not move any other concept across
the split). The contrastive data holds out the concepts below ``val_fraction`` (``held_out``); the
parallel names of multilingual distillation hold out the first ``heldout_concepts`` in this order
(``by_unit``), the same concepts in every language; the scored subset of held-out concepts is the
first ``val_max_concepts`` under the next seed.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np


def concept_unit(concept_id: str, seed: int) -> float:
    """The concept's position in [0, 1) under ``seed``: the held-out split and its subsets."""
    digest = hashlib.blake2b(f"{seed}:{concept_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def held_out(units: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: the rows whose concept is held out, from their ``concept_unit`` (N,) under the split seed."""
    return np.asarray(units) < fraction


def by_unit(concept_ids: Iterable[str], seed: int) -> list[str]:
    """The distinct ids in increasing ``concept_unit`` order: the first k are the k held-out concepts."""
    return sorted(set(concept_ids), key=lambda c: (concept_unit(c, seed), c))


def concept_key(concept_id: str) -> int:
    """A stable signed 64-bit integer for a concept id, comparable across ranks (loss masking)."""
    digest = hashlib.blake2b(concept_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
