"""InfoNCE against a plain reference computation (loops, no masking tricks)."""

import math

import pytest
import torch
import torch.nn.functional as F

from biolord.losses import InfoNCELoss, info_nce


def reference_loss(a, p, ids=None, scale=20.0):
    """-log softmax of the own positive, among positives not sharing the anchor's concept."""
    total = 0.0
    for i in range(len(a)):
        logits = []
        for j in range(len(p)):
            if ids is not None and j != i and ids[j] == ids[i]:
                continue
            logits.append((scale * (a[i] @ p[j])).item())
        own = (scale * (a[i] @ p[i])).item()
        total += -own + math.log(sum(math.exp(x) for x in logits))
    return total / len(a)


def unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


def test_matches_reference_without_masking():
    a, p = unit(6, 8, 0), unit(6, 8, 1)
    assert info_nce(a, p, None).item() == pytest.approx(reference_loss(a, p), rel=1e-5)


def test_matches_reference_with_duplicate_concepts_masked():
    a, p = unit(8, 8, 2), unit(8, 8, 3)
    ids = torch.tensor([1, 2, 1, 3, 2, 4, 1, 5])  # concept 1 three times, concept 2 twice
    got = info_nce(a, p, ids).item()
    assert got == pytest.approx(reference_loss(a, p, ids.tolist()), rel=1e-5)
    # masking changes the value: the duplicates are no longer negatives
    assert got != pytest.approx(info_nce(a, p, None).item(), rel=1e-3)


def test_all_distinct_ids_equal_no_masking():
    a, p = unit(5, 4, 4), unit(5, 4, 5)
    assert info_nce(a, p, torch.arange(5)).item() == pytest.approx(info_nce(a, p, None).item(), rel=1e-6)


def test_scale_and_symmetric():
    a, p = unit(5, 4, 6), unit(5, 4, 7)
    assert info_nce(a, p, scale=5.0).item() == pytest.approx(reference_loss(a, p, scale=5.0), rel=1e-5)
    sym = info_nce(a, p, symmetric=True).item()
    assert sym == pytest.approx((reference_loss(a, p) + reference_loss(p, a)) / 2, rel=1e-5)


def test_gradients_match_reference_autograd():
    a = unit(6, 8, 8).requires_grad_(True)
    p = unit(6, 8, 9).requires_grad_(True)
    ids = torch.tensor([0, 1, 0, 2, 3, 1])
    info_nce(a, p, ids).backward()
    a2, p2 = a.detach().clone().requires_grad_(True), p.detach().clone().requires_grad_(True)
    logits = 20 * a2 @ p2.T
    mask = (ids[:, None] == ids[None, :]) & ~torch.eye(6, dtype=torch.bool)
    F.cross_entropy(logits.masked_fill(mask, -1e9), torch.arange(6)).backward()
    assert torch.allclose(a.grad, a2.grad, atol=1e-6) and torch.allclose(p.grad, p2.grad, atol=1e-6)


def test_module_respects_mask_switch_and_rejects_bad_scale():
    a, p, ids = unit(4, 4, 10), unit(4, 4, 11), torch.tensor([0, 0, 1, 1])
    assert InfoNCELoss(mask_same_concept=False)(a, p, ids).item() == pytest.approx(info_nce(a, p, None).item())
    with pytest.raises(ValueError, match="loss.scale"):
        InfoNCELoss(scale=0)


# ---- guided false-negative filtering (GISTEmbed) ---------------------------------------------


def guided_reference(a, p, ga, gp, margin=0.0, ids=None, scale=20.0):
    """Loop reference: candidate j != i is dropped when the guide scores it above pair i's guide score
    minus the margin (or it shares the anchor's concept)."""
    total = 0.0
    for i in range(len(a)):
        own_guide = (ga[i] @ gp[i]).item()
        logits = [(scale * (a[i] @ p[j])).item() for j in range(len(p))
                  if j == i or not ((ga[i] @ gp[j]).item() > own_guide - margin or (ids is not None and ids[j] == ids[i]))]
        total += -(scale * (a[i] @ p[i])).item() + math.log(sum(math.exp(x) for x in logits))
    return total / len(a)


def test_guide_masks_what_the_guide_scores_above_the_own_pair():
    a, p = unit(8, 8, 20), unit(8, 8, 21)
    ga, gp = unit(8, 6, 22), unit(8, 6, 23)
    gp[3] = F.normalize(ga[0] + 0.01 * gp[3], dim=0)  # for anchor 0 the guide prefers candidate 3 to its own
    own = (ga * gp).sum(1)
    assert (ga[0] @ gp[3]) > own[0]  # the case the filter exists for
    got = info_nce(a, p, None, guide=(ga, gp)).item()
    assert got == pytest.approx(guided_reference(a, p, ga, gp), rel=1e-5)
    assert got != pytest.approx(info_nce(a, p, None).item(), rel=1e-3)  # something was masked
    ids = torch.tensor([0, 1, 0, 2, 3, 4, 5, 6])  # with the same-concept mask: the union of both
    assert info_nce(a, p, ids, guide=(ga, gp)).item() == pytest.approx(guided_reference(a, p, ga, gp, ids=ids.tolist()), rel=1e-5)


