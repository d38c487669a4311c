"""Rows, the common currency of every data source: ``(concept_id, name, text, kind, source)``.

``kind`` is one of ``definition`` (a name of the concept <-> its definition), ``synonym`` (the
preferred name <-> another name) and ``description`` (a name <-> a sentence verbalised from the
knowledge graph). Cleaning never drops silently: every skipped row is counted under a reason and
the counts are reported (logged at start and written to the run folder).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

KINDS = ("definition", "synonym", "description")
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


def _bad_text(value) -> str | None:
    if value is None:
        return "missing"
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
        reason = None
        for column in ("concept_id", "name", "text"):
            bad = _bad_text(row.get(column))
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
            else:
                key = (row["concept_id"], name, text)
                if dedup and key in seen:
                    reason = "duplicate pair"
                elif dedup:
                    seen.add(key)
        if reason is not None:
            report.skipped[(source, reason)] += 1
            continue
        report.kept[source] += 1
        yield {"concept_id": str(row["concept_id"]), "name": name, "text": text, "kind": kind, "source": source}
