"""Entity linking: BioSyn parsing and preprocessing, concept collapsing, composites, acc@k by hand, cache."""

from __future__ import annotations

import pytest
import torch

from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.linking import (
    LinkingBenchmark, Mention, TextPreprocess, accuracy_at, read_dictionary, select_mentions, split_ids,
    top_concepts,
)

try:
    from tests.evaluation_tiny import CountingEncoder, tiny_eval_encoder, tiny_eval_model_dir  # noqa: F401
except ImportError:
    from evaluation_tiny import CountingEncoder, tiny_eval_encoder, tiny_eval_model_dir  # noqa: F401

DICTIONARY = (
    "D001||Ataxia Telangiectasia|Louis-Bar syndrome\n"
    "D002|600001||Breast Cancer|breast tumour\n"
    "D003||Ovarian Cancer\n"
    "D004||Wilson Disease|copper toxicosis\n"
)
PUBTATOR = (
    "1|t|A title.\n1|a|An abstract.\n"
    "1\t0\t5\tAtaxia-telangiectasia\tSpecificDisease\tD001\n"
    "1\t6\t9\tbreast and ovarian cancer\tCompositeMention\tD002|D003\n"
    "1\t9\t12\tWilson's disease\tSpecificDisease\tMESH:D004\n"
    "1\t12\t15\tcopper toxicosis\tModifier\tOMIM:600001\n"
    "1\t15\t18\tunknown thing\tDiseaseClass\tD999\n"
    "1\tCID\tD001\tD002\n"
)


def test_preprocess_and_ids_follow_biosyn():
    pre = TextPreprocess()
    assert pre("Wilson's  Disease (WD)") == "wilson s disease wd"
    assert pre("Ataxia-telangiectasia.") == "ataxia telangiectasia"
    assert split_ids("OMIM:1|D2+MESH:D3") == {"1", "D2", "D3"}
    assert split_ids("-1") == frozenset()


def test_dictionary_and_mentions(tmp_path):
    (tmp_path / "dict.txt").write_text(DICTIONARY)
    d = read_dictionary(tmp_path / "dict.txt")
    assert d.n_concepts == 4 and d.concepts[1] == "D002|600001" and d.concept_ids[1] == {"D002", "600001"}
    assert d.names[:2] == ["ataxia telangiectasia", "louis bar syndrome"] and d.name_concept[:3] == [0, 0, 1]
    (tmp_path / "m.txt").write_text(PUBTATOR)
    bench = LinkingBenchmark("toy", {"path": str(tmp_path / "m.txt")}, {"path": str(tmp_path / "dict.txt")})
    assert bench.n_read == 5 and len(bench.mentions) == 4
    assert bench.skipped == {"gold id not in dictionary": 1} and bench.n_composite == 1
    assert bench.mentions[2].text == "wilson s disease" and bench.mentions[2].ids == {"D004"}
    skip = LinkingBenchmark("toy", {"path": str(tmp_path / "m.txt"), "types": ["SpecificDisease"]},
                            {"path": str(tmp_path / "dict.txt")}, composite="skip")
    assert len(skip.mentions) == 2 and skip.n_read == 2


def test_top_concepts_collapses_synonyms_in_rank_order():
    # names 0,1,2 -> concept 0; name 3 -> concept 1; name 4 -> concept 2 (scores 0.9 .. 0.5)
    e = torch.eye(5)
    names = torch.nn.functional.normalize(torch.stack([e[0] + 0.1 * e[1], e[0] + 0.2 * e[1], e[0] + 0.3 * e[1],
                                                        e[0] + 0.5 * e[1], e[0] + 2.0 * e[1]]), dim=1)
    query = e[0:1]  # cos = 1/sqrt(1+x^2): decreasing in x
    concept_of = torch.tensor([0, 0, 0, 1, 2])
    found = top_concepts(query, names, concept_of, k=2)
    assert [(c, n) for c, n, _ in found[0]] == [(0, 0), (1, 3)]
    found = top_concepts(query, names, concept_of, k=5)  # fewer concepts than k: all of them, once each
    assert [c for c, _, _ in found[0]] == [0, 1, 2]


def test_accuracy_at_k_by_hand_with_composites(tmp_path):
    (tmp_path / "dict.txt").write_text(DICTIONARY)
    d = read_dictionary(tmp_path / "dict.txt")
    mentions = [
        Mention("a", "a", frozenset({"D001"}), 1),  # gold first -> hit @1
        Mention("b", "b", frozenset({"D002", "D003"}), 2),  # composite: D003 at rank 2 -> hit @2 only
        Mention("c", "c", frozenset({"600001"}), 3),  # second id of concept 1 at rank 3
        Mention("d", "d", frozenset({"D004"}), 4),  # never retrieved
    ]
    ranked = [[(0, 0, 0.9), (1, 2, 0.8)], [(0, 0, 0.9), (2, 4, 0.8), (1, 2, 0.7)],
              [(3, 5, 0.9), (0, 0, 0.8), (1, 2, 0.7)], [(0, 0, 0.9)]]
    acc = accuracy_at(ranked, mentions, d, [1, 2, 3])
    assert acc == {"acc@1": 25.0, "acc@2": 50.0, "acc@3": 75.0}


