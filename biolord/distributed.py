"""The one module that touches ``torch.distributed``.

Everything else asks it for the rank, the world size, or a gather. When no process group is
initialised (a laptop, a test, a single GPU) every helper falls back to the local values, so the
loss code is the same on one process and on many.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward routes each rank's slice of the gradient back to it.

    Every rank computes a loss that depends on the candidates of *all* ranks, so the gradient of a
    rank's own candidates is the sum of the gradients that every rank's loss sends to them: an
    all_reduce(sum) of the full gradient, then the local slice (open_clip ``gather_features`` with
    ``gather_with_grad=True``; sentence-transformers ``util/distributed.py``).
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (world*B, ...)
        ctx.batch = tensor.shape[0]
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.cat(gathered, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # (world*B, ...) -> (B, ...)
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, differentiably; local tensor otherwise.

    All ranks must pass the same batch size (the data module drops the last uneven batch).
    """
    if not is_distributed() or world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (e.g. concept ids) from all ranks along dim 0, without gradient."""
    if not is_distributed() or world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)
