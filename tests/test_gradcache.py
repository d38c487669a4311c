"""GradCache (biolord.gradcache) gives the loss and the parameter gradients of the plain loss."""

import contextlib
import json
import shutil

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from biolord import gradcache
from biolord.gradcache import cached_backward, mini_batches
from biolord.losses import info_nce

from tests.conftest import close_gloo, free_port, init_gloo

NAMES = [
    "wilson disease", "hepatic copper deposition", "huntington disease", "chronic kidney disease",
    "wilson disease one", "rare bone defect", "acute lung infection", "skin tumor",
]
TEXTS = [
    "a rare inherited disorder of copper metabolism characterized by excessive deposition in the liver and brain",
    "excessive copper in the liver",
    "an inherited neurological disorder characterized by loss of muscle control",
    "chronic loss of kidney function",
    "a disorder of copper metabolism",
    "a defect of the bone",
    "acute infection of the lung with fever",
    "a tumor of the skin",
]
# pairs 0 and 4 share a concept, as do 1 and 6: same-concept candidates are masked in the loss
IDS = torch.tensor([10, 11, 12, 13, 10, 15, 11, 17])


def _sides(encoder):
    return [encoder.tokenize(NAMES), encoder.tokenize(TEXTS)]  # (8, T_name), (8, T_text)


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _assert_same_grads(got, ref, atol=1e-4):
    assert got.keys() == ref.keys() and len(ref) > 10
    for name in ref:
        assert torch.allclose(got[name], ref[name], atol=atol), f"{name}: max diff {(got[name] - ref[name]).abs().max()}"


def _loss(symmetric, dims=None):
    """dims: Matryoshka sizes of the tiny model (d = 32); applied inside the loss, so GradCache gets them too."""
    weights = None if dims is None else [1.0, 0.5, 0.25][: len(dims)]
    return lambda a, p: info_nce(a, p, IDS, scale=20.0, symmetric=symmetric, dims=dims, weights=weights)


@pytest.mark.parametrize("symmetric, dims", [(False, None), (True, None), (False, [32, 16, 8]), (True, [32, 8])])
def test_same_loss_and_grads_as_plain_loss_dropout_off(tiny_encoder, symmetric, dims):
    """Against the plain loss on the whole batch at once (one forward per side)."""
    tiny_encoder.eval()
    sides = _sides(tiny_encoder)
    ref = _loss(symmetric, dims)(*(tiny_encoder(s) for s in sides))
    ref.backward()
    ref_grads = _grads(tiny_encoder)
    tiny_encoder.zero_grad(set_to_none=True)
    if dims:  # the Matryoshka terms change the loss and its gradients: the comparison is not vacuous
        assert abs(ref.item() - _loss(symmetric)(*(tiny_encoder(s) for s in sides)).item()) > 1e-2

    got = cached_backward(tiny_encoder, sides, _loss(symmetric, dims), mini_batch_size=3)
    assert not got.requires_grad
    assert got.item() == pytest.approx(ref.item(), abs=1e-4)
    _assert_same_grads(_grads(tiny_encoder), ref_grads)


def _plain_in_mini_batches(encoder, sides, loss_fn, size):
    """The plain loss, its embeddings computed in the same mini-batches (the same dropout draws)."""
    return loss_fn(*(torch.cat([encoder(c) for c in mini_batches(s, size)]) for s in sides))


@pytest.mark.parametrize("symmetric, dims", [(False, None), (True, None), (True, [32, 16, 8])])
def test_same_loss_and_grads_as_plain_loss_with_dropout(tiny_encoder, symmetric, dims):
    """Dropout on: the grad forward must replay the random state of the no-grad forward."""
    tiny_encoder.train()
    sides = _sides(tiny_encoder)
    torch.manual_seed(1)
    ref = _plain_in_mini_batches(tiny_encoder, sides, _loss(symmetric, dims), 3)
    ref.backward()
    ref_grads = _grads(tiny_encoder)
    tiny_encoder.zero_grad(set_to_none=True)

    torch.manual_seed(1)
    got = cached_backward(tiny_encoder, sides, _loss(symmetric, dims), mini_batch_size=3)
    assert got.item() == pytest.approx(ref.item(), abs=1e-4)
    _assert_same_grads(_grads(tiny_encoder), ref_grads)


def test_dropout_test_would_catch_a_missing_rng_replay(tiny_encoder, monkeypatch):
    """Without the replay the gradients differ: the test above does test the replay."""
    tiny_encoder.train()
    sides = _sides(tiny_encoder)
    torch.manual_seed(1)
    _plain_in_mini_batches(tiny_encoder, sides, _loss(False), 3).backward()
    ref_grads = _grads(tiny_encoder)
    tiny_encoder.zero_grad(set_to_none=True)

    monkeypatch.setattr(gradcache, "RandContext", lambda *t: contextlib.nullcontext())
    torch.manual_seed(1)
    cached_backward(tiny_encoder, sides, _loss(False), mini_batch_size=3)
    got = _grads(tiny_encoder)
    assert max((got[n] - ref_grads[n]).abs().max().item() for n in ref_grads) > 1e-3


