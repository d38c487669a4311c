"""Name -> definition retrieval on held-out concepts: acc@1 and MRR.

Each held-out concept contributes one query (its preferred name) and one corpus entry (its
definition); a query is right when its own concept's definition ranks first among all held-out
definitions. This is the held-out check of the backbone (the concept knowledge the contrastive
phase is meant to learn), scored on concepts never seen in training by ``heldout.HeldOutBenchmark``
(the benchmark, and through it the training callback); the ranking also serves cross-lingual
retrieval and the multilingual student's figures.
"""

from __future__ import annotations

import torch


def rank_of_gold(queries: torch.Tensor, corpus: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """1-based rank of each query's gold corpus entry under cosine similarity.

    queries: (Q, d), corpus: (C, d), both L2-normalised; gold: (Q,) indices into corpus.
    Ties count against the query (a gold entry tied with another is not ranked first).
    """
    scores = queries @ corpus.T  # (Q, C)
    gold_scores = scores.gather(1, gold[:, None])  # (Q, 1)
    return (scores >= gold_scores).sum(1)  # (Q,)


def retrieval_metrics(ranks: torch.Tensor) -> dict[str, float]:
    ranks = ranks.float()
    return {
        "acc@1": (ranks == 1).float().mean().item() * 100,
        "mrr": (1.0 / ranks).mean().item() * 100,
        "n": int(ranks.numel()),
    }

