"""``python -m biolord.data [data=...] [model=...]``: statistics of the configured training data.

Uses ``conf/data_stats.yaml``: train.py's config (the data group, and the model's tokenizer for
token lengths) with its own run folder, ``outputs/data/<time>``, which is not a training run.
"""

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from biolord.config_dir import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="data_stats")
def main(cfg: DictConfig) -> None:
    from biolord.console import session

    with session("data statistics"):
        statistics(cfg)


def statistics(cfg: DictConfig) -> dict:
    from transformers import AutoTokenizer

    from biolord import model_source
    from biolord.data.datamodule import PairDataModule
    from biolord.data.stats import data_statistics, format_statistics

    tokenizer = AutoTokenizer.from_pretrained(model_source.resolve(cfg.model.name_or_path))
    dm = PairDataModule(cfg.data, tokenizer, cfg.model.max_seq_length)
    stats = data_statistics(dm, tokenizer, sample=cfg.get("stats_sample", 5000))
    print(format_statistics(stats))
    out = Path(cfg.paths.output_dir) / "data_statistics.json"
    out.write_text(json.dumps(stats, indent=2))
    print(f"written to {out}")
    return stats


if __name__ == "__main__":
    main()