def test_mini_batches_cut_padding_and_keep_rows(tiny_encoder):
    feats = tiny_encoder.tokenize(["wilson disease", "a", "acute lung infection with fever and pain"])
    chunks = mini_batches(feats, 2)
    assert [c["input_ids"].shape[0] for c in chunks] == [2, 1]
    assert chunks[0]["input_ids"].shape[1] < feats["input_ids"].shape[1]  # chunk 0 has only short texts
    assert torch.equal(chunks[1]["input_ids"], feats["input_ids"][2:])
    with pytest.raises(ValueError, match="mini_batch_size must be a positive integer"):
        mini_batches(feats, 0)


# ---- 2 processes (gloo), DDP-wrapped tiny encoder --------------------------------------------


def _worker(rank, world, port, model_dir, out):
    torch.set_num_threads(1)
    init_gloo(rank, world, port)
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel as DDP

    from biolord.encoder import Encoder

    encoder = Encoder.load(model_dir, max_seq_length=32).eval()  # dropout replay: tested above
    ddp = DDP(encoder)
    reductions = []

    def counting_hook(state, bucket):
        reductions.append(bucket.index())
        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, counting_hook)
    half = slice(rank * 4, rank * 4 + 4)  # each rank its half of the global batch
    sides = [{k: v[half] for k, v in s.items()} for s in _sides(encoder)]
    loss_fn = lambda a, p: info_nce(a, p, IDS[half], symmetric=True)  # noqa: E731

    plain = loss_fn(*(ddp(s) for s in sides))
    plain.backward()
    plain_grads, plain_reductions = _grads(encoder), len(reductions)
    encoder.zero_grad(set_to_none=True)
    reductions.clear()

    cached = cached_backward(ddp, sides, loss_fn, mini_batch_size=1, no_sync=ddp.no_sync)
    torch.save(
        {
            "plain": plain.item(), "cached": cached.item(), "plain_grads": plain_grads, "cached_grads": _grads(encoder),
            "plain_reductions": plain_reductions, "cached_reductions": len(reductions),
        },
        f"{out}.{rank}",
    )
    del ddp
    close_gloo()



@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_two_process_ddp_same_loss_grads_and_one_all_reduce(tiny_model_dir, tmp_path):
    out = tmp_path / "gc"
    mp.spawn(_worker, args=(2, free_port(), str(tiny_model_dir), str(out)), nprocs=2, join=True)
    results = [torch.load(f"{out}.{r}") for r in range(2)]
    for r in results:
        assert r["cached"] == pytest.approx(r["plain"], abs=1e-5)
        _assert_same_grads(r["cached_grads"], r["plain_grads"], atol=1e-5)
        # no_sync: the parameter gradients are all-reduced once per bucket, after the last of the
        # 2 sides x 4 mini-batch backwards, as in the plain step
        assert r["cached_reductions"] == r["plain_reductions"] >= 1
    _assert_same_grads(results[0]["cached_grads"], results[1]["cached_grads"], atol=1e-6)  # DDP averaged


# ---- through run(cfg) ------------------------------------------------------------------------


def _csv_losses(folder):
    import csv

    rows = list(csv.DictReader(open(folder / "csv" / "metrics.csv")))
    return {int(r["step"]): (float(r["train/loss"]), float(r["train/lr"])) for r in rows if r.get("train/loss")}


@pytest.mark.parametrize("extra", [[], ["phase.loss.matryoshka_dims=[32,8]"]], ids=["plain", "matryoshka"])
def test_train_run_with_gradcache_matches_plain_run(tiny_train_cfg, tiny_model_dir, tmp_path, extra):
    from biolord.train import run

    # dropout off, so that the whole loss curve of both runs can be compared
    model = tmp_path / "no_dropout"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))

    # a large lr and a small clip value: the curve moves, and a missing or wrong clip would show
    # (without clipping the step-2 loss differs by 0.04)
    common = [
        f"model.name_or_path={model}", "eval.every_n_steps=0", "export=false", "trainer.max_steps=4",
        "optim.lr=0.01", "optim.warmup_steps=0", "trainer.gradient_clip_val=0.05", *extra,
    ]
    run(tiny_train_cfg(*common, f"paths.output_dir={tmp_path / 'plain'}"))
    result = run(tiny_train_cfg(*common, f"paths.output_dir={tmp_path / 'cached'}", "gradcache.mini_batch_size=2"))
    assert result["history"]  # evaluated at start and end, like a plain run

    plain, cached = _csv_losses(tmp_path / "plain"), _csv_losses(tmp_path / "cached")
    assert sorted(cached) == sorted(plain) == [0, 1, 2, 3]
    assert cached[3][0] < 0.7 * cached[0][0]  # it trains (the symmetric default adds the positive -> anchor term)
    for step in plain:
        assert cached[step][0] == pytest.approx(plain[step][0], abs=1e-4), f"step {step}"
        assert cached[step][1] == pytest.approx(plain[step][1], rel=1e-6)  # same schedule
