"""Tabular sources: TSV / CSV / JSONL / Parquet / text files and Hugging Face datasets -> raw rows.

Both go through ``datasets.load_dataset`` (local files by extension, hub names or local dataset
folders as given), iterated as a stream so that tens of millions of rows never sit in a Python list.
A column mapping (``columns: {concept_id: ..., name: ..., text: ..., kind: ...}``) names the
columns; without one, common names are tried and a missing column is an error listing the
columns present. ``format: agct`` parses the single ``text`` column of the AGCT dataset
(``"<concept name>" refers to <definition>``); rows that do not parse are counted, not dropped silently.

These files stream through ``datasets`` (the small exact files, benchmarks and parallel names, go
through ``data/delimited.py``, whose ``dialect`` this reader shares). Quotes cannot merge rows
silently: a TSV is read with quoting off (the TSV convention: a field holds
no tab and no line break, so a text that starts with ``"`` stays one text; ``read_kwargs: {quoting: 0}``
turns CSV quoting back on), and a CSV / quoted-TSV row whose name or text holds a line break (a
stray quote swallows the rows that follow it) is skipped and counted. A file that cannot be read
(empty, not UTF-8, unbalanced quotes, a broken JSON line) is an error naming the file, the line or
byte where known, and the fix.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from biolord.data.delimited import QUOTING, dialect, first_bad_utf8

log = logging.getLogger(__name__)

# Defaults tried in order when the config names no column (BioLORD-Dataset's column names are not
# confirmed offline: these cover its documented layout and common alternatives).
CANDIDATES = {
    "concept_id": ("concept_id", "cui", "id", "concept"),
    "name": ("name", "concept_name", "term", "label", "anchor", "sentence1"),
    "text": ("text", "definition", "description", "positive", "sentence2"),
    "kind": ("kind", "type"),
    "group": ("group", "parent"),  # optional: the concept's family, for data.sibling_clusters
}
EXTENSIONS = {".tsv": "csv", ".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text"}
LINE_BREAK = "line break inside a field (a stray quote?)"
AGCT_PATTERN = re.compile(r'^\s*"(?P<name>[^"]+)"\s+refers to\s+(?P<text>.+?)\s*$', re.DOTALL)


class ColumnError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class DataFileError(ValueError):
    """A data file that cannot be read; the message names the file, the line or byte, and the fix."""


def load_stream(entry: dict):
    """An iterable ``datasets`` dataset for a ``file`` or ``hf`` source entry."""
    import datasets

    split = entry.get("split", "train")
    if entry["type"] == "file":
        path = Path(str(entry.get("path", "")))
        if not entry.get("path") or not path.exists():
            raise FileNotFoundError(f"data file not found: path={entry.get('path')!r} in data.sources; give an existing file")
        if path.is_file() and path.stat().st_size == 0:
            raise DataFileError(f"data file {path} is empty (0 bytes); give a file with a header row and data rows, or remove it from data.sources")
        builder, kwargs = read_options(entry)
        return datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True, **kwargs)
    kwargs = {k: entry[k] for k in ("data_files", "data_dir", "revision") if entry.get(k) is not None}
    if entry.get("config") is not None:
        kwargs["name"] = entry["config"]  # the dataset's configuration name
    path = entry.get("path")
    if not path:
        raise ValueError("data source of type 'hf' needs 'path' (a hub name, a local folder or a builder such as 'csv')")
    if Path(str(path)).is_dir() and (Path(str(path)) / "dataset_info.json").exists():
        # a folder written by Dataset.save_to_disk: memory-mapped, iterated without loading it
        return datasets.load_from_disk(str(path)).to_iterable_dataset()
    return datasets.load_dataset(path, split=split, streaming=True, **kwargs)


def read_options(entry: dict) -> tuple[str, dict]:
    """(``datasets`` builder, its keyword arguments) of a ``file`` source: TSV with quoting off, then ``read_kwargs``."""
    path = Path(str(entry.get("path", "")))
    builder = entry.get("format_builder") or EXTENSIONS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"cannot tell the format of {path} from its extension; use one of {sorted(EXTENSIONS)}")
    found = dialect(path) if builder == "csv" else None  # the TSV / CSV convention shared with data/delimited.py
    kwargs = {"delimiter": found[0], "quoting": QUOTING[found[1]]} if found else {}
    kwargs.update(entry.get("read_kwargs") or {})  # e.g. {encoding: latin-1}, {quotechar: "'"}: passed to datasets
    return builder, kwargs


def _quoted_csv(entry: dict) -> bool:
    """A delimited file read with quoting on, where a stray quote can swallow the rows after it."""
    if entry["type"] != "file":
        return False
    builder, kwargs = read_options(entry)
    return builder == "csv" and int(kwargs.get("quoting", csv.QUOTE_MINIMAL)) != csv.QUOTE_NONE


def resolve_columns(available: Iterable[str], mapping: dict | None, where: str) -> dict:
    """Map our fields to the table's columns; a missing one is an error listing what is there."""
    available = list(available)
    mapping = dict(mapping or {})
    resolved = {}
    for field, candidates in CANDIDATES.items():
        if field in mapping and mapping[field] is not None:
            column = mapping[field]
            if column not in available:
                raise ColumnError(
                    f"column {column!r} (for {field}) not found in {where}; available: {available}. "
                    f"Set data.sources[...].columns.{field} to one of them"
                )
            resolved[field] = column
            continue
        found = next((c for c in candidates if c in available), None)
        if found is not None:
            resolved[field] = found
        elif field in ("name", "text"):  # no id column: a concept is its name
            raise ColumnError(
                f"no {field} column in {where}: tried {list(candidates)}; available: {available}. "
                f"Name it with data.sources[...].columns.{field}=<column>"
            )
    return resolved


