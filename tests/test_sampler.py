"""GlobalBatchSampler: unique concepts per global batch, rank shards, determinism, mixing, length grouping."""

import numpy as np
import pytest

from biolord.data.sampler import GlobalBatchSampler


def _arrays(n=400, concepts=60, seed=0):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, concepts, size=n).astype(np.int64)  # many rows share a concept
    lengths = rng.integers(5, 300, size=n)
    sources = (np.arange(n) >= n * 3 // 4).astype(np.int64)  # 3/4 from source 0, 1/4 from source 1
    return keys, lengths, sources


def _global_batches(sampler_kwargs, world):
    shards = [list(GlobalBatchSampler(**sampler_kwargs, world_size=world, rank=r)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank the same number of steps
    return [np.concatenate([np.asarray(shards[r][i]) for r in range(world)]) for i in range(len(shards[0]))], shards


def test_no_concept_twice_in_a_global_batch_and_disjoint_equal_shards():
    keys, lengths, sources = _arrays()
    kwargs = dict(concept_keys=keys, lengths=lengths, source_ids=sources, batch_size=8, seed=3)
    batches, shards = _global_batches(kwargs, world=2)
    for batch in batches:
        assert len(batch) == 16
        assert len(set(keys[batch].tolist())) == 16  # across both ranks
    used = np.concatenate(batches)
    assert len(used) == len(set(used.tolist()))  # no row twice in an epoch
    assert len(used) > 0.8 * len(keys)  # few rows left over for the next epoch
    for r0, r1 in zip(*shards):
        assert not set(r0) & set(r1)


def test_deterministic_per_seed_and_epoch():
    keys, lengths, sources = _arrays()
    make = lambda seed: GlobalBatchSampler(keys, lengths, sources, batch_size=8, seed=seed)
    a, b = make(1), make(1)
    assert list(a) == list(b)
    assert list(a) != list(make(2))
    a.set_epoch(1)
    assert list(a) != list(b)


def test_duplicates_allowed_when_switched_off():
    keys = np.zeros(64, dtype=np.int64)  # one concept
    s = GlobalBatchSampler(keys, np.ones(64, dtype=int), np.zeros(64, dtype=np.int64), batch_size=8, unique_concepts=False)
    assert len(list(s)) == 8
    strict = GlobalBatchSampler(keys, np.ones(64, dtype=int), np.zeros(64, dtype=np.int64), batch_size=8)
    with pytest.raises(ValueError, match="1 distinct concepts"):  # a single concept can never fill a unique batch
        list(strict)


def test_length_grouping_puts_similar_lengths_together():
    keys, lengths, sources = _arrays(n=2000, concepts=2000)
    spread = {}
    for grouped in (False, True):
        s = GlobalBatchSampler(keys, lengths, sources, batch_size=16, group_by_length=grouped, mega_batches=20)
        spread[grouped] = np.mean([lengths[b].max() - lengths[b].min() for b in map(np.asarray, s)])
    assert spread[True] < 0.3 * spread[False]


def test_mixing_weights_set_the_share_of_each_source():
    keys, lengths, sources = _arrays(n=2000, concepts=2000)
    s = GlobalBatchSampler(keys, lengths, sources, batch_size=10, weights=[1.0, 3.0], group_by_length=False)
    drawn = np.concatenate([np.asarray(b) for b in s])
    share = np.mean(sources[drawn] == 1)
    assert share == pytest.approx(0.75, abs=0.03)  # the small source is up-sampled (cycled)


def test_global_batch_larger_than_data():
    keys, lengths, sources = _arrays(n=10)
    with pytest.raises(ValueError, match="global batch 16 .*larger than the 10 training rows"):
        GlobalBatchSampler(keys, lengths, sources, batch_size=8, world_size=2)


def test_too_few_concepts_for_a_unique_batch_is_a_clear_error():
    keys = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
    s = GlobalBatchSampler(keys, np.ones(6, dtype=int), np.zeros(6, dtype=np.int64), batch_size=4)
    with pytest.raises(ValueError, match="from 6 rows of 3 distinct concepts.*at most 3.*unique_concepts=false"):
        len(s)


def _family_arrays(families=40, per_family=6, rows_per_concept=3, seed=0):
    """Concept c belongs to family c // per_family; each concept has a few rows."""
    concepts = families * per_family
    keys = np.repeat(np.arange(concepts, dtype=np.int64), rows_per_concept)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 300, size=len(keys))
    return keys, keys // per_family, lengths, np.zeros(len(keys), dtype=np.int64)


@pytest.mark.parametrize("group_by_length", [False, True])
def test_sibling_clusters_put_distinct_siblings_side_by_side(group_by_length):
    keys, groups, lengths, sources = _family_arrays()
    common = dict(concept_keys=keys, lengths=lengths, source_ids=sources, batch_size=16, seed=1, group_by_length=group_by_length)

    def sibling_pairs(sampler):
        # per global batch: pairs of rows whose concepts differ but share a family (hard negatives)
        total = 0
        for batch in map(np.asarray, sampler):
            assert len(set(keys[batch].tolist())) == len(batch)  # the unique-concept rule still holds
            g = groups[batch]
            total += int((g[:, None] == g[None, :]).sum() - len(g)) // 2
        return total

    plain = sibling_pairs(GlobalBatchSampler(**common))
    clustered = GlobalBatchSampler(**common, group_keys=groups, cluster_size=4)
    assert sibling_pairs(clustered) > 5 * max(plain, 1)  # 40 families: a random batch of 16 holds few siblings (~7x measured)
    drawn = np.concatenate([np.asarray(b) for b in clustered])
    assert len(drawn) == len(set(drawn.tolist()))  # no row twice in an epoch
    assert len(drawn) > 0.8 * len(keys)
    assert list(clustered) == list(GlobalBatchSampler(**common, group_keys=groups, cluster_size=4))  # deterministic


def test_sibling_clusters_shard_over_ranks_and_need_groups():
    keys, groups, lengths, sources = _family_arrays()
    kwargs = dict(concept_keys=keys, lengths=lengths, source_ids=sources, batch_size=8, seed=2, group_keys=groups, cluster_size=4)
    batches, shards = _global_batches(kwargs, world=2)
    for batch in batches:
        assert len(set(keys[batch].tolist())) == 16  # across both ranks
    with pytest.raises(ValueError, match="group_keys"):
        GlobalBatchSampler(keys, lengths, sources, batch_size=8, cluster_size=4)
