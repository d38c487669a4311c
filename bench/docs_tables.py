"""Measured tables in the docs come from files, never from typing: render them, include them, check them.

Each measured table lives once, in ``docs/results/<name>.md``, written by this script from a bench
output. README.md and docs/*.md include it between markers, byte for byte::

    <!-- table: quality_single -->
    ...the exact content of docs/results/quality_single.md...
    <!-- /table -->

Usage::

    python bench/docs_tables.py quality_single outputs/quality/<time>/quality.md \\
        --note "python bench/quality.py --single"        # render, then refresh every inclusion
    python bench/docs_tables.py throughput throughput.log --table 1 --note "python bench/throughput.py"
    python bench/docs_tables.py --sync                   # refresh every inclusion from docs/results/
    python bench/docs_tables.py --check                  # exit 1 if an inclusion differs (tests/test_docs.py)

A source file that holds only a markdown table is copied as is; a log (stdout of a bench script)
has its table blocks extracted (``--table K`` picks one when there are several). The rendered file
ends with a provenance line: the command that produced the table (``--note``), the source file
and its sha256, and the date. Why: hand-typed figures drifted from what the scripts measure
(issue 14); a check that compares bytes cannot drift.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path("docs/results")
OPEN = re.compile(r"^<!-- table: ([A-Za-z0-9_.-]+) -->$")
CLOSE = "<!-- /table -->"
NAME = re.compile(r"^[A-Za-z0-9_-]+$")
PLACEHOLDER = "(to be measured)\n"


@dataclass
class Block:
    """One inclusion of table ``name`` in ``path``: ``content`` sits between the two marker lines."""

    path: Path
    name: str
    open_line: int  # 0-based index of the opening marker
    close_line: int  # 0-based index of the closing marker
    content: str  # the text between the two marker lines


def pages(root: Path) -> list[Path]:
    """The pages that may include tables: README.md and every docs/**/*.md outside docs/results/."""
    found = [root / "README.md"] if (root / "README.md").exists() else []
    docs = root / "docs"
    if docs.is_dir():
        results = (root / RESULTS).resolve()
        found += sorted(p for p in docs.rglob("*.md") if results not in p.resolve().parents)
    return found


def blocks(path: Path, root: Path) -> list[Block]:
    """Every marker pair of one page; unbalanced or nested markers are errors naming the line."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rel = path.relative_to(root)
    out, current = [], None
    for i, line in enumerate(lines):
        text = line.rstrip("\n")
        opened = OPEN.match(text)
        if opened:
            if current is not None:
                raise ValueError(f"{rel}:{i + 1}: table '{opened.group(1)}' opens inside table '{current[0]}' "
                                 f"(opened at line {current[1] + 1}); close it first with {CLOSE}")
            current = (opened.group(1), i)
        elif text == CLOSE:
            if current is None:
                raise ValueError(f"{rel}:{i + 1}: {CLOSE} without an opening <!-- table: NAME --> marker")
            name, start = current
            out.append(Block(path, name, start, i, "".join(lines[start + 1:i])))
            current = None
        elif text.startswith("<!-- table") or text.startswith("<!-- /table"):
            raise ValueError(f"{rel}:{i + 1}: malformed marker {text!r}; write <!-- table: NAME --> or {CLOSE} "
                             "alone on its line")
    if current is not None:
        raise ValueError(f"{rel}:{current[1] + 1}: table '{current[0]}' is never closed; add {CLOSE} after it")
    return out


def result_file(root: Path, name: str) -> Path:
    return root / RESULTS / f"{name}.md"


def problems(root: Path = ROOT) -> list[str]:
    """What ``--check`` reports: inclusions that differ from their file, unknown names, orphan files."""
    found, used = [], set()
    for page in pages(root):
        try:
            page_blocks = blocks(page, root)
        except ValueError as e:
            found.append(str(e))
            continue
        for b in page_blocks:
            used.add(b.name)
            src = result_file(root, b.name)
            where = f"{b.path.relative_to(root)}:{b.open_line + 1}"
            if not src.exists():
                found.append(f"{where}: table '{b.name}' has no file {src.relative_to(root)}; render it with "
                             f"`python bench/docs_tables.py {b.name} <bench output>`")
            elif b.content != src.read_text(encoding="utf-8"):
                found.append(f"{where}: table '{b.name}' differs from {src.relative_to(root)} (edited by hand?); "
                             "tables are rendered, not typed: `python bench/docs_tables.py --sync` restores the "
                             f"file's version, `python bench/docs_tables.py {b.name} <bench output>` a new one")
    results = root / RESULTS
    for src in sorted(results.glob("*.md")) if results.is_dir() else []:
        if src.stem not in used:
            found.append(f"{src.relative_to(root)} is included nowhere; include it in README.md or docs/*.md "
                         f"between <!-- table: {src.stem} --> and {CLOSE}, or delete it")
    return found