def test_exact_names_link_to_their_concept_and_cache_skips_reencoding(tmp_path, tiny_eval_encoder):
    (tmp_path / "dict.txt").write_text(DICTIONARY)
    (tmp_path / "m.txt").write_text(PUBTATOR)
    bench = LinkingBenchmark("toy", {"path": str(tmp_path / "m.txt")}, {"path": str(tmp_path / "dict.txt")},
                             top_k=[1, 5])
    cache = tmp_path / "cache"
    first = CountingEncoder(tiny_eval_encoder)
    out = bench.run(TextEmbedder(first, batch_size=8, cache_dir=cache))
    # "ataxia telangiectasia" and "copper toxicosis" are dictionary names: cosine 1, linked first
    assert out["n"] == 4 and out["metrics"]["acc@5"] == 100.0  # 4 concepts only: all within 5
    assert out["metrics"]["acc@1"] >= 50.0
    n_names = len(bench.dictionary.names)
    # each distinct text once: the 7 names and the 2 mentions that are not names
    assert first.texts == len(set(first.seen)) == n_names + 2
    second = CountingEncoder(tiny_eval_encoder)
    again = bench.run(TextEmbedder(second, batch_size=8, cache_dir=cache))
    assert second.texts == 4 and not set(second.seen) - set(first.seen)  # the dictionary read from the store
    assert again["metrics"] == out["metrics"]


def test_link_api_returns_concepts_with_names_and_shares_the_cache(tmp_path, tiny_eval_model_dir, tiny_eval_encoder):
    from biolord.link import load_linker

    (tmp_path / "dict.txt").write_text(DICTIONARY)
    counting = CountingEncoder(tiny_eval_encoder)
    linker = load_linker(str(tiny_eval_model_dir), str(tmp_path / "dict.txt"), cache_dir=str(tmp_path / "c"),
                         encoder=counting, device="cpu")
    result = linker.link(["Ataxia telangiectasia", "breast cancer"], top_k=3)
    assert result[0][0]["concept_id"] == "D001" and result[0][0]["name"] == "Ataxia Telangiectasia"
    assert result[0][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert [c["rank"] for c in result[1]] == [1, 2, 3] and len({c["concept_id"] for c in result[1]}) == 3
    again = CountingEncoder(tiny_eval_encoder)
    load_linker(str(tiny_eval_model_dir), str(tmp_path / "dict.txt"), cache_dir=str(tmp_path / "c"),
                encoder=again, device="cpu").link(["wilson disease"], top_k=1)
    assert again.texts == 1


def test_link_command_reads_a_relative_dictionary_from_where_it_is_run(tmp_path, tiny_eval_model_dir):
    """``python -m biolord.link dictionary=d/dict.txt`` run in a folder that is not the repository,
    with Hydra changing into its run folder (hydra.job.chdir=true): the path is the user's, not the
    run folder's. Messages go to stderr; stdout holds only the answer (here JSON)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "dict.txt").write_text(DICTIONARY)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "BIOLORD_PROGRESS": "log"}
    out = subprocess.run(
        [sys.executable, "-m", "biolord.link", f"model={tiny_eval_model_dir}", "dictionary=d/dict.txt",
         "mention=wilson disease", "top_k=1", "json=true", "device=cpu", f"cache_dir={tmp_path / 'cache'}",
         "hydra.job.chdir=true", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout)
    assert answer[0]["candidates"][0]["concept_id"] == "D004"
    assert "dictionary " in out.stderr and "4 concepts" in out.stderr and "link finished in" in out.stderr


def test_link_reads_a_tsv_dictionary_with_its_own_columns_or_without_a_header(tmp_path, tiny_eval_model_dir):
    """The TSV settings reach the reader when the format is detected too (they were dropped unless
    dictionary_format=tsv); a header-less file gets an error that names header=false, then links with it."""
    from biolord.evaluation.files import BenchmarkFileError
    from biolord import config_store
    from biolord.link import run

    def link(name, *extra):
        return run(config_store.compose("link", [f"model={tiny_eval_model_dir}", f"dictionary={tmp_path / name}",
                                          "mention=wilson disease", "top_k=1", "device=cpu",
                                          f"cache_dir={tmp_path / 'cache'}", *extra]))

    (tmp_path / "named.tsv").write_text("cui\tstr\nD001\tataxia telangiectasia\nD004\twilson disease\n")
    assert link("named.tsv", "id_column=cui", "name_column=str")[0][0]["concept_id"] == "D004"
    (tmp_path / "bare.tsv").write_text("D001\tataxia telangiectasia\nD004\twilson disease\n")
    with pytest.raises(BenchmarkFileError, match="column 'id' .*set header=false and give 0-based column numbers"):
        link("bare.tsv")
    assert link("bare.tsv", "header=false", "id_column=0", "name_column=1")[0][0]["concept_id"] == "D004"


def test_tied_names_go_to_the_concept_listed_first():
    """One name under two concepts has one score; the concept listed first in the dictionary wins,
    whatever order topk gives ties in (and scores a rounding apart count as tied)."""
    names = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]), dim=1)
    names[3, 1] += 2.5e-7  # a copy rounded apart in the last bits (float32 spacing at 1.0: 1.2e-7)
    name_concept = torch.tensor([0, 3, 1, 2])  # name 1 (concept 3) is listed before names 2 and 3
    query = torch.tensor([[0.0, 1.0]])
    for order in ([0, 1, 2, 3], [0, 3, 2, 1]):  # the same dictionary stored in another order of rows
        ranked = top_concepts(query, names[order], name_concept[order], k=3)[0]
        first_listed = name_concept[order][1].item()
        assert ranked[0][0] == first_listed
