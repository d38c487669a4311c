"""Real OBO files bend the format in routine ways that pronto refuses; repair a copy before reading.

OBO is line based (one clause per line, stanzas opened by ``[Term]`` / ``[Typedef]``), so one scan
of the lines finds every bend below; the repaired bytes are handed to pronto, the file itself is
never changed. What pronto accepts is untouched (a file without bends is read as it is).

- undeclared synonym type (``synonym: "X" EXACT OMO:0003012 []`` without a ``synonymtypedef:``
  header line; pronto: ``ValueError: undeclared synonym type``): declared in the header;
- undeclared relation (``relationship: RO:0004026 X`` without a ``[Typedef]`` stanza; pronto:
  ``KeyError``): a ``[Typedef]`` stanza appended;
- a reference to a term that is not in the file (``is_a`` / ``relationship`` to a term of another
  ontology, as in subset releases; pronto: ``KeyError``): a nameless ``[Term]`` stub appended; stubs
  are not concepts (their ids are in ``Repair.stubs``);
- no ``format-version:`` at the top (a header that starts otherwise, a comment first; pronto:
  ``could not find a parser``): ``format-version: 1.2`` inserted;
- ``def:`` / ``synonym:`` without their xref list ``[]`` (fastobo: ``expected XrefList``): ``[]`` appended;
- a lone ``intersection_of`` / ``union_of`` in a term (pronto needs two or more): blanked;
- a whole-line ``! comment`` (fastobo: ``expected HeaderClause``, a panic inside a stanza): blanked;
- a byte order mark (fastobo: ``expected HeaderClause``): removed.

Each bend is counted by reason (clauses affected); the term is always kept. Line numbers of the
original file are kept in errors: ``Repair.original_line`` maps a line of the repaired copy back.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

BOM = b"\xef\xbb\xbf"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
SYNONYM = re.compile(rf"^synonym:\s*{_QUOTED}\s+(?:EXACT|BROAD|NARROW|RELATED)(?:\s+(?P<type>[^\s\[{{!]+))?\s*(?P<rest>.*)$")
DEFINITION = re.compile(rf"^def:\s*{_QUOTED}\s*(?P<rest>.*)$")
TAG_VALUE = re.compile(r"^(?P<tag>[A-Za-z_-]+):\s*(?P<value>\S+)(?:\s+(?P<second>[^\s!{]+))?")
STANZA = re.compile(r"^\[(?P<kind>[A-Za-z]+)\]")
BUILTIN_RELATIONS = {"is_a"}
EXAMPLES = 3  # ids / lines kept per reason for the log line


@dataclass
class Repair:
    """The repaired bytes (``None`` when the file needs no repair) and what was repaired."""

    data: bytes | None
    bends: Counter = field(default_factory=Counter)  # reason -> clauses (or files) affected
    examples: dict = field(default_factory=lambda: defaultdict(list))  # reason -> first ids / line numbers
    stubs: set = field(default_factory=set)  # ids of the nameless terms added for dangling references
    inserted_after: int = 0  # original line after which header lines were inserted
    inserted: int = 0  # how many

    def original_line(self, line: int | None) -> int | None:
        """Line of the original file for a line of the repaired copy (None: a line the repair added)."""
        if line is None or line <= self.inserted_after:
            return line
        if line <= self.inserted_after + self.inserted:
            return None
        return line - self.inserted

    def _note(self, reason: str, example) -> None:
        self.bends[reason] += 1
        if len(self.examples[reason]) < EXAMPLES:
            self.examples[reason].append(example)


def repair_obo(raw: bytes) -> Repair:
    """Scan the lines of an OBO file and repair the bends listed in the module docstring."""
    repair = Repair(None)
    changed = raw.startswith(BOM)
    if changed:
        repair._note("byte order mark (removed)", "line 1")
        raw = raw[len(BOM):]
    lines = raw.splitlines(keepends=True)
    text = [line.decode("utf-8", errors="replace") for line in lines]

    stanza, stanza_start = None, None  # None: the header
    header_types: set[str] = set()
    first_content = None  # index of the first non-blank line
    defined_terms: set[str] = set()
    defined_relations: set[str] = set(BUILTIN_RELATIONS)
    used_types: dict[str, list[int]] = defaultdict(list)  # synonym type -> line numbers
    used_relations: dict[str, list[int]] = defaultdict(list)
    referenced_terms: dict[str, list[int]] = defaultdict(list)
    lone: dict[tuple[int, str], list[int]] = defaultdict(list)  # (stanza start, tag) -> line indices

    for i, line in enumerate(text):
        s = line.strip()
        if s.startswith("!"):  # a whole-line comment: fastobo refuses it (a panic inside a stanza)
            ending = lines[i][len(lines[i].rstrip(b"\r\n")):]
            lines[i], changed = ending or b"\n", True
            repair._note("comment line (blanked)", f"line {i + 1}")
            continue
        if not s:
            continue
        if first_content is None:
            first_content = i
        match = STANZA.match(s)
        if match:
            stanza, stanza_start = match.group("kind"), i
            continue
        if stanza is None:
            tv = TAG_VALUE.match(s)
            if tv and tv.group("tag") == "synonymtypedef":
                header_types.add(tv.group("value"))
            elif tv and tv.group("tag") == "import":
                repair._note("import not followed (terms of the file only)", tv.group("value"))
            continue
        if s.startswith("synonym:") and stanza in ("Term", "Typedef"):
            syn = SYNONYM.match(s)
            if syn and syn.group("type"):
                used_types[syn.group("type")].append(i + 1)
            if syn and not syn.group("rest").strip():
                lines[i], changed = _append_xrefs(lines[i]), True
                repair._note("synonym without xref list ([] added)", f"line {i + 1}")
            continue
        if s.startswith("def:"):
            definition = DEFINITION.match(s)
            if definition and not definition.group("rest").strip():
                lines[i], changed = _append_xrefs(lines[i]), True
                repair._note("def without xref list ([] added)", f"line {i + 1}")
            continue
        tv = TAG_VALUE.match(s)
        if not tv:
            continue
        tag, value, second = tv.group("tag"), tv.group("value"), tv.group("second")
        if stanza == "Term":
            if tag == "id":
                defined_terms.add(value)
            elif tag == "is_a":
                referenced_terms[value].append(i + 1)
            elif tag == "relationship" and second:
                used_relations[value].append(i + 1)
                referenced_terms[second].append(i + 1)
            elif tag in ("intersection_of", "union_of"):
                lone[(stanza_start, tag)].append(i)
        elif stanza == "Typedef":
            if tag == "id":
                defined_relations.add(value)
            elif tag == "is_a":
                used_relations[value].append(i + 1)

    for (_, tag), indices in lone.items():
        if len(indices) == 1:
            i = indices[0]
            ending = lines[i][len(lines[i].rstrip(b"\r\n")):]
            lines[i], changed = ending or b"\n", True  # blank: the line numbers stay those of the file
            repair._note(f"lone {tag} (ignored)", f"line {i + 1}")

    header: list[bytes] = []
    missing_types = sorted(set(used_types) - header_types)
    starts_with_version = first_content is not None and text[first_content].strip().startswith("format-version:")
    no_header = first_content is not None and STANZA.match(text[first_content].strip()) is not None
    if no_header:
        repair._note("no header (format-version 1.2 assumed)", "line 1")
    elif not starts_with_version:
        repair._note("no format-version at the top (1.2 assumed)", "line 1")
    if not starts_with_version and (missing_types or not no_header):  # pronto reads a headerless file as it is
        header.append(b"format-version: 1.2\n")
    for type_id in missing_types:
        header.append(f'synonymtypedef: {type_id} "{type_id}"\n'.encode())
        for line in used_types[type_id]:
            repair._note("undeclared synonym type (declared)", f"{type_id} (line {line})")
    if header:
        if no_header:
            header.append(b"\n")  # a header of our own, then the file's first stanza
        at = first_content + 1 if starts_with_version else 0
        if at and not lines[at - 1].endswith((b"\n", b"\r")):
            lines[at - 1] += b"\n"
        lines[at:at] = header
        repair.inserted_after, repair.inserted = at, len(header)
        changed = True

    tail: list[bytes] = []
    for rel in sorted(set(used_relations) - defined_relations):
        tail.append(f"[Typedef]\nid: {rel}\n\n".encode())
        for line in used_relations[rel]:
            repair._note("undeclared relation (read by its id)", f"{rel} (line {line})")
    for term in sorted(set(referenced_terms) - defined_terms):
        tail.append(f"[Term]\nid: {term}\n\n".encode())
        repair.stubs.add(term)
        for line in referenced_terms[term]:
            repair._note("reference to a term not in the file (left out)", f"{term} (line {line})")
    if tail:
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            lines[-1] += b"\n"
        lines += [b"\n", *tail]
        changed = True

    if changed:
        repair.data = b"".join(lines)
    return repair


def _append_xrefs(line: bytes) -> bytes:
    body = line.rstrip(b"\r\n")
    return body.rstrip() + b" []" + (line[len(body):] or b"\n")