def sync(root: Path = ROOT, only: str | None = None) -> list[Path]:
    """Rewrite every inclusion (of table ``only``, or all) from docs/results/; returns the pages changed."""
    changed = []
    for page in pages(root):
        lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
        for b in reversed(blocks(page, root)):  # from the end: earlier line numbers stay valid
            if only is not None and b.name != only:
                continue
            src = result_file(root, b.name)
            if not src.exists():
                raise FileNotFoundError(f"{page.relative_to(root)}:{b.open_line + 1}: table '{b.name}' has no file "
                                        f"{src.relative_to(root)}; render it first")
            lines[b.open_line + 1:b.close_line] = [src.read_text(encoding="utf-8")]
        text = "".join(lines)
        if text != page.read_text(encoding="utf-8"):
            page.write_text(text, encoding="utf-8")
            changed.append(page)
    return changed


def table_blocks(text: str) -> list[str]:
    """The markdown tables of a text: runs of consecutive lines that start with '|'."""
    found, current = [], []
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            current.append(line.strip())
        elif current:
            found.append("\n".join(current) + "\n")
            current = []
    if current:
        found.append("\n".join(current) + "\n")
    return [t for t in found if re.match(r"^\|[\s:|-]+\|$", t.splitlines()[1] if len(t.splitlines()) > 1 else "")]


def render(source: Path, note: str, table: int | None = None, shown_as: str | None = None,
           today: dt.date | None = None) -> str:
    """The content of a results file: the table from ``source`` and one provenance line."""
    raw = source.read_bytes()
    text = raw.decode("utf-8")
    tables = table_blocks(text)
    if not tables:
        raise ValueError(f"{source}: no markdown table found (a header row, a |---| row, then rows); give the "
                         "bench output that holds the table (e.g. quality.md, or the saved stdout of the script)")
    if table is None:
        if len(tables) > 1:
            raise ValueError(f"{source} holds {len(tables)} tables; choose one with --table 1..{len(tables)}")
        table = 1
    if not 1 <= table <= len(tables):
        raise ValueError(f"--table {table}: {source} holds {len(tables)} table(s); give 1..{len(tables)}")
    if not note.strip():
        raise ValueError("--note is empty; give the command that produced the table, e.g. "
                         "--note 'python bench/quality.py --single'")
    day = (today or dt.date.today()).isoformat()
    digest = hashlib.sha256(raw).hexdigest()[:12]
    origin = shown_as or f"`{source}`"
    return (f"{tables[table - 1]}\n"
            f"*Produced by `{note.strip()}`; from {origin} (sha256 {digest}), rendered on {day} "
            f"by `bench/docs_tables.py`.*\n")


def write_result(root: Path, name: str, content: str) -> Path:
    if not NAME.match(name):
        raise ValueError(f"table name {name!r}: use letters, digits, '_' or '-' (it becomes docs/results/{name}.md)")
    path = result_file(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="table name: docs/results/<name>.md")
    parser.add_argument("source", nargs="?", type=Path, help="bench output holding the table (.md or a saved log)")
    parser.add_argument("--note", default="", help="the command that produced the source (provenance line)")
    parser.add_argument("--table", type=int, default=None, help="which table of the source, 1-based")
    parser.add_argument("--shown-as", default=None, help="how the source is described in the provenance line (default: its path)")
    parser.add_argument("--check", action="store_true", help="exit 1 if an inclusion differs from its file")
    parser.add_argument("--sync", action="store_true", help="rewrite every inclusion from docs/results/")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()

    if args.check:
        found = problems(root)
        for p in found:
            print(p, file=sys.stderr)
        print(f"docs tables: {'ok' if not found else f'{len(found)} problem(s)'}")
        return 1 if found else 0
    if args.sync:
        for page in sync(root):
            print(f"updated {page.relative_to(root)}")
        return 0
    if not args.name or not args.source:
        parser.error("give NAME SOURCE (render a table), --sync or --check")
    try:
        content = render(args.source, args.note, args.table, args.shown_as)
        path = write_result(root, args.name, content)
        changed = sync(root, only=args.name)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    print(f"wrote {path.relative_to(root)}" + "".join(f"\nupdated {p.relative_to(root)}" for p in changed))
    if not changed and not any(b.name == args.name for p in pages(root) for b in blocks(p, root)):
        print(f"note: no page includes it yet; add <!-- table: {args.name} --> ... {CLOSE} where it belongs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
