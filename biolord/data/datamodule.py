"""The LightningDataModule of the pair phases: sources -> cached Arrow rows -> split -> global batches."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from biolord import distributed
from biolord.data.build import RowTable, load_or_build, source_labels
from biolord.data.collate import PairCollator
from biolord.data.rows import NoUsableRowsError
from biolord.data.sampler import GlobalBatchSampler
from biolord.data.split import by_unit, held_out
from biolord.data.truncation import count_truncated

log = logging.getLogger(__name__)


class HeldOut:
    """Held-out concepts for name -> definition retrieval: query i's answer is corpus[i]."""

    def __init__(self, concept_ids: list[str], names: list[str], definitions: list[str]):
        self.concept_ids, self.names, self.definitions = concept_ids, names, definitions

    def __len__(self) -> int:
        return len(self.concept_ids)


class RowsView(Dataset):
    """Training rows as a map-style dataset over the memory-mapped table (positions -> table rows)."""

    COLUMNS = ["concept_id", "name", "text", "concept_key"]

    def __init__(self, table: RowTable, indices: np.ndarray):
        self.data = table.dataset.select_columns(self.COLUMNS)
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.data[int(self.indices[i])]

    def __getitems__(self, positions: list[int]) -> list[dict]:
        batch = self.data[self.indices[positions].tolist()]  # one Arrow take for the whole batch
        return [dict(zip(batch, values)) for values in zip(*batch.values())]


