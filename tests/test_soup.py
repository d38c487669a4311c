"""Weight averaging (``biolord.soup``, ``average.py``): uniform = the hand-computed mean, interpolate
at alpha 0 / 1 = the inputs, greedy decisions as the scores dictate, mixed inputs (run folder,
checkpoint, model folder) end to end, and every bad input with its message. Tiny BERTs only."""

from __future__ import annotations

import json
import shutil
import runpy
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from biolord import soup
from biolord.encoder import Encoder
from biolord.checkpoint import NoEncoderSpecError
from biolord.soup import SoupError
from tests.conftest import CONF, ROOT, write_tiny_model


def compose_average(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="average", overrides=overrides)


def variant(base: Path, folder: Path, delta: float | None = None, seed: int = 0) -> Path:
    """A copy of the tiny model whose floating weights are shifted by ``delta`` (or random noise)."""
    from transformers import AutoModel

    shutil.copytree(base, folder)
    model = AutoModel.from_pretrained(base)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(delta if delta is not None else 0.1 * torch.randn(p.shape, generator=g))
    model.save_pretrained(folder)
    return folder


def weights_of(folder) -> dict[str, torch.Tensor]:
    from transformers import AutoModel

    return AutoModel.from_pretrained(folder).state_dict()


def hf_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A soup's transformer weights under their Hugging Face names (``encoder_state`` keys are ``transformer.<name>``)."""
    return {k.removeprefix("transformer."): v for k, v in state.items() if k.startswith("transformer.")}


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir) -> list[Path]:
    """The tiny model and two perturbed copies: three distinct ingredients of one architecture."""
    root = tmp_path_factory.mktemp("soup_models")
    return [tiny_model_dir] + [variant(tiny_model_dir, root / f"v{i}", seed=i) for i in (1, 2)]


# ---- the arithmetic ---------------------------------------------------------------------------
def test_uniform_equals_the_hand_computed_mean(models):
    result = soup.uniform([str(m) for m in models])
    sds = [weights_of(m) for m in models]
    assert set(result.state_dict) == {f"transformer.{k}" for k in sds[0]}
    for k, v in hf_keys(result.state_dict).items():
        expected = torch.stack([sd[k].float() for sd in sds]).mean(0) if v.is_floating_point() else sds[0][k]
        torch.testing.assert_close(v, expected, atol=1e-6, rtol=1e-6)
    assert [r["weight"] for r in result.ingredients] == pytest.approx([1 / 3] * 3)


def test_weighted_average_divides_by_the_sum_of_weights(models):
    result = soup.uniform([str(m) for m in models], [3, 1, 0])
    a, b = weights_of(models[0]), weights_of(models[1])
    for k, v in hf_keys(result.state_dict).items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (3 * a[k] + b[k]) / 4, atol=1e-6, rtol=1e-6)
    assert [r["weight"] for r in result.ingredients] == [0.75, 0.25, 0.0]


def test_interpolate_at_alpha_0_and_1_returns_the_inputs(models):
    a, b = weights_of(models[0]), weights_of(models[1])
    pair = [str(models[0]), str(models[1])]
    for alpha, expected in ((0.0, a), (1.0, b)):
        got = hf_keys(soup.interpolate(pair, alpha).state_dict)
        assert all(torch.equal(got[k], expected[k]) for k in expected), f"alpha={alpha}"
    half = hf_keys(soup.interpolate(pair, 0.25).state_dict)
    k = "embeddings.word_embeddings.weight"
    torch.testing.assert_close(half[k], 0.75 * a[k] + 0.25 * b[k])


def test_integer_tensors_are_copied_not_averaged():
    acc = soup.WeightedSum()
    acc.add({"w": torch.tensor([1.0, 3.0]), "ids": torch.tensor([0, 1, 2])}, 0.5, "a")
    acc.add({"w": torch.tensor([3.0, 5.0]), "ids": torch.tensor([0, 1, 2])}, 0.5, "b")
    out = acc.average()
    assert out["w"].tolist() == [2.0, 4.0] and out["ids"].dtype == torch.long and out["ids"].tolist() == [0, 1, 2]
    half = soup.WeightedSum()
    half.add({"w": torch.tensor([1.0], dtype=torch.float16)}, 1.0, "a")
    half.add({"w": torch.tensor([2.0], dtype=torch.float16)}, 1.0, "b")
    assert half.average()["w"].dtype == torch.float16  # averaged in float32, cast back


# ---- greedy -----------------------------------------------------------------------------------
def test_greedy_accepts_and_rejects_as_the_scores_dictate(tmp_path, tiny_model_dir):
    """Ingredients shifted by 0, 1, 3; score = -|mean shift of the soup - 0.6|.

    Alone: A -0.6, B -0.4, C -2.4 -> order B, A, C. Soup {B} = -0.4; +A (shift 0.5) = -0.1: accept;
    +C (shift 4/3) = -0.73: reject. The soup is the mean of B and A.
    """
    shifts = {"A": 0.0, "B": 1.0, "C": 3.0}
    folders = {n: variant(tiny_model_dir, tmp_path / n, delta=d) for n, d in shifts.items()}
    key = "embeddings.LayerNorm.bias"
    base = weights_of(tiny_model_dir)[key]

    def scorer(encoder, label):
        shift = float((encoder.transformer.state_dict()[key] - base).mean())
        return {"score": -abs(shift - 0.6), "metrics": {"toy": shift}}

    records = []
    template = Encoder.load(str(tiny_model_dir))
    result = soup.greedy([str(folders[n]) for n in "ABC"], scorer, template, on_record=records.append)
    decisions = [r for r in records if r["event"] == "decision"]
    assert [Path(d["ingredient"]).name for d in decisions] == ["B", "A", "C"]
    assert [d["accepted"] for d in decisions] == [True, True, False]
    assert decisions[1]["soup_score"] == pytest.approx(-0.1, abs=1e-5)
    assert decisions[2]["soup_score"] == pytest.approx(-abs(4 / 3 - 0.6), abs=1e-5)
    assert [r["weight"] for r in result.ingredients] == [0.5, 0.5, 0.0]
    assert result.score == pytest.approx(-0.1, abs=1e-5)
    torch.testing.assert_close(result.state_dict[f"transformer.{key}"], base + 0.5, atol=1e-6, rtol=0)


def test_greedy_run_uses_the_evaluation_suite(tmp_path, models):
    (tmp_path / "toy.tsv").write_text(
        "a\tb\ts\nwilson disease\thepatolenticular degeneration\t4\nheart disease\tcardiac disorder\t3\n"
        "liver tumor\tskin pain\t0\nbrain defect\tkidney infection\t1\n")
    cfg = compose_average([
        f"ckpts=[{models[0]},{models[1]},{models[2]}]", "method=greedy",
        f"evals_dir={tmp_path}", "benchmarks=[{name: toy, kind: pairs, path: toy.tsv, text1: a, text2: b, score: s}]",
        f"output_dir={tmp_path / 'out'}", "device=cpu",
    ])
    result = soup.run(cfg)
    lines = [json.loads(x) for x in (tmp_path / "out" / "soup.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == ["score"] * 3 + ["decision"] * 3 + ["final"]
    assert all(set(x["metrics"]) == {"toy"} for x in lines[:3])
    assert lines[3]["accepted"] and lines[3]["score_alone"] == max(x["score"] for x in lines[:3])
    assert result["score"] == max(x["soup_score"] for x in lines[3:6])
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "## Weight averaging" in card and "greedy soup" in card and "toy" in card
    assert all(str(m) in card for m in models)


# ---- run(cfg): mixed inputs end to end --------------------------------------------------------
def test_run_folder_checkpoint_and_model_folder_mixed(tiny_train_cfg, tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    from biolord.train import run as train

    run_dir = Path(train(tiny_train_cfg())["output_dir"])
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    trained, base = weights_of(run_dir / "model"), weights_of(tiny_model_dir)
    cfg = compose_average([f"ckpts=[{run_dir},{ckpt},{tiny_model_dir}]", f"output_dir={tmp_path / 'out'}"])
    result = soup.run(cfg)
    assert [Path(r["path"]) for r in result["soup"]] == [run_dir / "model", ckpt, tiny_model_dir]
    out = Path(result["model_dir"])
    averaged = weights_of(out)
    for k in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):
        torch.testing.assert_close(averaged[k], (2 * trained[k] + base[k]) / 3, atol=1e-6, rtol=1e-5)
    card = (out / "README.md").read_text()
    assert "## Weight averaging" in card and "uniform" in card and str(ckpt) in card and "0.3333" in card
    lines = [json.loads(x) for x in (tmp_path / "out" / "soup.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == ["add"] * 3 + ["final"]
    texts = ["wilson disease", "copper deposition in the liver"]
    ours = Encoder.load(str(out)).encode(texts)
    theirs = SentenceTransformer(str(out), device="cpu").encode(texts, convert_to_tensor=True).cpu()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert Encoder.load(str(out)).max_seq_length == 32  # the run's setting, kept


def test_interpolate_with_scores_in_the_card(tmp_path, models):
    (tmp_path / "toy.tsv").write_text("a\tb\ts\nheart\tcardiac\t4\nliver\thepatic\t3\nbone\tskin\t0\n")
    cfg = compose_average([
        f"ckpts=[{models[0]},{models[1]}]", "method=interpolate", "alpha=0.25", "score=true",
        f"evals_dir={tmp_path}", "benchmarks=[{name: toy, kind: pairs, path: toy.tsv, text1: a, text2: b, score: s}]",
        f"output_dir={tmp_path / 'out'}", "device=cpu",
    ])
    result = soup.run(cfg)
    assert result["weights"] == [0.75, 0.25] and result["score"] is not None
    card = (Path(result["model_dir"]) / "README.md").read_text()
    assert "alpha = 0.25" in card and "**soup**" in card


# ---- bad input --------------------------------------------------------------------------------
def _run(tmp_path, *overrides):
    return soup.run(compose_average([*overrides, f"output_dir={tmp_path / 'out'}", "device=cpu"]))


def test_averaging_one_model_is_refused(tmp_path, tiny_model_dir):
    with pytest.raises(SoupError, match=r"method=uniform needs at least two models to average; got 1"):
        _run(tmp_path, f"ckpts=[{tiny_model_dir}]")
    with pytest.raises(SoupError, match=r"interpolate takes exactly two models.*got 3"):
        _run(tmp_path, f"ckpts=[{tiny_model_dir},{tiny_model_dir},{tiny_model_dir}]", "method=interpolate")


def test_different_architectures_are_refused(tmp_path, tiny_model_dir):
    wide = write_tiny_model(tmp_path / "wide", hidden=64)
    with pytest.raises(SoupError, match=r"different architectures cannot be averaged: .*tiny_bert.* and .*wide.* hidden_size 32 vs 64"):
        _run(tmp_path, f"ckpts=[{tiny_model_dir},{wide}]")


def test_different_vocabularies_are_refused(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    other = tmp_path / "other_vocab"
    shutil.copytree(tiny_model_dir, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["hepatolenticular"])
    tokenizer.save_pretrained(other)
    with pytest.raises(SoupError, match=r"different tokenizer vocabularies.*other_vocab has \d+ tokens"):
        _run(tmp_path, f"ckpts=[{tiny_model_dir},{other}]")


def test_key_shape_and_buffer_mismatches_name_the_tensor_and_files():
    acc = soup.WeightedSum()
    acc.add({"w": torch.zeros(2), "b": torch.zeros(2), "ids": torch.arange(3)}, 1.0, "run1/model")
    with pytest.raises(SoupError, match=r"tensor 'b' is in run1/model but not in run2.ckpt"):
        acc.add({"w": torch.zeros(2), "ids": torch.arange(3)}, 1.0, "run2.ckpt")
    with pytest.raises(SoupError, match=r"tensor 'x' is in run2.ckpt but not in run1/model"):
        acc.add({"w": torch.zeros(2), "b": torch.zeros(2), "ids": torch.arange(3), "x": torch.zeros(1)}, 1.0, "run2.ckpt")
    with pytest.raises(SoupError, match=r"tensor 'w' has shape \[2\] in run1/model but \[3\] in run2.ckpt"):
        acc.add({"w": torch.zeros(3), "b": torch.zeros(2), "ids": torch.arange(3)}, 1.0, "run2.ckpt")
    with pytest.raises(SoupError, match=r"tensor 'ids' \(torch.int64, not averaged\) differs between run1/model and run2.ckpt"):
        acc.add({"w": torch.zeros(2), "b": torch.zeros(2), "ids": torch.arange(3) + 1}, 1.0, "run2.ckpt")


def test_weights_must_sum_to_a_positive_number(tmp_path, models):
    pair = f"ckpts=[{models[0]},{models[1]}]"
    with pytest.raises(SoupError, match=r"weights=\[1.0, -1.0\] sum to 0.0; they must sum to a positive number"):
        _run(tmp_path, pair, "weights=[1,-1]")
    with pytest.raises(SoupError, match=r"weights=\[-1.0, -2.0\] sum to -3.0"):
        _run(tmp_path, pair, "weights=[-1,-2]")
    with pytest.raises(SoupError, match=r"weights has 3 values for 2 ckpts"):
        _run(tmp_path, pair, "weights=[1,1,1]")
    with pytest.raises(SoupError, match=r"apply to method=uniform only"):
        _run(tmp_path, pair, "weights=[1,1]", "method=greedy")


def test_greedy_without_a_heldout_benchmark_is_refused(tmp_path, models):
    for empty in ("benchmarks=[]", "benchmarks=null"):
        with pytest.raises(SoupError, match=r"method=greedy needs a held-out score: set benchmarks=\[heldout\]"):
            _run(tmp_path, f"ckpts=[{models[0]},{models[1]}]", "method=greedy", empty)


def test_unknown_method_and_bad_inputs(tmp_path, models):
    with pytest.raises(SoupError, match=r"method='mean' is unknown; choose one of \['uniform', 'greedy', 'interpolate'\]"):
        _run(tmp_path, f"ckpts=[{models[0]},{models[1]}]", "method=mean")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(SoupError, match=r"neither a model folder .* nor a biolord run folder"):
        soup.load_ingredient(str(tmp_path / "empty_dir"))
    # a checkpoint from before encoder_spec (or not from biolord): refused, naming the file and the fix
    torch.save({"state_dict": {"encoder.transformer.w": torch.zeros(1)},
                "biolord_config": {"model": {"name_or_path": "x"}}}, tmp_path / "old.ckpt")
    with pytest.raises(NoEncoderSpecError, match=r"old.ckpt does not describe its model .*Give the run's model/ folder"):
        soup.load_ingredient(str(tmp_path / "old.ckpt"))


def test_config_composes(tmp_path):
    cfg = compose_average([f"paths.output_dir={tmp_path}", "ckpts=[a,b]"])
    assert (cfg.method, cfg.weights, cfg.alpha, list(cfg.benchmarks)) == ("uniform", None, 0.5, ["heldout"])
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_average_py_writes_into_the_hydra_run_dir(tmp_path, models, monkeypatch, capsys):
    """The entry point as a user runs it (in-process: the imports are already paid for)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["average.py", f"ckpts=[{models[0]},{models[1]}]", "method=interpolate", "alpha=1"])
    runpy.run_path(str(ROOT / "average.py"), run_name="__main__")
    (run_dir,) = (tmp_path / "outputs" / "average").iterdir()
    assert (run_dir / "soup.jsonl").is_file() and (run_dir / "model" / "model.safetensors").is_file()
    got, expected = weights_of(run_dir / "model"), weights_of(models[1])
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    monkeypatch.setattr(sys, "argv", ["average.py"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(ROOT / "average.py"), run_name="__main__")
    assert "needs at least two models to average; got 0" in capsys.readouterr().err
