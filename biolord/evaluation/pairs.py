"""Pair similarity / relatedness: Spearman and Pearson (x100) of cosine similarity against gold scores.

The usual protocol of sentence and concept similarity benchmarks (BIOSSES, MayoSRS, UMNSRS,
STS-B; Reimers & Gurevych 2019 report Spearman of cosine on STS). Any file with two text columns
and a score column is read by config alone (EHR-RelB, UMNSRS relatedness, SICK, ...). Rows whose
score is not a number are counted and reported, never silently dropped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from scipy import stats

from biolord.evaluation.files import BenchmarkFileError, file_hash, read_table, resolve_file

log = logging.getLogger(__name__)


@dataclass
class PairData:
    texts1: list[str]
    texts2: list[str]
    scores: list[float]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    skipped_lines: list[int] = field(default_factory=list)  # first few line numbers, for the report


def read_pairs(
    path,
    text1="text1",
    text2="text2",
    score="score",
    delimiter: str = "\t",
    quoting: str = "minimal",
    header: bool = True,
) -> PairData:
    """Two text columns and a score column, named (header) or numbered from 0 (no header)."""
    table = read_table(path, delimiter=delimiter, quoting=quoting, header=header)
    i1, i2, js = (table.column_index(c, r) for c, r in ((text1, "text1"), (text2, "text2"), (score, "score")))
    data = PairData([], [], [])
    needed = max(i1, i2, js) + 1
    for line, row in table.rows:
        reason = None
        if len(row) < needed:
            reason = f"fewer than {needed} fields"
        else:
            a, b, raw = row[i1].strip(), row[i2].strip(), row[js].strip()
            try:
                value = float(raw)
                if not math.isfinite(value):
                    raise ValueError(raw)
            except ValueError:
                reason = "non-numeric score"
            else:
                if not a or not b:
                    reason = "empty text"
        if reason:
            data.skipped[reason] = data.skipped.get(reason, 0) + 1
            if len(data.skipped_lines) < 10:
                data.skipped_lines.append(line)
            continue
        data.texts1.append(a)
        data.texts2.append(b)
        data.scores.append(value)
    if data.skipped:
        log.warning("%s: skipped rows %s (first lines %s)", path, data.skipped, data.skipped_lines)
    if len(data.scores) < 2:
        raise BenchmarkFileError(
            f"{path}: {len(data.scores)} usable pair(s) (skipped: {data.skipped}, lines {data.skipped_lines}); "
            "check delimiter=, quoting=, header= and the text1/text2/score columns"
        )
    return data


def correlation_metrics(similarity: torch.Tensor, gold: list[float]) -> dict[str, float]:
    """Spearman and Pearson x100 of predicted similarities (N,) against gold scores (N,)."""
    predicted = similarity.double().numpy()
    return {
        "spearman": float(stats.spearmanr(predicted, gold).statistic) * 100,
        "pearson": float(stats.pearsonr(predicted, gold).statistic) * 100,
    }


class PairBenchmark:
    kind = "pairs"
    primary = "spearman"

    def __init__(self, name: str, path, evals_dir=None, text1="text1", text2="text2", score="score",
                 delimiter="\t", quoting="minimal", header=True, **_ignored):
        self.name = name
        self.path = resolve_file(path, evals_dir, what=f"benchmark {name}: path")
        self.data = read_pairs(self.path, text1, text2, score, delimiter, quoting, header)
        self.files = {str(self.path): file_hash(self.path)}

    def run(self, embedder) -> dict:
        a = embedder.embed(self.data.texts1)  # (N, d), unit norm
        b = embedder.embed(self.data.texts2)  # (N, d), unit norm
        similarity = (a * b).sum(1)  # (N,) cosine
        return {
            "n": len(self.data.scores),
            "metrics": correlation_metrics(similarity, self.data.scores),
            "skipped": dict(self.data.skipped),
        }
