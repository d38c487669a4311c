"""The suite end to end: Hydra config, several models side by side, results files, card, callback."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from biolord import config_store
from biolord.evaluation.benchmark_callback import BenchmarkCallback
from biolord.evaluation.crosslingual import CrossLingualBenchmark
from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.heldout import HeldOutBenchmark
from biolord.evaluation.runner import run

try:
    from tests.evaluation_tiny import tiny_eval_encoder, tiny_eval_model_dir, write_tiny_bert  # noqa: F401
except ImportError:
    from evaluation_tiny import tiny_eval_encoder, tiny_eval_model_dir, write_tiny_bert  # noqa: F401

def _compose(overrides):
    """The config ``python -m biolord.evaluate <overrides>`` runs with (the same composition path)."""
    return config_store.compose("evaluate", overrides)


def test_every_preset_and_every_default_benchmark_names_a_known_kind():
    from biolord.evaluation.benchmarks import KINDS, PRESET_DIR, load_spec

    names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    for name in names:
        spec = load_spec(name)
        assert spec["name"] == name and spec["kind"] in KINDS, (name, spec.get("kind"))
    defaults = list(_compose([]).benchmarks)
    assert defaults and set(defaults) <= set(names)  # the command's default list names only shipped presets


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
    assert len(next(iter(lines[0]["files"].values()))) == 64 and isinstance(lines[0]["seconds"], float)
    # the texts each model encoded, each distinct text once: 6 sentences of pairs.tsv, then 4 names of par.tsv
    assert [r["texts_encoded"] for r in lines] == [6, 4, 6, 4]
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
    # by hand: each translation's nearest English name (cosine) against its own
    english = ["dog", "house"]
    scores = embedder.embed(["perro", "casa", "chien"]) @ embedder.embed(english).T  # (3, 2)
    expected = 100 * sum(english[int(i)] == gold for i, gold in zip(scores.argmax(1), ["dog", "house", "dog"])) / 3
    assert out["n"] == 3 and out["metrics"]["acc@1"] == pytest.approx(expected)
    assert out["metrics"]["mrr"] == pytest.approx(expected + (100 - expected) / 2)  # two candidates: rank 1 or 2
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


def test_model_is_a_plain_key_short_for_models_and_presets_name_their_model():
    """``model=<path>`` composes (conf/model/ is not a group of this command) and replaces ``models``;
    a conf/model/ name stands for its name_or_path, in ``model=`` and in ``models=[...]``."""
    from omegaconf import OmegaConf

    from biolord.config_dir import config_dir
    from biolord.evaluation.model_names import models_to_score

    minilm = str(OmegaConf.load(config_dir() / "model" / "minilm.yaml").name_or_path)
    for value in ("/some/run/model", "outputs/contrastive/2025-01-01_10-00-00/model", "package:x/model"):
        cfg = _compose([f"model={value}", "models=[a,b]"])
        assert models_to_score(cfg.model, cfg.models) == [value]
    cfg = _compose(["models=[minilm,/a/folder]"])
    assert models_to_score(cfg.model, cfg.models) == [minilm, "/a/folder"]
    cfg = _compose(["model=minilm"])
    assert models_to_score(cfg.model, cfg.models) == [minilm] and minilm != "minilm"
    link = config_store.compose("link", ["model=/some/run/model", "dictionary=d.txt"])
    assert link.model == "/some/run/model"
    assert link.cache_dir == _compose([]).cache_dir  # one embedding cache for linking and evaluation


def test_heldout_callback_scores_what_the_heldout_benchmark_scores_by_hand(tiny_eval_encoder):
    """The training callback and ``benchmarks=[heldout]`` are one evaluator: the same figures, and
    those of a ranking done here by hand (ties count against the query)."""
    import torch.nn.functional as F

    from biolord.evaluation.callback import HeldOutRetrievalCallback

    names = ["cat", "dog", "tree", "red car"]
    definitions = ["cat sits on the mat", "dog runs fast", "big green tree", "blue house"]
    heldout = SimpleNamespace(names=names, definitions=definitions)
    logged = []
    logger = SimpleNamespace(log_metrics=lambda metrics, step: logged.append((step, metrics)))
    trainer = SimpleNamespace(global_rank=0, sanity_checking=False, global_step=7, loggers=[logger],
                              datamodule=SimpleNamespace(heldout=heldout))
    callback = HeldOutRetrievalCallback(batch_size=2)
    callback.evaluate(trainer, SimpleNamespace(encoder=tiny_eval_encoder))

    q = F.normalize(tiny_eval_encoder.encode(names), dim=1)
    c = F.normalize(tiny_eval_encoder.encode(definitions), dim=1)
    scores = (q @ c.T).tolist()  # (4, 4)
    ranks = [sum(s >= row[i] for s in row) for i, row in enumerate(scores)]
    acc, mrr = 100 * sum(r == 1 for r in ranks) / 4, 100 * sum(1 / r for r in ranks) / 4
    record = callback.history[-1]
    assert record["step"] == 7 and record["n"] == 4
    assert record["acc@1"] == pytest.approx(acc, abs=1e-4) and record["mrr"] == pytest.approx(mrr, abs=1e-4)
    assert logged == [(7, {"val/heldout_acc@1": record["acc@1"], "val/heldout_mrr": record["mrr"]})]
    bench = HeldOutBenchmark("heldout", heldout=heldout).run(TextEmbedder(tiny_eval_encoder, batch_size=8))
    assert bench["metrics"] == {"acc@1": record["acc@1"], "mrr": record["mrr"]}
