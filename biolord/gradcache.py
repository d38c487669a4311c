"""GradCache: a contrastive loss over a large batch in the memory of a small one.

Gao, Zhang, Han & Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"
(RepL4NLP 2021); the form of sentence-transformers' ``CachedMultipleNegativesRankingLoss``:

1. embed every side of the batch without a graph, mini-batch by mini-batch, saving the random state
   before each mini-batch;
2. compute the loss on the (detached) embeddings and its gradient w.r.t. them: the loss sees the
   whole batch, and under DDP the candidates of every rank, as the plain loss does
   (``biolord.distributed.gather_with_grad`` routes the embedding gradients back across ranks);
3. embed each mini-batch again, with a graph and the same random state (dropout masks replayed),
   and back-propagate ``<embeddings, cached gradient>``: the parameter gradients sum to those of
   the plain loss while only one mini-batch's activations are alive at a time.

The one cached-loss engine of biolord: every phase with a contrastive term calls
``cached_backward`` with its encoder, its tokenised sides and a loss on embeddings. No Lightning.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Sequence

import torch
from torch.utils.checkpoint import get_device_states, set_device_states

Features = dict[str, torch.Tensor]


class RandContext:
    """Captures the CPU (and CUDA) RNG state now; ``with`` replays it, then restores the outer state.

    As sentence-transformers' ``RandContext``: the no-grad and the grad forward of one mini-batch
    draw the same dropout masks, so the cached embeddings are those the graph is built on.
    """

    def __init__(self, *tensors: torch.Tensor):
        self.cpu_state = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)  # CUDA tensors only
        self._fork = None

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=self.devices, enabled=True)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        set_device_states(self.devices, self.device_states)

    def __exit__(self, *exc) -> None:
        self._fork.__exit__(*exc)
        self._fork = None


def mini_batches(features: Features, size: int) -> list[Features]:
    """Split tokenised features (B, T) into chunks of ``size`` rows, each cut to its longest text.

    Columns where no row of the chunk has a token (right padding of the full batch) are dropped:
    the embeddings do not change (padding is masked) and short chunks run faster.
    """
    if size < 1:
        raise ValueError(f"gradcache.mini_batch_size must be a positive integer or null, got {size}")
    mask = features["attention_mask"]  # (B, T)
    batch = mask.shape[0]
    chunks = []
    for start in range(0, batch, size):
        rows = slice(start, start + size)
        used = mask[rows].any(dim=0).nonzero()  # (T_used, 1) columns with a real token
        length = int(used.max()) + 1 if len(used) else mask.shape[1]
        chunks.append(
            {k: (v[rows, :length] if v.dim() == 2 and v.shape[1] == mask.shape[1] else v[rows]) for k, v in features.items()}
        )
    return chunks


def cached_backward(
    encoder: Callable[[Features], torch.Tensor],
    sides: Sequence[Features],
    loss_fn: Callable[..., torch.Tensor],
    mini_batch_size: int,
    backward: Callable[[torch.Tensor], None] | None = None,
    no_sync: Callable[[], ContextManager] | None = None,
) -> torch.Tensor:
    """Loss of ``loss_fn(*embeddings)`` over the whole batch; accumulates parameter gradients.

    encoder: features -> (b, d) embeddings (e.g. ``biolord.encoder.Encoder``), in train mode.
    sides: tokenised inputs, e.g. ``[batch["anchor"], batch["positive"]]``, each (B, T_side).
    loss_fn: ``(emb_side_0, emb_side_1, ...) -> scalar`` on float32 (B, d) embeddings, e.g. a closure
        over ``biolord.losses.info_nce`` with the batch's concept ids. It may gather across ranks.
    mini_batch_size: rows per forward / backward (memory is that of one such mini-batch).
    backward: runs the backward of a scalar (``LightningModule.manual_backward`` under Lightning, so
        that precision plugins and DDP see it); default ``Tensor.backward``.
    no_sync: context manager factory (``DistributedDataParallel.no_sync``) entered for every
        mini-batch but the last, so that DDP all-reduces the parameter gradients once, after the
        last backward. Not needed without DDP.

    Returns the loss, detached. Gradients are accumulated into ``.grad`` (zero them before).
    """
    backward = backward or torch.Tensor.backward
    no_sync = no_sync or contextlib.nullcontext
    chunks = [mini_batches(side, mini_batch_size) for side in sides]

    # 1. embeddings without graph; the random state before each mini-batch is kept for the replay
    states: list[list[RandContext]] = []
    cached: list[torch.Tensor] = []
    with torch.no_grad():
        for side in chunks:
            states.append([])
            embs = []
            for chunk in side:
                states[-1].append(RandContext(*chunk.values()))
                embs.append(encoder(chunk).float())  # (b, d)
            cached.append(torch.cat(embs).requires_grad_(True))  # (B, d) float32 leaf

    # 2. the loss on the whole batch and its gradient w.r.t. the embeddings (no parameter in sight)
    with torch.enable_grad():
        loss = loss_fn(*cached)
        grads = torch.autograd.grad(loss, cached)  # each (B, d)

    # 3. replay each mini-batch with graph and push the cached gradient through the encoder
    last = (len(chunks) - 1, len(chunks[-1]) - 1)
    for s, side in enumerate(chunks):
        start = 0
        for c, chunk in enumerate(side):
            rows = chunk["attention_mask"].shape[0]
            grad = grads[s][start : start + rows]  # (b, d)
            start += rows
            sync = contextlib.nullcontext() if (s, c) == last else no_sync()
            with sync, states[s][c], torch.enable_grad():
                emb = encoder(chunk).float()  # (b, d), same dropout masks as in step 1
                # d/dθ <emb, g> = (d emb/dθ)^T g: the chain rule for the loss, one mini-batch at a time
                backward((emb * grad).sum())
    return loss.detach()
