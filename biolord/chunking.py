"""Forward passes with little padding: the texts of a batch, sorted by length, in planned chunks.

A contrastive batch holds short names and long definitions, and each side padded to its longest
member wastes a quarter to a half of the tokens an encoder processes (``bench/padding.py``). The
loss only needs one vector per text, and a transformer treats the rows of a batch independently,
so the rows can be embedded in any grouping: here every text of every side is sorted by length
and cut into contiguous chunks, each padded only to its own longest member. Where to cut is
chosen exactly (dynamic programming over the sorted lengths) to minimise

    sum over chunks of (rows x longest length + overhead)

i.e. the padded tokens processed plus a fixed cost per forward call (``overhead``, in tokens:
many tiny chunks are slow on any device), with at most ``max_tokens`` padded tokens per chunk
(the memory bound). Sentence-transformers bounds its cached mini-batches by tokens for the same
reason (``mini_batch_num_tokens``); unpadded variable-length attention would remove the rest of
the padding but needs kernels that CPUs do not have.

The result is the same embeddings as one padded forward per side (padding is masked; tested in
``tests/test_chunking.py``), with gradients, in the input order. No Lightning.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Features = dict[str, torch.Tensor]


def plan_chunks(lengths: Sequence[int], max_tokens: int, overhead: int = 64) -> list[slice]:
    """Cuts of ``lengths`` (sorted longest first) into chunks; each chunk's cost is
    ``rows * lengths[first] + overhead``, the total is minimal, and ``rows * lengths[first] <=
    max_tokens`` unless a single row is longer than that."""
    if max_tokens < 1:
        raise ValueError(f"phase.tokens_per_forward must be a positive number of tokens or null, got {max_tokens}")
    n = len(lengths)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of the first i rows
    start = [0] * (n + 1)  # start[i]: first row of the last chunk in that plan
    for end in range(1, n + 1):
        for first in range(end - 1, -1, -1):
            rows = end - first
            padded = rows * int(lengths[first])  # lengths descend: the first row is the longest
            if padded > max_tokens and rows > 1:
                break  # earlier starts are longer and have more rows: only worse
            cost = best[first] + padded + overhead
            if cost < best[end]:
                best[end], start[end] = cost, first
    cuts, end = [], n
    while end > 0:
        cuts.append(slice(start[end], end))
        end = start[end]
    return cuts[::-1]


def embed_sides(
    encoder: Callable[[Features], torch.Tensor],
    sides: Sequence[Features],
    max_tokens: int,
    pad_token_id: int = 0,
    overhead: int = 64,
) -> list[torch.Tensor]:
    """Embed tokenised sides (each (B_s, T_s), right-padded) in length-sorted chunks.

    Returns one (B_s, d) tensor per side, rows in input order, with the graph for backward.
    Left-padded inputs (a tokenizer with ``padding_side='left'``) are embedded side by side as given.
    """
    masks = [s["attention_mask"] for s in sides]  # each (B_s, T_s)
    if not all(_right_padded(m) for m in masks):
        return [encoder(s) for s in sides]
    width = max(m.shape[1] for m in masks)
    keys = [k for k in sides[0] if all(k in s for s in sides)]

    def padded(side: Features, key: str) -> torch.Tensor:
        value = pad_token_id if key == "input_ids" else 0
        return F.pad(side[key], (0, width - side[key].shape[1]), value=value)  # (B_s, width)

    merged = {k: torch.cat([padded(s, k) for s in sides]) for k in keys}  # (N, width), N = sum B_s
    lengths = torch.cat([m.sum(1) for m in masks])  # (N,)
    order = torch.argsort(lengths, descending=True, stable=True)  # (N,) longest first
    sorted_lengths = lengths[order].tolist()
    chunks = []
    for cut in plan_chunks(sorted_lengths, max_tokens, overhead):
        rows = order[cut]  # (b,)
        longest = max(1, sorted_lengths[cut.start])
        chunks.append(encoder({k: v[rows, :longest] for k, v in merged.items()}))  # (b, d)
    embeddings = torch.cat(chunks)[torch.argsort(order)]  # (N, d) back in input order
    return list(embeddings.split([m.shape[0] for m in masks]))


def padding_share(features: Sequence[Features], max_tokens: int | None, overhead: int = 64) -> tuple[int, int]:
    """(real tokens, processed tokens) of a batch's sides, padded per side (``max_tokens`` None) or
    in the chunks ``embed_sides`` would run: the padding figure of ``bench/throughput.py``."""
    masks = [f["attention_mask"] for f in features]
    real = sum(int(m.sum()) for m in masks)
    if max_tokens is None:
        return real, sum(m.numel() for m in masks)
    lengths = sorted((int(x) for m in masks for x in m.sum(1)), reverse=True)
    processed = sum((c.stop - c.start) * lengths[c.start] for c in plan_chunks(lengths, max_tokens, overhead))
    return real, processed


def _right_padded(mask: torch.Tensor) -> bool:
    """Every row's real tokens come first (a prefix of ones in the attention mask)."""
    return bool((mask.cumprod(dim=1).sum(dim=1) == mask.sum(dim=1)).all())
