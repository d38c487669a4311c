"""Train a biolord model: ``python train.py phase=contrastive`` (see README for more).

Single device (CPU or one GPU):   python train.py phase=contrastive
Several GPUs on one machine:      python train.py trainer=ddp trainer.devices=4
Override anything:                python train.py trainer.max_steps=2000 data.batch_size_per_device=64 model=hub model.name_or_path=sentence-transformers/all-mpnet-base-v2
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from biolord.console import session
    from biolord.train import run

    with session("train"):
        run(cfg)


if __name__ == "__main__":
    main()