def table_rows(entry: dict, stats: Counter) -> Iterator[dict]:
    """Rows ``(concept_id, name, text, kind, source)`` of a file / HF source (uncleaned)."""
    stream = load_stream(entry)
    where = f"{entry['type']} source {entry.get('path')}"
    source = entry.get("name") or Path(str(entry.get("path"))).name.split(".")[0].lower() or entry["type"]
    kind_default = entry.get("kind", "definition")
    limit = entry.get("max_rows")
    fmt = entry.get("format", "pairs")
    columns = None
    quoted_csv, warned = _quoted_csv(entry), False
    for i, record in enumerate(_readable(stream, entry)):
        if limit is not None and i >= int(limit):
            break
        if fmt == "agct":
            if columns is None:
                columns = {"text": (entry.get("columns") or {}).get("text", "text")}
                if columns["text"] not in record:
                    raise ColumnError(
                        f"column {columns['text']!r} not found in {where}; available: {list(record.keys())}. "
                        "AGCT rows need one text column; set data.sources[...].columns.text"
                    )
            parsed = parse_agct(record.get(columns["text"]))
            if parsed is None:
                stats["unparseable AGCT row"] += 1
                continue
            name, text = parsed
            yield {"concept_id": f"{source}:{name.casefold()}", "name": name, "text": text, "kind": kind_default, "source": source}
            continue
        if columns is None:
            columns = resolve_columns(record.keys(), entry.get("columns"), where=where)
        name, text = record.get(columns["name"]), record.get(columns["text"])
        if "concept_id" in columns:
            concept_id = record.get(columns["concept_id"])
            concept_id = None if concept_id is None else str(concept_id)
        else:  # no id column: a concept is its (case-folded) name
            concept_id = f"{source}:{name.casefold()}" if isinstance(name, str) else None
        kind = record.get(columns["kind"]) if "kind" in columns else kind_default
        row = {"concept_id": concept_id, "name": name, "text": text, "kind": kind, "source": source}
        if "group" in columns:
            row["group"] = record.get(columns["group"])
        if quoted_csv and any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in (name, text)):
            if not warned:
                log.warning(
                    "%s: record %d holds a line break inside a field (a stray quote swallows the rows after it): skipped "
                    "and counted. Fix the quote, or read quotes as text with read_kwargs: {quoting: 3}", where, i + 1,
                )
                warned = True
            row["skip"] = LINE_BREAK  # counted by clean_rows with the other skipped rows
        yield row
    if columns is None:
        stats["empty source"] += 1


def _readable(stream, entry: dict):
    """The records of ``stream``; a reading error becomes a ``DataFileError`` naming the file and the fix."""
    import pandas as pd
    import pyarrow as pa

    path = entry.get("path")
    try:
        yield from stream
    except UnicodeDecodeError as err:
        if entry["type"] != "file":
            raise
        raise DataFileError(_decode_message(Path(str(path)), err)) from None
    except pd.errors.EmptyDataError:
        raise DataFileError(
            f"data file {path} holds no header and no rows (only blank lines); give a file with a header row and data "
            "rows, or remove it from data.sources"
        ) from None
    except pd.errors.ParserError as err:
        fix = (
            "A quote that is never closed runs to the end of the file: fix it, or read quotes as text with "
            "data.sources[...].read_kwargs: {quoting: 3}"
            if "EOF inside string" in str(err)
            else "Check that line's delimiter and number of fields (read_kwargs: {delimiter: ...} names the delimiter)"
        )
        raise DataFileError(f"data file {path} could not be read: {str(err).strip()}. {fix}") from None
    except pa.ArrowInvalid as err:
        fix = "Fix that line: one JSON object per line" if "JSON" in str(err) else "Check the file, or write it again"
        raise DataFileError(f"data file {path} could not be read: {str(err).strip()}. {fix}") from None


def _decode_message(path: Path, err: UnicodeDecodeError) -> str:
    return (
        f"data file {path} is not UTF-8{first_bad_utf8(path)} ({err.reason}). Give its encoding with "
        "data.sources[...].read_kwargs: {encoding: <encoding>} (e.g. latin-1 or cp1252), or re-save the file as UTF-8"
    )


def parse_agct(value) -> tuple[str, str] | None:
    """``"Wilson disease" refers to a rare ...`` -> ("Wilson disease", "a rare ..."); None if it does not parse."""
    if not isinstance(value, str):
        return None
    match = AGCT_PATTERN.match(value)
    if match is None:
        return None
    return match.group("name").strip(), match.group("text").strip()
