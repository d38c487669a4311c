"""2 processes on CPU (gloo) give the loss and gradients of 1 process on the global batch."""


import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from biolord.losses import info_nce

from tests.conftest import close_gloo, free_port, init_gloo


def _global_batch():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    # hard negatives: positives 4..7 are near-copies of 0..3; duplicate concepts across ranks
    p = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    p[4:] = F.normalize(p[:4] + 0.05 * torch.randn(4, 16, generator=g), dim=1)
    ids = torch.tensor([0, 1, 2, 3, 0, 5, 2, 7])
    # guide vectors (GISTEmbed filter): near-copies too, so that the guide masks candidates across ranks
    ga = F.normalize(torch.randn(8, 6, generator=g), dim=1)
    gp = F.normalize(ga + 0.8 * torch.randn(8, 6, generator=g), dim=1)
    gp[5] = F.normalize(ga[1] + 0.01 * gp[5], dim=0)  # rank 0's anchor 1 prefers rank 1's candidate 5
    return a, p, ids, (ga, gp)


def _worker(rank, world, port, out, dims, guided, same_side=False):
    init_gloo(rank, world, port)
    a, p, ids, (ga, gp) = _global_batch()
    b = len(a) // world
    sl = slice(rank * b, (rank + 1) * b)
    la, lp = a[sl].clone().requires_grad_(True), p[sl].clone().requires_grad_(True)
    guide = (ga[sl], gp[sl]) if guided else None
    loss = info_nce(la, lp, ids[sl], symmetric=True, dims=dims, guide=guide, same_side=same_side)
    loss.backward()
    # DDP averages gradients over ranks; the loss is the mean of the ranks' local means.
    grads = torch.cat([la.grad, lp.grad], dim=1) / world
    losses = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(losses, loss.detach().reshape(1))
    all_grads = [torch.zeros_like(grads) for _ in range(world)]
    dist.all_gather(all_grads, grads)
    if rank == 0:
        torch.save({"loss": torch.cat(losses).mean(), "grads": torch.cat(all_grads)}, out)
    close_gloo()



@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
@pytest.mark.parametrize("dims,guided,same_side", [(None, False, False), ([16, 4], False, False), (None, True, False),
                                                  ([16, 4], False, True)], ids=["full", "matryoshka", "guided", "same_side"])
def test_two_process_loss_and_grads_equal_global_batch(tmp_path, dims, guided, same_side):
    """With Matryoshka dims the gathered candidates are truncated after the gather; with a guide its
    vectors are gathered as the candidates are: same result as one process."""
    out = tmp_path / "dist.pt"
    mp.spawn(_worker, args=(2, free_port(), str(out), dims, guided, same_side), nprocs=2, join=True)
    got = torch.load(out)

    a, p, ids, guide = _global_batch()
    a.requires_grad_(True), p.requires_grad_(True)
    ref = info_nce(a, p, ids, symmetric=True, dims=dims, guide=guide if guided else None, same_side=same_side)
    if guided:  # the guide did mask something, so the test can tell a missing gather
        assert ref.item() != pytest.approx(info_nce(a.detach(), p.detach(), ids, symmetric=True).item(), rel=1e-4)
    ref.backward()
    assert got["loss"].item() == pytest.approx(ref.item(), abs=1e-5)
    assert torch.allclose(got["grads"], torch.cat([a.grad, p.grad], dim=1), atol=1e-5)
