"""The LightningDataModule of the pair phases: sources -> cleaned rows -> split -> DataLoader."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from biolord.data.collate import PairCollator
from biolord.data.rows import CleaningReport, NoUsableRowsError, clean_rows
from biolord.data.sources import source_rows
from biolord.data.split import _unit, is_held_out

log = logging.getLogger(__name__)


class HeldOut:
    """Held-out concepts for name -> definition retrieval: query i's answer is corpus[i]."""

    def __init__(self, concept_ids: list[str], names: list[str], definitions: list[str]):
        self.concept_ids, self.names, self.definitions = concept_ids, names, definitions

    def __len__(self) -> int:
        return len(self.concept_ids)


def build_rows(sources, report: CleaningReport, term_stats: dict) -> list[dict]:
    rows = []
    for entry in sources:
        stats: Counter = Counter()
        rows.extend(clean_rows(source_rows(dict(entry), stats), report))
        label = entry.get("name") or entry.get("ontology") or entry.get("type")
        term_stats[str(label)] = dict(stats)
    return rows


class PairDataModule(L.LightningDataModule):
    def __init__(self, cfg, tokenizer, max_length: int, output_dir: str | None = None):
        super().__init__()
        self.cfg = cfg
        self.collator = PairCollator(tokenizer, max_length)
        self.output_dir = output_dir
        self.train_rows: list[dict] | None = None
        self.heldout: HeldOut | None = None
        self.report = CleaningReport()
        self.term_stats: dict = {}

    def setup(self, stage: str | None = None) -> None:
        if self.train_rows is not None:
            return
        cfg = self.cfg
        if not cfg.sources:
            raise NoUsableRowsError("data.sources is empty; name at least one source (see conf/data/)")
        rows = build_rows(cfg.sources, self.report, self.term_stats)
        for line in self.report.lines():
            log.info(line)
        for source, stats in self.term_stats.items():
            for reason, n in stats.items():
                log.info("terms excluded from %s (%s): %d", source, reason, n)
        if not rows:
            raise NoUsableRowsError(
                f"data sources {[dict(s) for s in cfg.sources]} gave no usable row "
                f"(skipped: {self.report.summary()['skipped']}); check the source paths and columns"
            )
        train, held = [], []
        for row in rows:
            (held if is_held_out(row["concept_id"], cfg.val_fraction, cfg.split_seed) else train).append(row)
        if cfg.get("max_train_rows"):
            train = train[: int(cfg.max_train_rows)]
        self.train_rows = train
        self.heldout = self._heldout(held)
        batch = cfg.batch_size_per_device
        if batch > len(train):
            raise ValueError(
                f"data.batch_size_per_device={batch} is larger than the {len(train)} training rows; "
                f"lower data.batch_size_per_device (at most {len(train)}) or add data"
            )
        log.info(
            "data: %d training rows, %d held-out rows, %d held-out concepts for retrieval",
            len(train), len(held), len(self.heldout),
        )
        if self.output_dir:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            stats = {
                "train_rows": len(train),
                "heldout_rows": len(held),
                "heldout_retrieval_concepts": len(self.heldout),
                "kinds": dict(Counter(r["kind"] for r in train)),
                "cleaning": self.report.summary(),
                "terms_excluded": self.term_stats,
            }
            (Path(self.output_dir) / "data_stats.json").write_text(json.dumps(stats, indent=2))

    def _heldout(self, held: list[dict]) -> HeldOut:
        """One (preferred name, definition) per held-out concept; the sources emit the label first."""
        first: dict[str, dict] = {}
        for row in held:
            if row["kind"] == "definition" and row["concept_id"] not in first:
                first[row["concept_id"]] = row
        ids = sorted(first, key=lambda c: _unit(c, self.cfg.split_seed + 1))
        if self.cfg.get("val_max_concepts"):
            ids = ids[: int(self.cfg.val_max_concepts)]
        ids.sort()
        return HeldOut(ids, [first[c]["name"] for c in ids], [first[c]["text"] for c in ids])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_rows,
            batch_size=self.cfg.batch_size_per_device,
            shuffle=True,
            drop_last=True,  # equal batch sizes on every rank: the loss gathers candidates across ranks
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )
