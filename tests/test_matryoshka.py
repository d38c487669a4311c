"""Matryoshka loss (biolord.losses with matryoshka dims), its checks, and a trained model truncated."""

import pytest
import torch
import torch.nn.functional as F

from biolord import matryoshka
from biolord.losses import InfoNCELoss, info_nce

try:
    from tests.test_losses import reference_loss, unit
except ImportError:
    from test_losses import reference_loss, unit


def test_one_dim_equal_to_the_model_dim_is_the_plain_loss():
    a, p = unit(6, 8, 0), unit(6, 8, 1)
    ids = torch.tensor([1, 2, 1, 3, 4, 5])
    for symmetric in (False, True):
        plain = info_nce(a, p, ids, symmetric=symmetric)
        got = info_nce(a, p, ids, symmetric=symmetric, dims=[8])
        assert got.item() == pytest.approx(plain.item(), rel=1e-6)


def test_weighted_sum_of_truncated_renormalised_losses():
    a, p = unit(6, 8, 2), unit(6, 8, 3)
    ids = torch.tensor([1, 2, 1, 3, 4, 5])
    got = info_nce(a, p, ids, dims=[8, 4, 2], weights=[1.0, 0.5, 0.25]).item()
    want = sum(
        w * reference_loss(F.normalize(a[:, :k], dim=1), F.normalize(p[:, :k], dim=1), ids.tolist())
        for k, w in [(8, 1.0), (4, 0.5), (2, 0.25)]
    )
    assert got == pytest.approx(want, rel=1e-5)
    # without re-normalisation the truncated vectors would give another value: the test sees it
    raw = sum(w * reference_loss(a[:, :k], p[:, :k], ids.tolist()) for k, w in [(8, 1.0), (4, 0.5), (2, 0.25)])
    assert got != pytest.approx(raw, rel=1e-3)
    # the default weights are 1 each
    assert InfoNCELoss(matryoshka_dims=[8, 4])(a, p, ids).item() == pytest.approx(
        info_nce(a, p, ids, dims=[8, 4], weights=[1, 1]).item(), rel=1e-6)


def test_only_the_prefix_gets_gradients_at_one_small_dim():
    a = unit(4, 8, 4).requires_grad_(True)
    p = unit(4, 8, 5)
    info_nce(a, p, dims=[2]).backward()
    assert a.grad[:, 2:].abs().max() == 0 and a.grad[:, :2].abs().max() > 0


@pytest.mark.parametrize("bad, shown", [([384, 512], "512"), ([0], "0"), ([-8], "-8"), ([2.5], "2.5")])
def test_bad_dims_name_the_value_and_the_model_dim(bad, shown):
    with pytest.raises(ValueError, match=rf"matryoshka_dims=.*dimension {shown} is not in 1\.\.384 .*dimension is 384"):
        InfoNCELoss(matryoshka_dims=bad, model_dim=384)


def test_repeated_dims_are_refused():
    with pytest.raises(ValueError, match="repeats a dimension"):
        InfoNCELoss(matryoshka_dims=[16, 16], model_dim=384)


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="one weight >= 0 per dimension"):
        InfoNCELoss(matryoshka_dims=[8, 4], matryoshka_weights=[1.0], model_dim=8)
    with pytest.raises(ValueError, match="no matryoshka_dims"):
        InfoNCELoss(matryoshka_weights=[1.0], model_dim=8)


def test_card_section_and_tags():
    assert matryoshka.card_section(None) == "" and matryoshka.tag_card("x", None) == "x"
    section = matryoshka.card_section([32, 16, 8])
    assert "32, 16, 8" in section and "truncate_dim=8" in section
    card = matryoshka.tag_card("---\nlibrary_name: sentence-transformers\ntags:\n- biolord\n---\n\n# m\n", [32, 16])
    assert "- biolord\n- matryoshka\n" in card and card.rstrip().endswith("# m")


# ---- through run(cfg): a phase with a bad dim fails at start; a trained model truncates -------


def test_a_dim_larger_than_the_model_fails_before_training(tiny_train_cfg, tmp_path):
    from biolord.train import run

    with pytest.raises(ValueError, match=r"dimension 64 is not in 1\.\.32 \(the model's embedding dimension is 32\)"):
        run(tiny_train_cfg("phase.loss.matryoshka_dims=[32,64]"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_self_distill_refuses_dims_without_a_contrastive_term(tiny_train_cfg, tiny_model_dir):
    from biolord.train import run

    with pytest.raises(ValueError, match="phase.weights.contrastive=0"):
        run(tiny_train_cfg("phase=self_distill", f"teacher={tiny_model_dir}", "phase.loss.matryoshka_dims=[32,16]"))


def test_trained_model_card_and_sentence_transformers_truncate_dim(tiny_train_cfg, tmp_path):
    from sentence_transformers import SentenceTransformer

    from biolord.train import run

    result = run(tiny_train_cfg("phase.loss.matryoshka_dims=[32,16,8]", "eval.every_n_steps=0", "trainer.max_steps=2"))
    folder = result["model_dir"]
    card = open(f"{folder}/README.md").read()
    assert "## Matryoshka dimensions" in card and "32, 16, 8" in card
    assert "- matryoshka" in card.split("---")[1]  # a metadata tag in the YAML header
    texts = ["wilson disease", "a rare disorder of copper metabolism", "skin tumor"]
    full = SentenceTransformer(folder, device="cpu").encode(texts, convert_to_tensor=True)  # (3, 32)
    small = SentenceTransformer(folder, device="cpu", truncate_dim=8).encode(texts, convert_to_tensor=True)
    assert full.shape == (3, 32) and small.shape == (3, 8)
    assert torch.allclose(small, full[:, :8], atol=1e-6)


# ---- evaluation per dimension (python -m biolord.evaluate truncate_dims=[...]) ----------------

PAIRS = [
    ("wilson disease", "copper metabolism disorder", 4), ("heart defect", "cardiac defect", 5),
    ("skin tumor", "dermal cancer", 4), ("acute lung infection", "chronic kidney disease", 1),
    ("bone growth defect", "skeletal abnormality", 3), ("eye pain", "liver iron deposition", 0),
]


def _eval_cfg(tmp_path, model_dir, *extra):
    from tests.conftest import compose

    rows = "a\tb\ts\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in PAIRS)
    (tmp_path / "pairs.tsv").write_text(rows)
    return compose([
        f"models=[{model_dir}]", f"evals_dir={tmp_path}", "device=cpu", "update_model_card=false",
        "benchmarks=[{name: pairs, kind: pairs, path: pairs.tsv, text1: a, text2: b, score: s}]",
        f"cache_dir={tmp_path / 'cache'}", f"output_dir={tmp_path / 'out'}", *extra,
    ], config_name="evaluate")


def test_evaluation_per_dimension_matches_sentence_transformers_truncate_dim(tmp_path, tiny_model_dir):
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    from biolord.evaluation.runner import run
    from biolord.export import export_sentence_transformers
    from biolord.encoder import Encoder

    folder = export_sentence_transformers(Encoder.load(str(tiny_model_dir), max_seq_length=32), tmp_path / "st")
    results = run(_eval_cfg(tmp_path, folder, "truncate_dims=[32,16,8]"))
    assert [(r["benchmark"], r["dim"]) for r in results] == [("pairs", 32), ("pairs", 16), ("pairs", 8)]
    assert {r["model"] for r in results} == {str(folder)}
    assert [r["texts_encoded"] for r in results] == [12, 0, 0]  # the model ran once for all sizes
    for r in results:
        model = SentenceTransformer(str(folder), device="cpu", truncate_dim=r["dim"])
        a, b = (model.encode([p[i] for p in PAIRS], normalize_embeddings=True) for i in (0, 1))
        want = 100 * spearmanr((a * b).sum(1), [p[2] for p in PAIRS])[0]
        assert r["metrics"]["spearman"] == pytest.approx(want, abs=1e-2), r["dim"]
    assert len({r["metrics"]["spearman"] for r in results}) > 1  # the sizes do differ on this data
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| st @32 | st @16 | st @8 |" in table.splitlines()[0].replace(f"{tmp_path.name}/", "")
    assert "| model | dim | pairs spearman |" in table and "| 8 |" in table


def test_evaluation_refuses_a_dimension_larger_than_the_model(tmp_path, tiny_model_dir):
    from biolord.evaluation.runner import run

    with pytest.raises(ValueError, match=r"truncate_dims=\[16, 64\]: dimension 64 is not in 1\.\.32"):
        run(_eval_cfg(tmp_path, tiny_model_dir, "truncate_dims=[16,64]"))
