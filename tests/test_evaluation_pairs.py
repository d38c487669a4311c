"""Pair similarity: file reading (quoting, header, bad rows) and Spearman / Pearson by hand."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from biolord.evaluation.files import BenchmarkFileError
from biolord.evaluation.pairs import PairBenchmark, correlation_metrics, read_pairs

try:
    from tests.evaluation_tiny import tiny_eval_encoder, tiny_eval_model_dir  # noqa: F401  (fixtures)
except ImportError:
    from evaluation_tiny import tiny_eval_encoder, tiny_eval_model_dir  # noqa: F401


def test_correlations_match_scipy_on_known_vectors():
    gold = [1.0, 2.0, 3.0, 4.0, 5.0]
    a = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 1], [0, 1], [1, 0.2], [1, 0.1]]), dim=1)
    b = torch.nn.functional.normalize(torch.tensor([[0.0, 1], [1, 0], [0, 1], [1, 0], [1, 0]]), dim=1)
    cos = (a * b).sum(1)
    # cosines by hand: 0, 1/sqrt2, 1, 1/sqrt(1.04), 1/sqrt(1.01)
    expected = [0.0, 1 / math.sqrt(2), 1.0, 1 / math.sqrt(1.04), 1 / math.sqrt(1.01)]
    assert cos.tolist() == pytest.approx(expected, abs=1e-6)
    m = correlation_metrics(cos, gold)
    # ranks of cos: 1, 2, 5, 3, 4 vs 1..5 -> d^2 = 0+0+4+1+1 = 6 -> rho = 1 - 6*6/(5*24) = 0.7
    assert m["spearman"] == pytest.approx(70.0, abs=1e-6)
    assert m["pearson"] == pytest.approx(stats.pearsonr(expected, gold)[0] * 100, abs=1e-4)


def test_reads_quoted_csv_and_headerless_tsv_with_extra_fields(tmp_path):
    csv_file = tmp_path / "mayo.csv"
    csv_file.write_text('"Mean","TERM1","TERM2"\n6.5,"a, b","c"\n2,"d","e ""quoted"""\n')
    data = read_pairs(csv_file, "TERM1", "TERM2", "Mean", delimiter=",")
    assert data.texts1 == ["a, b", "d"] and data.texts2 == ["c", 'e "quoted"'] and data.scores == [6.5, 2.0]

    tsv = tmp_path / "sts.csv"
    tsv.write_text('g\tf\t2012\t1\t2.5\tA "girl".\tA girl.\n' 'g\tf\t2012\t2\t4\tB.\tC.\textra\tmore\n')
    data = read_pairs(tsv, 5, 6, 4, delimiter="\t", quoting="none", header=False)
    assert data.texts1 == ['A "girl".', "B."] and data.scores == [2.5, 4.0]


def test_non_numeric_scores_are_counted_not_dropped_silently(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("s1\ts2\tscore\na\tb\t1\nc\td\tn/a\ne\tf\t3\ng\th\t\n")
    data = read_pairs(f, "s1", "s2", "score")
    assert data.scores == [1.0, 3.0]
    assert data.skipped == {"non-numeric score": 2}
    assert data.skipped_lines == [3, 5]


def test_clear_errors(tmp_path):
    with pytest.raises(BenchmarkFileError, match="not found.*evals_dir"):
        PairBenchmark("x", "missing.tsv", evals_dir=tmp_path)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(BenchmarkFileError, match="empty"):
        read_pairs(empty)
    f = tmp_path / "p.tsv"
    f.write_text("s1\ts2\tgold\na\tb\t1\n")
    with pytest.raises(BenchmarkFileError, match=r"column 'score'.*available: \['s1', 's2', 'gold'\]"):
        read_pairs(f, "s1", "s2", "score")


def test_pair_benchmark_end_to_end_dedups_texts(tmp_path, tiny_eval_encoder):
    from biolord.evaluation.embedder import TextEmbedder

    f = tmp_path / "p.tsv"
    f.write_text("s1\ts2\tscore\ncat sits\tdog sits\t3\ncat sits\tred car\t1\ndog sits\tcat runs\t2\n")
    bench = PairBenchmark("toy", f, text1="s1", text2="s2", score="score")
    embedder = TextEmbedder(tiny_eval_encoder, batch_size=4)
    out = bench.run(embedder)
    assert embedder.texts_encoded == 4  # 6 texts, 4 distinct
    vecs = tiny_eval_encoder.encode(["cat sits", "dog sits", "cat sits", "red car", "dog sits", "cat runs"])
    vecs = torch.nn.functional.normalize(vecs, dim=1)
    cos = (vecs[0::2] * vecs[1::2]).sum(1)
    assert out["metrics"]["spearman"] == pytest.approx(stats.spearmanr(cos.numpy(), [3, 1, 2])[0] * 100, abs=1e-4)
    assert out["n"] == 3 and len(bench.files[str(f.resolve())]) == 64
