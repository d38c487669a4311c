"""Rows, the common currency of every data source: ``(concept_id, name, text, kind, source)``.

A row may also carry ``group``: the concept's family (the ontologies give its first is_a parent),
which sibling-cluster batches read (``data.sibling_clusters``, ``biolord.data.sampler``); None when
the source has none.

``kind`` is one of ``definition`` (a name of the concept <-> its definition), ``synonym`` (the
preferred name <-> another name), ``description`` (a name <-> a sentence verbalised from the
knowledge graph) and ``abbreviation`` (the preferred name <-> a synonym that is an abbreviation: a
subset of the synonym pairs, opt-in, so that a source of them can be weighted up). Cleaning never
drops silently: every skipped row is counted under a reason and the counts are reported (logged at
start and written to the run folder).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

KINDS = ("definition", "synonym", "description", "abbreviation")
# the kinds a source gives when its entry names none (abbreviation pairs repeat synonym pairs)
DEFAULT_KINDS = ("definition", "synonym", "description")
# kinds whose pairs repeat another kind's on purpose (to weight them up): de-duplicated among themselves only
REPEAT_KINDS = ("abbreviation",)


def pair_identity(row: dict) -> str:
    """What makes two rows the same pair: concept, name and text, and the kind for ``REPEAT_KINDS``."""
    identity = f"{row['concept_id']}\x1f{row['name']}\x1f{row['text']}"
    return f"{identity}\x1f{row['kind']}" if row["kind"] in REPEAT_KINDS else identity


# "1000", "-3.5", "1,200", "2e-3", "45%": no name or text of a concept (ids may be numbers)
NUMBER = re.compile(r"[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?")
COLUMNS = ("concept_id", "name", "text", "kind", "source")


class NoUsableRowsError(ValueError):
    """A data source produced no usable row."""


@dataclass
class CleaningReport:
    """Rows kept and rows skipped, per source and per reason."""

    kept: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # keys: (source, reason)

    def summary(self) -> dict:
        return {
            "kept": dict(self.kept),
            "skipped": {f"{src} ({reason})": n for (src, reason), n in sorted(self.skipped.items())},
        }


def _bad_text(value, column: str) -> str | None:
    if value is None:
        return "missing"
    if column != "concept_id" and (
        (isinstance(value, (int, float)) and not isinstance(value, bool)) or (isinstance(value, str) and NUMBER.fullmatch(value.strip()))
    ):
        # the same reason whether the reader typed the column as numbers (all numbers) or as strings (some)
        return "number-only"
    if not isinstance(value, str):
        return f"non-string ({type(value).__name__})"
    if not value.strip():
        return "empty"
    return None


def clean_rows(rows: Iterable[dict], report: CleaningReport, dedup: bool = True) -> Iterator[dict]:
    """Yield valid, whitespace-normalised rows; count the others in ``report``.

    ``dedup`` removes exact duplicates with an in-memory set (small inputs); the Arrow build
    de-duplicates with 64-bit hashes and numpy instead (``biolord.data.build``).
    """
    seen: set[tuple] = set()
    for row in rows:
        source = row.get("source") or "unknown"
        reason = row.get("skip")  # a reason the source found (a line break inside a CSV field, ...)
        for column in ("concept_id", "name", "text") if reason is None else ():
            bad = _bad_text(row.get(column), column)
            if bad:
                reason = f"{bad} {column}"
                break
        kind = row.get("kind")
        if reason is None and kind not in KINDS:
            reason = f"unknown kind {kind!r}"
        if reason is None:
            name, text = " ".join(row["name"].split()), " ".join(row["text"].split())
            if name.casefold() == text.casefold():
                reason = "name equals text"
            elif dedup:  # the Arrow build passes dedup=False and hashes pair_identity itself
                key = pair_identity({**row, "name": name, "text": text})
                if key in seen:
                    reason = "duplicate pair"
                else:
                    seen.add(key)
        if reason is not None:
            report.skipped[(source, reason)] += 1
            continue
        report.kept[source] += 1
        group = row.get("group")
        yield {"concept_id": str(row["concept_id"]), "name": name, "text": text, "kind": kind, "source": source,
               "group": None if group is None or not str(group).strip() else str(group)}