def test_guide_margin_bounds_and_symmetric_direction():
    a, p = unit(6, 8, 24), unit(6, 8, 25)
    ga, gp = unit(6, 4, 26), unit(6, 4, 27)
    # a margin below -2 masks nothing (cosines lie in [-1, 1]); above 2 everything but the own pair (loss 0)
    assert info_nce(a, p, guide=(ga, gp), guide_margin=-2.5).item() == pytest.approx(info_nce(a, p).item(), rel=1e-6)
    assert info_nce(a, p, guide=(ga, gp), guide_margin=2.5, symmetric=True).item() == pytest.approx(0.0, abs=1e-6)
    # symmetric: the positive -> anchor term uses the guide's scores in that direction
    sym = info_nce(a, p, guide=(ga, gp), guide_margin=0.3, symmetric=True).item()
    ref = (guided_reference(a, p, ga, gp, 0.3) + guided_reference(p, a, gp, ga, 0.3)) / 2
    assert sym == pytest.approx(ref, rel=1e-5)


def test_guide_margin_reaches_the_module():
    a, p = unit(6, 8, 28), unit(6, 8, 29)
    ga, gp = unit(6, 4, 30), unit(6, 4, 31)
    module = InfoNCELoss(guide_margin=0.3)
    assert module(a, p, None, guide=(ga, gp)).item() == pytest.approx(guided_reference(a, p, ga, gp, 0.3), rel=1e-5)


def reference_same_side(a, p, ids, scale=20.0):
    """-log softmax of the own positive among the other side's candidates (same-concept others left
    out) and the own side's items of other concepts (itself left out)."""
    total = 0.0
    for i in range(len(a)):
        logits = [scale * (a[i] @ p[j]).item() for j in range(len(p)) if j == i or ids[j] != ids[i]]
        logits += [scale * (a[i] @ a[j]).item() for j in range(len(a)) if ids[j] != ids[i]]
        total += -scale * (a[i] @ p[i]).item() + math.log(sum(math.exp(x) for x in logits))
    return total / len(a)


def test_same_side_matches_reference_and_sentence_transformers():
    """One direction with same-side negatives is sentence-transformers' MultipleNegativesRankingLoss with
    directions=(query_to_doc, query_to_query), partition_mode=joint (cos_sim of unit vectors)."""
    from sentence_transformers import losses as st_losses

    a, p = unit(8, 8, 20), unit(8, 8, 21)
    ids = torch.tensor([1, 2, 1, 3, 2, 4, 5, 6])
    got = info_nce(a, p, ids, same_side=True).item()
    assert got == pytest.approx(reference_same_side(a, p, ids.tolist()), rel=1e-5)
    assert got > info_nce(a, p, ids).item()  # more candidates: a larger loss for the same vectors
    sym = info_nce(a, p, ids, same_side=True, symmetric=True).item()
    assert sym == pytest.approx((reference_same_side(a, p, ids.tolist()) + reference_same_side(p, a, ids.tolist())) / 2,
                                rel=1e-5)
    st = st_losses.MultipleNegativesRankingLoss(model=None, scale=20.0, directions=("query_to_doc", "query_to_query"))
    distinct = torch.arange(8)  # sentence-transformers masks only the query itself
    assert info_nce(a, p, distinct, same_side=True).item() == pytest.approx(
        st.compute_loss_from_embeddings([a, p], None).item(), rel=1e-5)
    assert info_nce(a, p, None, same_side=True).item() == pytest.approx(
        st.compute_loss_from_embeddings([a, p], None).item(), rel=1e-5)


def test_same_side_with_matryoshka_and_guide():
    a, p = unit(6, 8, 22), unit(6, 8, 23)
    ids = torch.arange(6)
    dims = info_nce(a, p, ids, same_side=True, dims=[8, 4]).item()
    cut = F.normalize(a[:, :4], dim=1), F.normalize(p[:, :4], dim=1)
    assert dims == pytest.approx(info_nce(a, p, ids, same_side=True).item() + info_nce(*cut, ids, same_side=True).item(),
                                 rel=1e-5)
    with pytest.raises(ValueError, match="same_side"):
        info_nce(a, p, ids, same_side=True, guide=(a, p))
    assert InfoNCELoss(same_side=True)(a, p, ids).item() == pytest.approx(info_nce(a, p, ids, same_side=True).item())
