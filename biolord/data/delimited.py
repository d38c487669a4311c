"""The one reader of delimited text files (TSV / CSV) read whole: benchmark files, parallel names, HPO annotations.

These files are exact: every field stays the string it is in the file (no type guessing: an id
``0012`` stays ``0012``, a name ``NA`` stays ``NA``) and every row keeps its line number for the
error messages. ``read_delimited`` holds the rows; ``stream_delimited`` yields them one at a time,
for a file of a fixed layout too large to hold (HPO's annotations). Training sources, which can hold tens of millions of rows (and Parquet or
JSON), stream through ``datasets`` instead (``data/tables.py``) and take their dialect from the
same ``dialect`` function: a ``.tsv`` is read with quoting off (the TSV convention: a field holds no
tab and no line break, so a stray quote cannot swallow the rows after it), a ``.csv`` with quotes.

Every reading error is raised as the caller's error class (``error=``: ``BenchmarkFileError``,
``ParallelDataError``), names the file (as the caller calls it: ``what=``) and says the fix.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}
DIALECTS = {".tsv": ("\t", "none"), ".csv": (",", "minimal")}  # extension -> (delimiter, quoting)


def dialect(path: str | Path) -> tuple[str, str] | None:
    """(delimiter, quoting) a file of this extension is read with; None for other extensions."""
    return DIALECTS.get(Path(str(path)).suffix.lower())


@dataclass
class Table:
    """Rows of a delimited file. ``columns`` are the header names, or ``None`` without a header."""

    path: Path
    columns: list[str] | None
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # (line number, fields)
    error: type[Exception] = ValueError

    def column_index(self, column, role: str) -> int:
        """Index of a column given by header name or by 0-based position."""
        if isinstance(column, int) or (isinstance(column, str) and column.isdigit() and self.columns is None):
            return int(column)
        if self.columns is None:
            raise self.error(
                f"{role}={column!r} names a column, but {self.path} is read without a header (header=false); "
                "give a 0-based column number or set header=true"
            )
        if column not in self.columns:
            raise self.error(
                f"column {column!r} ({role}) not found in {self.path}; available: {self.columns}. "
                f"Set {role}= to one of them (or a 0-based column number); if that first line is data, not "
                "column names, the file has no header: set header=false and give 0-based column numbers"
            )
        return self.columns.index(column)

    def records(self) -> list[dict[str, str]]:
        """One dict per row, keyed by the header (a missing trailing field: absent)."""
        if self.columns is None:
            raise self.error(f"{self.path} is read without a header: its rows have no column names")
        return [dict(zip(self.columns, fields)) for _, fields in self.rows]


def read_delimited(path: str | Path, delimiter: str = "\t", quoting: str = "minimal", header: bool = True,
                   error: type[Exception] = ValueError, what: str | None = None, comment: str | None = None) -> Table:
    """Read a CSV / TSV file with the stdlib ``csv`` reader (quoting: ``minimal`` or ``none``).

    Rows whose fields are all blank are left out; ``what`` names the file in errors (default: its path);
    lines that start with ``comment`` are skipped (line numbers stay the file's).
    """
    columns, rows = stream_delimited(path, delimiter, quoting, header, error, what, comment)
    table = Table(Path(path), columns, list(rows), error)
    if header and not table.rows:
        raise error(f"{what or path} has a header but no data rows")
    return table


def stream_delimited(path: str | Path, delimiter: str = "\t", quoting: str = "minimal", header: bool = True,
                     error: type[Exception] = ValueError, what: str | None = None,
                     comment: str | None = None) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """``read_delimited``'s reading, one row at a time: (the header or ``None``, an iterator of
    (line number, fields)). For a file too large to hold as lists (HPO's ``phenotype.hpoa``: 270,000
    rows, about 200 MB as Python strings). An empty file is refused here; a reading error (not
    UTF-8) is raised by the iterator when it reaches the bad line.
    """
    path = Path(path)
    what = what or str(path)
    if quoting not in QUOTING:
        raise error(f"quoting={quoting!r} for {what} is unknown; choose one of {sorted(QUOTING)}")
    rows = _rows(path, delimiter, QUOTING[quoting], comment, error, what)
    first = next(rows, None)
    if first is None:
        raise error(f"{what} is empty; give a file with at least one row")
    if not header:
        return None, itertools.chain([first], rows)
    return [c.strip() for c in first[1]], rows


def _rows(path: Path, delimiter: str, quoting: int, comment: str | None, error: type[Exception],
          what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number of the row's last line, fields) of each row that is not blank."""
    line = 0

    def kept_lines(f):
        nonlocal line  # the file's line number, comment lines counted, for the rows' numbers
        for line, text in enumerate(f, 1):
            if comment is None or not text.startswith(comment):
                yield text

    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(kept_lines(f), delimiter=delimiter, quoting=quoting):
                if row and any(cell.strip() for cell in row):
                    yield line, row
    except UnicodeDecodeError as err:
        raise error(f"{what} is not UTF-8{first_bad_utf8(path)} ({err.reason}); re-save the file as UTF-8") from None


def first_bad_utf8(path: Path) -> str:
    """``": byte 0xe9 at byte 31 (line 3)"``: where the first byte that is not UTF-8 sits in the file
    (a reader's own error offset is within a chunk); empty when the whole file decodes."""
    offset, line, carry = 0, 1, b""
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            data = carry + block
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as bad:
                if bad.reason != "unexpected end of data" or bad.start < len(data) - 3:
                    line += data[: bad.start].count(b"\n")
                    return f": byte 0x{data[bad.start]:02x} at byte {offset + bad.start} (line {line})"
                good = bad.start  # a character cut by the block boundary: completed by the next block
            line += data[:good].count(b"\n")
            offset, carry = offset + good, data[good:]
    return f": a cut character at byte {offset} (line {line}, the end of the file)" if carry else ""