class PairDataModule(L.LightningDataModule):
    def __init__(self, cfg, tokenizer, max_length: int, output_dir: str | None = None, world_size: int | None = None, rank: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.collator = PairCollator(tokenizer, max_length)
        self.weights: list[float] | None = None
        self.unused: dict[str, int] = {}
        self.truncated: dict = {}
        self.output_dir = output_dir
        self._world, self._rank = world_size, rank
        self.table: RowTable | None = None
        self.train_indices: np.ndarray | None = None
        self.heldout: HeldOut | None = None

    @property
    def report(self) -> dict:
        return self.table.report if self.table else {}

    def setup(self, stage: str | None = None) -> None:
        if self.table is not None:
            return
        cfg = self.cfg
        if not cfg.sources:
            raise NoUsableRowsError("data.sources is empty; name at least one source (see conf/data/)")
        self.weights = mixing_weights(list(cfg.sources))  # checked before anything is read
        table = load_or_build(list(cfg.sources), cfg.split_seed, cfg.cache_dir)
        for line in _report_lines(table.report):
            log.info(line)
        if not table.keep.any():
            raise NoUsableRowsError(
                f"data sources {[dict(s) for s in cfg.sources]} gave no usable row "
                f"(skipped: {table.report['skipped']}, terms excluded: {table.report['terms_excluded']}); "
                "check the source paths, columns and format"
            )
        held_mask = held_out(table.column("unit"), cfg.val_fraction)  # (N,) by concept: no concept on both sides
        train = np.flatnonzero(table.keep & ~held_mask)
        if self.weights is not None:  # a source of weight 0 is never sampled: say so, and leave it out of the count
            source_ids = table.column("source_id")[train]
            for i, w in enumerate(self.weights):
                if w == 0:
                    n = int((source_ids == i).sum())
                    self.unused[table.sources[i]] = n
                    log.warning(
                        "data.sources[%d] (%s) has weight 0: its %d training rows are never sampled (its held-out rows "
                        "are still scored); give it a weight > 0 to train on it, or remove it", i, table.sources[i], n,
                    )
            train = train[np.asarray(self.weights)[source_ids] > 0]
        if cfg.get("max_train_rows") and len(train) > int(cfg.max_train_rows):
            # a seeded random subset, spread over concepts and sources (the table is in source order)
            rng = np.random.default_rng(cfg.get("shuffle_seed", 0))
            train = np.sort(rng.choice(train, size=int(cfg.max_train_rows), replace=False))
        self.table, self.train_indices = table, train
        self.heldout = self._heldout(np.flatnonzero(table.keep & held_mask))
        world = self._world or distributed.world_size()
        global_batch = cfg.batch_size_per_device * world
        if global_batch > len(train):
            raise ValueError(
                f"data.batch_size_per_device={cfg.batch_size_per_device} (x {world} devices) is larger than the "
                f"{len(train)} training rows; lower data.batch_size_per_device (at most {len(train) // world}) or add data"
            )
        log.info(
            "data: %d training rows, %d held-out rows, %d held-out concepts for retrieval",
            len(train), int((table.keep & held_mask).sum()), len(self.heldout),
        )
        rank = self._rank if self._rank is not None else distributed.rank()
        if rank == 0 and self.collator.tokenizer is not None:  # only rank 0 reports; no tokenizer: split only
            self.truncated = count_truncated(table, np.flatnonzero(table.keep), self.collator.tokenizer, self.collator.max_length)
            for side in ("name", "text"):
                for src, n in self.truncated[side].items():
                    if n:
                        log.info("rows of %s whose %s is cut at %d tokens: %d", src, side, self.collator.max_length, n)
        if self.output_dir and rank == 0:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            stats = {
                "train_rows": int(len(train)),
                "heldout_rows": int((table.keep & held_mask).sum()),
                "heldout_retrieval_concepts": len(self.heldout),
                **table.report,
                "truncated": self.truncated,
                "unused_sources": self.unused,
                "cache": str(table.folder),
            }
            (Path(self.output_dir) / "data_stats.json").write_text(json.dumps(stats, indent=2))

    def _heldout(self, held: np.ndarray) -> HeldOut:
        """One (preferred name, definition) per held-out concept; sources emit the label first."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(held) == 0:
            return HeldOut([], [], [])
        sub = self.table.dataset.data.table.take(pa.array(held)).select(["concept_id", "name", "text", "kind", "unit"])
        sub = sub.filter(pc.equal(sub.column("kind"), "definition"))
        first: dict[str, tuple[str, str, float]] = {}
        for cid, name, text, unit in zip(*(sub.column(c).to_pylist() for c in ("concept_id", "name", "text", "unit"))):
            first.setdefault(cid, (name, text, unit))
        # a deterministic subset: concepts ordered by a second hash of their id
        ids = by_unit(first, self.cfg.split_seed + 1)
        if self.cfg.get("val_max_concepts"):
            ids = ids[: int(self.cfg.val_max_concepts)]
        ids.sort()
        return HeldOut(ids, [first[c][0] for c in ids], [first[c][1] for c in ids])

    def sampler(self) -> GlobalBatchSampler:
        cfg, table, idx = self.cfg, self.table, self.train_indices
        return GlobalBatchSampler(
            concept_keys=table.column("concept_key")[idx],
            lengths=table.column("length")[idx],
            source_ids=table.column("source_id")[idx].astype(np.int64),
            batch_size=cfg.batch_size_per_device,
            world_size=self._world or distributed.world_size(),
            rank=self._rank if self._rank is not None else distributed.rank(),
            seed=cfg.get("shuffle_seed", 0),
            unique_concepts=cfg.get("unique_concepts", True),
            group_by_length=cfg.get("group_by_length", True),
            weights=self.weights,
            group_keys=table.column("group_key")[idx],
            cluster_size=cfg.get("sibling_clusters") or 0,
        )

    def train_dataloader(self) -> DataLoader:
        from biolord.resume import ResumableDataLoader

        return ResumableDataLoader(
            RowsView(self.table, self.train_indices),
            batch_sampler=self.sampler(),
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )


def mixing_weights(sources: list) -> list[float] | None:
    """The mixing weight of each source (1 where unset), or None when no source sets one.

    A weight is a proportion: a number >= 0, at least one of them > 0; 0 keeps a source for
    held-out scoring only.
    """
    if not any(s.get("weight") is not None for s in sources):
        return None
    labels, weights = source_labels([dict(s) for s in sources]), []
    for i, (entry, label) in enumerate(zip(sources, labels)):
        given = entry.get("weight")
        try:
            w = 1.0 if given is None else float(given)
        except (TypeError, ValueError):
            w = math.nan
        if not math.isfinite(w) or w < 0:
            raise ValueError(
                f"data.sources[{i}] ({label}) has weight={given!r}; a weight is a mixing proportion: give a number >= 0 "
                f"(e.g. data.sources[{i}].weight=1; 0 keeps the source for held-out scoring only)"
            )
        weights.append(w)
    if sum(weights) == 0:
        raise ValueError(f"every data.sources weight is 0 ({dict(zip(labels, weights))}); give at least one source a weight > 0")
    return weights


def _report_lines(report: dict) -> list[str]:
    out = [f"rows kept from {src}: {n}" for src, n in sorted(report.get("kept", {}).items())]
    out += [f"rows skipped from {k}: {n}" for k, n in sorted(report.get("skipped", {}).items())]
    for src, stats in report.get("terms_excluded", {}).items():
        out += [f"terms excluded from {src} ({reason}): {n}" for reason, n in stats.items()]
    for src, stats in report.get("read_leniently", {}).items():
        out += [f"read leniently from {src} ({reason}): {n} (the terms kept)" for reason, n in stats.items()]
    return out
