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
    return a, p, ids


def _worker(rank, world, port, out, dims):
    init_gloo(rank, world, port)
    a, p, ids = _global_batch()
    b = len(a) // world
    sl = slice(rank * b, (rank + 1) * b)
    la, lp = a[sl].clone().requires_grad_(True), p[sl].clone().requires_grad_(True)
    loss = info_nce(la, lp, ids[sl], symmetric=True, dims=dims)
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
@pytest.mark.parametrize("dims", [None, [16, 4]], ids=["full", "matryoshka"])
def test_two_process_loss_and_grads_equal_global_batch(tmp_path, dims):
    """With Matryoshka dims the gathered candidates are truncated after the gather: same result."""
    out = tmp_path / "dist.pt"
    mp.spawn(_worker, args=(2, free_port(), str(out), dims), nprocs=2, join=True)
    got = torch.load(out)

    a, p, ids = _global_batch()
    a.requires_grad_(True), p.requires_grad_(True)
    ref = info_nce(a, p, ids, symmetric=True, dims=dims)
    ref.backward()
    assert got["loss"].item() == pytest.approx(ref.item(), abs=1e-5)
    assert torch.allclose(got["grads"], torch.cat([a.grad, p.grad], dim=1), atol=1e-5)
