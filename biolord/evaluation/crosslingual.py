"""Cross-lingual retrieval: a name in another language -> its English name, acc@1 and MRR.

A file of parallel names (one concept a row, an English column and an other-language column,
e.g. from UMLS or MeSH translations) checks that a multilingual model puts translations of a
concept next to each other. Every other-language name is a query; the corpus is the set of
distinct English names; the answer is its own row's English name.
"""

from __future__ import annotations

import torch

from biolord.evaluation.files import BenchmarkFileError, file_hash, read_table, resolve_file
from biolord.evaluation.retrieval import rank_of_gold, retrieval_metrics


def read_parallel(path, english="en", other="other", delimiter="\t", quoting="minimal", header=True):
    table = read_table(path, delimiter=delimiter, quoting=quoting, header=header)
    i_en, i_other = table.column_index(english, "english"), table.column_index(other, "other")
    pairs, skipped = [], 0
    for _, row in table.rows:
        if len(row) <= max(i_en, i_other) or not row[i_en].strip() or not row[i_other].strip():
            skipped += 1
            continue
        pairs.append((row[i_en].strip(), row[i_other].strip()))
    if not pairs:
        raise BenchmarkFileError(f"{path}: no row with both an English and an other-language name (columns {english!r}, {other!r})")
    return pairs, skipped


class CrossLingualBenchmark:
    kind = "crosslingual"
    primary = "acc@1"

    def __init__(self, name: str, path, evals_dir=None, english="en", other="other", delimiter="\t",
                 quoting="minimal", header=True, **_ignored):
        self.name = name
        self.path = resolve_file(path, evals_dir, what=f"benchmark {name}: path")
        self.pairs, self.n_skipped = read_parallel(self.path, english, other, delimiter, quoting, header)
        self.files = {str(self.path): file_hash(self.path)}

    def run(self, embedder) -> dict:
        english = list(dict.fromkeys(en for en, _ in self.pairs))  # distinct: equal strings are not rivals
        row = {en: i for i, en in enumerate(english)}
        queries = embedder.embed([o for _, o in self.pairs])  # (Q, d)
        corpus = embedder.embed(english)  # (C, d)
        gold = torch.tensor([row[en] for en, _ in self.pairs])  # (Q,)
        metrics = retrieval_metrics(rank_of_gold(queries, corpus, gold))
        n = metrics.pop("n")
        return {"n": n, "metrics": metrics, "skipped": {"incomplete row": self.n_skipped} if self.n_skipped else {}}
