"""Entity linking by nearest dictionary name (BioSyn / SapBERT inference): acc@k over concepts.

Protocol (Sung et al. 2020, BioSyn; Liu et al. 2021, SapBERT): mentions and dictionary names are
lowercased and stripped of punctuation, every dictionary name is embedded, and a mention is
linked to the concepts of its most similar names (cosine). Candidate names are collapsed to
their concepts in rank order, so acc@5 means "the gold concept is among the 5 best *concepts*",
not among 5 names that may all be synonyms of one concept.

Gold ids follow BioSyn: ``OMIM:``/``MESH:`` prefixes removed (MEDIC writes bare ids), ``+`` read
like ``|``, and a candidate is right when its ids share one with the gold ids (BioSyn's
``check_label``). A composite mention (several gold ids, e.g. "breast and ovarian cancer") is
kept with that rule (``composite: any``) or counted and skipped (``composite: skip``); we do not
split the mention text. Mentions whose gold ids are not all in the dictionary are dropped and
counted, as BioSyn's ``--remove_cuiless`` does. There is no abbreviation expansion (BioSyn uses
Ab3P), so "WD" is linked as written.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from typing import Sequence

import torch

from biolord.evaluation.files import BenchmarkFileError, file_hash, read_table, resolve_file

log = logging.getLogger(__name__)

COMPOSITE_MODES = ("any", "skip")


class TextPreprocess:
    """BioSyn's query / dictionary normalisation: lowercase, punctuation runs -> one space."""

    def __init__(self, lowercase: bool = True, remove_punctuation: bool = True):
        self.lowercase = lowercase
        self.remove_punctuation = remove_punctuation
        self._split = re.compile(r"[\s{}]+".format(re.escape(string.punctuation)))

    def __call__(self, text: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.remove_punctuation:
            text = " ".join(self._split.split(text))
        return text.strip()


def split_ids(field_value: str, strip_prefixes: Sequence[str] = ("OMIM:", "MESH:")) -> frozenset[str]:
    """'OMIM:1|D2+D3' -> {'1', 'D2', 'D3'}."""
    ids = set()
    for part in re.split(r"[|+]", field_value or ""):
        part = part.strip()
        for prefix in strip_prefixes:
            if part.startswith(prefix):
                part = part[len(prefix):]
        if part and part != "-1":
            ids.add(part)
    return frozenset(ids)


# ---- dictionary ----------------------------------------------------------------------------------
@dataclass
class Dictionary:
    """Concepts and their names: ``names[i]`` belongs to concept ``name_concept[i]``."""

    concepts: list[str]  # concept key as written, e.g. "C567755|613097"
    concept_ids: list[frozenset[str]]  # its ids, e.g. {"C567755", "613097"}
    names: list[str]  # preprocessed names
    name_concept: list[int]
    raw_names: list[str]  # names as written, for display
    all_ids: set[str] = field(default_factory=set)

    @property
    def n_concepts(self) -> int:
        return len(self.concepts)


def read_dictionary(path, fmt: str = "auto", preprocess: TextPreprocess | None = None,
                    id_column="id", name_column="name", delimiter="\t", header=True,
                    strip_prefixes: Sequence[str] = ("OMIM:", "MESH:")) -> Dictionary:
    """BioSyn format (``ID[|ID]||name[|synonym...]``, one concept a line) or a TSV of (id, name) rows."""
    preprocess = preprocess or TextPreprocess()
    fmt = _dictionary_format(path) if fmt == "auto" else fmt
    entries: dict[str, list[str]] = {}
    if fmt == "biosyn":
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                if "||" not in line:
                    raise BenchmarkFileError(
                        f"{path} line {number}: expected BioSyn's 'ID[|ID]||name[|synonym]' format, got {line[:80]!r}; "
                        "set dictionary format=tsv for a tab-separated (id, name) file"
                    )
                key, names = line.split("||", 1)
                entries.setdefault(key.strip(), []).extend(n for n in names.split("|"))
    elif fmt == "tsv":
        table = read_table(path, delimiter=delimiter, header=header)
        i_id, i_name = table.column_index(id_column, "id_column"), table.column_index(name_column, "name_column")
        for number, row in table.rows:
            if len(row) <= max(i_id, i_name):
                raise BenchmarkFileError(f"{path} line {number}: fewer than {max(i_id, i_name) + 1} fields")
            entries.setdefault(row[i_id].strip(), []).append(row[i_name])
    else:
        raise BenchmarkFileError(f"dictionary format={fmt!r} for {path} is unknown; choose auto, biosyn or tsv")
    if not entries:
        raise BenchmarkFileError(f"dictionary {path} is empty")
    d = Dictionary([], [], [], [], [])
    for key, names in entries.items():
        ids = split_ids(key, strip_prefixes)
        if not ids:
            continue
        index = len(d.concepts)
        d.concepts.append(key)
        d.concept_ids.append(ids)
        d.all_ids |= ids
        seen = set()
        for raw in names:
            name = preprocess(raw)
            if name and name not in seen:
                seen.add(name)
                d.names.append(name)
                d.raw_names.append(raw.strip())
                d.name_concept.append(index)
    if not d.names:
        raise BenchmarkFileError(f"dictionary {path} has no usable name")
    return d


def _dictionary_format(path) -> str:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return "biosyn" if "||" in line else "tsv"
    raise BenchmarkFileError(f"dictionary {path} is empty")


# ---- mentions ------------------------------------------------------------------------------------
@dataclass
class Mention:
    text: str  # preprocessed
    raw: str
    ids: frozenset[str]
    line: int


def read_pubtator(path, types: Sequence[str] | None = None) -> list[tuple[int, str, str, str]]:
    """(line, mention, type, id field) of PubTator annotation lines (NCBI-disease, BC5CDR), optionally by type."""
    wanted = set(types) if types else None
    out, seen_types = [], set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 6 or not fields[1].isdigit():
                continue  # title / abstract lines, relation lines, blank lines
            seen_types.add(fields[4])
            if wanted is None or fields[4] in wanted:
                out.append((number, fields[3], fields[4], fields[5]))
    if not out:
        detail = f"with type in {sorted(wanted)} (types present: {sorted(seen_types)})" if wanted else ""
        raise BenchmarkFileError(
            f"{path}: no PubTator annotation line {detail}; expected tab-separated "
            "'pmid start end mention type id' lines, or set mentions format=tsv"
        )
    return out


def read_mention_rows(path, fmt="pubtator", types=None, mention_column="mention", id_column="id",
                      delimiter="\t", header=True) -> list[tuple[int, str, str]]:
    if fmt == "pubtator":
        return [(line, text, ids) for line, text, _, ids in read_pubtator(path, types)]
    if fmt == "tsv":
        table = read_table(path, delimiter=delimiter, header=header)
        i_m, i_id = table.column_index(mention_column, "mention_column"), table.column_index(id_column, "id_column")
        return [(n, r[i_m], r[i_id]) for n, r in table.rows if len(r) > max(i_m, i_id)]
    raise BenchmarkFileError(f"mentions format={fmt!r} for {path} is unknown; choose pubtator or tsv")


def select_mentions(rows, dictionary: Dictionary, preprocess: TextPreprocess, composite: str = "any",
                    drop_unknown_ids: bool = True, strip_prefixes=("OMIM:", "MESH:")):
    """Mentions to score and the counts of those left out, by reason."""
    if composite not in COMPOSITE_MODES:
        raise BenchmarkFileError(f"composite={composite!r} is unknown; choose one of {COMPOSITE_MODES}")
    kept, skipped, n_composite = [], {}, 0
    for line, raw, id_field in rows:
        ids = split_ids(id_field, strip_prefixes)
        text = preprocess(raw)
        reason = None
        if not ids:
            reason = "no gold id"
        elif not text:
            reason = "empty mention"
        elif drop_unknown_ids and not ids <= dictionary.all_ids:
            reason = "gold id not in dictionary"
        elif len(ids) > 1:
            n_composite += 1
            if composite == "skip":
                reason = "composite mention"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            kept.append(Mention(text, raw, ids, line))
    return kept, skipped, n_composite


# ---- ranking -------------------------------------------------------------------------------------
def top_concepts(queries: torch.Tensor, names: torch.Tensor, name_concept: torch.Tensor, k: int,
                 chunk: int = 256) -> list[list[tuple[int, int, float]]]:
    """The k best concepts of each query, as (concept, best name, score) in rank order.

    queries: (Q, d), names: (N, d), unit norm; name_concept: (N,) concept index of each name. A
    concept's score is that of its best name. Names are read in score order until k distinct
    concepts are found (the window grows when synonyms fill it).

    Ties go to the name listed first in the dictionary. MEDIC lists one name under several concepts
    (the same text, so the same score); ``topk`` orders ties arbitrarily, so without this rule two
    models that differ by rounding rank such concepts differently, and NCBI-disease acc@1 moved by 2
    points between near-identical models. Scores equal to 6 decimals count as tied (a matrix product
    may round two copies of one vector apart in the last bits).
    """
    results = []
    n_names = names.shape[0]
    for start in range(0, queries.shape[0], chunk):
        scores = queries[start:start + chunk] @ names.T  # (q, N)
        window = min(n_names, max(8 * k, 32))
        while True:
            top_scores, top_names = scores.topk(window, dim=1)  # (q, window)
            concepts = name_concept[top_names]  # (q, window)
            block, complete = [], True
            for row_s, row_n, row_c in zip(top_scores.tolist(), top_names.tolist(), concepts.tolist()):
                found, seen = [], set()
                for s, n, c in sorted(zip(row_s, row_n, row_c), key=lambda t: (-round(t[0], 6), t[1])):
                    if c not in seen:
                        seen.add(c)
                        found.append((c, n, s))
                        if len(found) == k:
                            break
                complete &= len(found) == k
                block.append(found)
            if complete or window == n_names:
                break
            window = min(n_names, window * 4)
        results.extend(block)
    return results


def accuracy_at(ranked: list[list[tuple[int, int, float]]], mentions: list[Mention], dictionary: Dictionary,
                ks: Sequence[int]) -> dict[str, float]:
    """acc@k x100: the gold concept (any shared id, BioSyn's check_label) among the first k concepts."""
    first_hit = []
    for found, mention in zip(ranked, mentions):
        rank = next((r for r, (c, _, _) in enumerate(found, 1) if dictionary.concept_ids[c] & mention.ids), None)
        first_hit.append(rank)
    n = max(len(mentions), 1)
    return {f"acc@{k}": 100.0 * sum(1 for r in first_hit if r is not None and r <= k) / n for k in ks}


# ---- benchmark and API ---------------------------------------------------------------------------
class Linker:
    """A model + a dictionary: ``link(mentions, top_k)`` -> the top-k concepts of each mention.

    Dictionary embeddings go through the embedder's on-disk cache, so a second process linking
    against the same dictionary with the same model does not encode it again.
    """

    def __init__(self, embedder, dictionary: Dictionary, preprocess: TextPreprocess | None = None):
        self.embedder = embedder
        self.dictionary = dictionary
        self.preprocess = preprocess or TextPreprocess()
        self._names: torch.Tensor | None = None
        self._name_concept = torch.tensor(dictionary.name_concept, dtype=torch.long)  # (N,)

    @property
    def name_vectors(self) -> torch.Tensor:
        if self._names is None:
            self._names = self.embedder.embed_cached(self.dictionary.names)  # (N, d)
        return self._names

    def rank(self, texts: Sequence[str], k: int) -> list[list[tuple[int, int, float]]]:
        """Texts already preprocessed -> (concept, name, score) lists."""
        queries = self.embedder.embed(list(texts))  # (Q, d)
        return top_concepts(queries, self.name_vectors, self._name_concept, k)

    def link(self, mentions: Sequence[str], top_k: int = 5) -> list[list[dict]]:
        ranked = self.rank([self.preprocess(m) for m in mentions], top_k)
        d = self.dictionary
        return [
            [
                {"rank": r, "concept_id": d.concepts[c], "name": d.raw_names[n], "score": round(s, 4)}
                for r, (c, n, s) in enumerate(found, 1)
            ]
            for found in ranked
        ]


class LinkingBenchmark:
    kind = "linking"
    primary = "acc@1"

    def __init__(self, name: str, mentions: dict, dictionary: dict, evals_dir=None, preprocess: dict | None = None,
                 composite: str = "any", drop_unknown_ids: bool = True, top_k=(1, 5),
                 strip_prefixes=("OMIM:", "MESH:"), **_ignored):
        self.name = name
        mentions, dictionary = dict(mentions), dict(dictionary)
        self.preprocess = TextPreprocess(**dict(preprocess or {}))
        self.ks = sorted(int(k) for k in top_k)
        strip = tuple(strip_prefixes or ())
        mention_path = resolve_file(mentions.pop("path", None), evals_dir, what=f"benchmark {name}: mentions.path")
        dict_path = resolve_file(dictionary.pop("path", None), evals_dir, what=f"benchmark {name}: dictionary.path")
        self.dictionary = read_dictionary(dict_path, fmt=dictionary.pop("format", "auto"), preprocess=self.preprocess,
                                          strip_prefixes=strip, **dictionary)
        rows = read_mention_rows(mention_path, fmt=mentions.pop("format", "pubtator"), **mentions)
        self.mentions, self.skipped, self.n_composite = select_mentions(
            rows, self.dictionary, self.preprocess, composite, drop_unknown_ids, strip)
        self.n_read = len(rows)
        if not self.mentions:
            raise BenchmarkFileError(f"benchmark {name}: no mention left to score from {mention_path} (skipped: {self.skipped})")
        self.files = {str(mention_path): file_hash(mention_path), str(dict_path): file_hash(dict_path)}

    def run(self, embedder) -> dict:
        linker = Linker(embedder, self.dictionary, self.preprocess)
        ranked = linker.rank([m.text for m in self.mentions], max(self.ks))
        return {
            "n": len(self.mentions),
            "metrics": accuracy_at(ranked, self.mentions, self.dictionary, self.ks),
            "skipped": dict(self.skipped),
            "details": {
                "mentions_read": self.n_read,
                "composite_mentions": self.n_composite,
                "dictionary_concepts": self.dictionary.n_concepts,
                "dictionary_names": len(self.dictionary.names),
            },
        }
