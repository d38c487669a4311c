"""Global batches: mixed by source weight, no concept twice, similar lengths together, one shard per rank.

The sampler plans the *global* batch (``batch_size_per_device x world``) and hands each rank its
slice, so that

- the no-duplicate-concept rule holds over every candidate the loss sees (candidates are gathered
  from all ranks), not just within a rank;
- every rank draws the same plan from ``(seed, epoch)`` with no communication, and the shards are
  disjoint and of equal length (the gather needs equal batch sizes);
- length grouping (texts of similar length in one batch, as transformers' LengthGroupedSampler)
  cuts padding, since each side is padded to its longest member;
- optionally, sibling clusters: rows of concepts that share a group (in the ontologies, their first
  is_a parent) come in runs of ``cluster_size`` distinct concepts, so that each anchor meets its
  siblings' texts as in-batch negatives (hard negatives from the graph, in the manner of TAS-B's
  topic-aware batches, Hofstaetter et al. 2021). Clusters are shuffled, and length grouping then
  orders whole clusters.

Indices are positions in the arrays given (the caller maps them back to table rows).
"""

from __future__ import annotations

import logging

import numpy as np
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


class GlobalBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        concept_keys: np.ndarray,  # (N,) int64
        lengths: np.ndarray,  # (N,) int
        source_ids: np.ndarray,  # (N,) int
        batch_size: int,  # per device
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        unique_concepts: bool = True,
        group_by_length: bool = True,
        mega_batches: int = 50,
        weights: list[float] | None = None,
        group_keys: np.ndarray | None = None,  # (N,) int64: rows of one group are siblings
        cluster_size: int = 0,  # sibling rows placed together, at most this many (0 or 1: off)
    ):
        self.keys, self.lengths, self.source_ids = concept_keys, lengths, source_ids
        self.batch_size, self.world, self.rank, self.seed = batch_size, world_size, rank, seed
        self.unique_concepts, self.group_by_length, self.mega_batches = unique_concepts, group_by_length, mega_batches
        self.weights = weights
        if cluster_size > 1 and group_keys is None:
            raise ValueError("cluster_size > 1 needs group_keys (the group of each row, e.g. its concept's parent)")
        self.group_keys, self.cluster_size = group_keys, int(cluster_size)
        self.epoch = 0
        self.trained = 0  # global batches of this epoch already trained on (see biolord.resume)
        self._resume: tuple[int, int] | None = None
        self.global_batch = batch_size * world_size
        if self.global_batch > len(concept_keys):
            raise ValueError(
                f"global batch {self.global_batch} (data.batch_size_per_device={batch_size} x {world_size} devices) "
                f"is larger than the {len(concept_keys)} training rows; lower data.batch_size_per_device"
            )
        self._plan_cache: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.trained = 0
        self.epoch = epoch

    def resume(self, epoch: int, trained: int) -> None:
        """Continue ``epoch`` after its first ``trained`` batches (restored from a checkpoint)."""
        self.epoch, self.trained, self._resume = epoch, trained, (epoch, trained)

    # ---- the plan -----------------------------------------------------------------------------
    def _order(self, rng: np.random.Generator) -> np.ndarray:
        """Row positions for one epoch: every row once, or per-source counts from the weights."""
        n = len(self.keys)
        if not self.weights:
            return rng.permutation(n)
        weights = np.asarray(self.weights, dtype=float)
        present = np.bincount(self.source_ids, minlength=len(weights))
        weights = np.where(present > 0, weights, 0.0)
        share = weights / weights.sum()
        parts = []
        for source, p in enumerate(share):
            rows = np.flatnonzero(self.source_ids == source)
            want = int(round(p * n))
            if want == 0 or len(rows) == 0:
                continue
            reps = -(-want // len(rows))  # ceil: a small, up-weighted source is cycled
            parts.append(np.concatenate([rng.permutation(rows) for _ in range(reps)])[:want])
        return rng.permutation(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    def _global_batches(self) -> np.ndarray:
        if self._plan_cache and self._plan_cache[0] == self.epoch:
            return self._plan_cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self._order(rng)
        if self.cluster_size > 1:
            order = self._sibling_clusters(order, rng)
        elif self.group_by_length:
            chunk = self.mega_batches * self.global_batch
            order = np.concatenate(
                [part[np.argsort(-self.lengths[part], kind="stable")] for part in np.array_split(order, max(1, -(-len(order) // chunk)))]
            ) if len(order) else order
        batches = self._fill(order) if self.unique_concepts else [
            order[i : i + self.global_batch] for i in range(0, len(order) - self.global_batch + 1, self.global_batch)
        ]
        if not batches:
            concepts = len(np.unique(self.keys))
            raise ValueError(
                f"no global batch of {self.global_batch} rows could be formed from {len(self.keys)} rows of "
                f"{concepts} distinct concepts (no concept twice in a batch); lower data.batch_size_per_device "
                f"(at most {concepts // self.world} with {self.world} devices) or set data.unique_concepts=false"
            )
        # one (n_batches, global_batch) array: 8 bytes a row, whatever the number of rows
        plan = np.stack(batches)[rng.permutation(len(batches))]  # mix long and short batches over steps
        self._plan_cache = (self.epoch, plan)
        return plan

    def _sibling_clusters(self, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``order`` rearranged into shuffled runs of at most ``cluster_size`` rows of distinct sibling concepts.

        Rows are ranked within their concept (the first drawn row of a concept is layer 0, the next one
        layer 1, ...); a (group, layer) block therefore holds each of the group's concepts at most once,
        and is cut into runs of ``cluster_size``. A concept with no sibling forms a run of one row.
        """
        n = len(order)
        if n == 0:
            return order
        keys, groups, at = self.keys[order], self.group_keys[order], np.arange(n)  # (n,) each
        by_concept = np.argsort(keys, kind="stable")
        starts = np.r_[True, keys[by_concept][1:] != keys[by_concept][:-1]]
        layer = np.empty(n, dtype=np.int64)
        layer[by_concept] = at - np.maximum.accumulate(np.where(starts, at, 0))  # (n,) row's rank in its concept
        _, group_index = np.unique(groups, return_inverse=True)
        group_rank = rng.permutation(group_index.max() + 1)[group_index]  # (n,) groups in a random order
        pos = np.lexsort((at, layer, group_rank))  # by group, then layer, then the order's own (random) position
        g, l = group_rank[pos], layer[pos]
        block_start = np.r_[True, (g[1:] != g[:-1]) | (l[1:] != l[:-1])]
        within = at - np.maximum.accumulate(np.where(block_start, at, 0))  # (n,) position in its (group, layer) block
        cluster = np.cumsum(block_start | (within % self.cluster_size == 0)) - 1  # (n,) run id, in pos order
        n_clusters = int(cluster[-1]) + 1
        sizes = np.bincount(cluster)  # (n_clusters,)
        log.info(
            "sibling clusters (epoch %d): %d runs of up to %d rows, %.1f on average; %.0f%% of rows beside a sibling",
            self.epoch, n_clusters, self.cluster_size, n / n_clusters, 100 * sizes[sizes > 1].sum() / n,
        )
        sequence = rng.permutation(n_clusters)  # the runs, shuffled
        if self.group_by_length:  # long runs with long runs, within chunks of about mega_batches global batches
            mean_length = np.bincount(cluster, weights=self.lengths[order][pos]) / sizes  # (n_clusters,)
            per_chunk = max(1, round(self.mega_batches * self.global_batch * n_clusters / n))
            sequence = np.concatenate(
                [part[np.argsort(-mean_length[part], kind="stable")] for part in np.array_split(sequence, -(-n_clusters // per_chunk))]
            )
        rank = np.empty(n_clusters, dtype=np.int64)
        rank[sequence] = np.arange(n_clusters)
        return order[pos][np.argsort(rank[cluster], kind="stable")]

    def _fill(self, order: np.ndarray) -> list[np.ndarray]:
        """Greedy: a row whose concept is already in the batch waits for the next batch.

        Walks the order chunk by chunk so that only one chunk is ever a Python list (memory stays
        O(chunk), not O(rows), for tens of millions of rows).
        """
        batches, batch, seen, waiting = [], [], set(), []
        keys = self.keys
        chunk = max(self.global_batch * self.mega_batches, 1 << 16)
        for begin in range(0, len(order), chunk):
            for position in order[begin : begin + chunk].tolist():
                if waiting:
                    still = []
                    for w in waiting:
                        if len(batch) < self.global_batch and keys[w] not in seen:
                            batch.append(w)
                            seen.add(keys[w])
                        else:
                            still.append(w)
                    waiting = still
                if len(batch) == self.global_batch:
                    batches.append(np.asarray(batch))
                    batch, seen = [], set()
                key = keys[position]
                if key in seen:
                    waiting.append(position)
                    continue
                batch.append(position)
                seen.add(key)
                if len(batch) == self.global_batch:
                    batches.append(np.asarray(batch))
                    batch, seen = [], set()
        # the last incomplete batch and rows still waiting are not trained on this epoch; nothing carries
        # them over: the next epoch plans a new order of every row, in which they are drawn like any other
        return batches

    # ---- iteration ----------------------------------------------------------------------------
    def __iter__(self):
        start, stop = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        if skip == 0:
            self.trained = 0
        for batch in self._global_batches()[skip:]:
            yield batch[start:stop].tolist()

    def __len__(self) -> int:
        return len(self._global_batches())
