"""Length-sorted chunked forwards (biolord.chunking): an optimal plan, and the vectors and
gradients of one padded forward per side."""

import itertools
import random

import pytest
import torch

from biolord.chunking import embed_sides, padding_share, plan_chunks
from biolord.losses import info_nce

from tests.test_gradcache import IDS, NAMES, TEXTS, _assert_same_grads, _grads


def _cost(lengths, cuts, overhead):
    return sum((c.stop - c.start) * lengths[c.start] + overhead for c in cuts)


def _brute_force(lengths, max_tokens, overhead):
    """Minimal cost over every split of the sorted lengths into contiguous chunks."""
    n, best = len(lengths), None
    for mask in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [i + 1 for i, b in enumerate(mask) if b] + [n]
        cuts = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
        if any((c.stop - c.start) * lengths[c.start] > max_tokens and c.stop - c.start > 1 for c in cuts):
            continue
        cost = _cost(lengths, cuts, overhead)
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_plan_is_optimal_and_within_budget(seed):
    rng = random.Random(seed)
    lengths = sorted((rng.randint(1, 40) for _ in range(rng.randint(1, 10))), reverse=True)
    max_tokens, overhead = rng.choice([40, 64, 128, 10_000]), rng.choice([0, 8, 64])
    cuts = plan_chunks(lengths, max_tokens, overhead)
    assert [c.start for c in cuts] == [0] + [c.stop for c in cuts[:-1]] and cuts[-1].stop == len(lengths)
    assert all((c.stop - c.start) * lengths[c.start] <= max_tokens or c.stop - c.start == 1 for c in cuts)
    assert _cost(lengths, cuts, overhead) == _brute_force(lengths, max_tokens, overhead)


def test_plan_cuts_where_lengths_jump():
    # two groups of very different lengths: one chunk each, not one padded chunk
    assert plan_chunks([30, 30, 30, 3, 3, 3], max_tokens=1000, overhead=8) == [slice(0, 3), slice(3, 6)]
    # a huge per-call overhead: everything in one chunk
    assert plan_chunks([30, 30, 30, 3, 3, 3], max_tokens=1000, overhead=1000) == [slice(0, 6)]
    with pytest.raises(ValueError, match="tokens_per_forward"):
        plan_chunks([3], max_tokens=0)


def test_chunked_vectors_and_gradients_equal_one_forward_per_side(tiny_encoder):
    tiny_encoder.eval()  # no dropout: the two computations must agree
    sides = [tiny_encoder.tokenize(NAMES), tiny_encoder.tokenize(TEXTS)]
    ref = [tiny_encoder(s) for s in sides]
    info_nce(*ref, IDS).backward()
    ref_grads = _grads(tiny_encoder)
    tiny_encoder.zero_grad()
    got = embed_sides(tiny_encoder, sides, max_tokens=40, overhead=4)
    real, processed = padding_share(sides, 40, overhead=4)
    assert processed < padding_share(sides, None)[1] and real == padding_share(sides, None)[0]
    for a, b in zip(got, ref):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
    info_nce(*got, IDS).backward()
    _assert_same_grads(_grads(tiny_encoder), ref_grads, atol=1e-5)


def test_left_padded_sides_are_embedded_as_given(tiny_encoder):
    tiny_encoder.eval()
    tiny_encoder.tokenizer.padding_side = "left"
    sides = [tiny_encoder.tokenize(NAMES), tiny_encoder.tokenize(TEXTS)]
    got = embed_sides(tiny_encoder, sides, max_tokens=40)
    for a, s in zip(got, sides):
        assert torch.allclose(a, tiny_encoder(s), atol=1e-6)


def test_phase_loss_is_the_same_with_and_without_chunks(tiny_encoder):
    from biolord.losses import InfoNCELoss
    from biolord.phases.contrastive import ContrastivePhase
    from biolord.phases.hooks import ModuleParts
    from biolord.phases.optim import GradientClip, Optimizer

    batch = {"anchor": tiny_encoder.tokenize(NAMES), "positive": tiny_encoder.tokenize(TEXTS), "concept_id": IDS}
    parts = ModuleParts(Optimizer(lr=1e-4), GradientClip(1.0), batch_size_per_device=len(NAMES), run_config={})
    losses = []
    for tokens in (None, 32):
        phase = ContrastivePhase(tiny_encoder, InfoNCELoss(symmetric=True, model_dim=tiny_encoder.dim), **parts.kwargs(tokens))
        phase.encoder.eval()
        anchors, positives = phase.embed([batch["anchor"], batch["positive"]])
        losses.append(phase.loss_from_embeddings(batch, anchors, positives))
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
