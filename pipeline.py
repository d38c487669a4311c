"""The BioLORD-2023 recipe in one command: contrastive -> self-distillation -> weight averaging -> evaluation.

    python pipeline.py                           # CPU recipe: all-MiniLM-L6-v2 on the embedded ontologies
    python pipeline.py soup=[contrastive]        # skip averaging with the student (a one-ingredient "soup")
    python pipeline.py evaluate.benchmarks=[heldout,biosses]

Each stage writes a normal run folder under outputs/pipeline/<time>/<stage> (see conf/pipeline.yaml).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="pipeline")
def main(cfg: DictConfig) -> None:
    from biolord.console import session
    from biolord.pipeline import run

    with session("pipeline"):
        run(cfg)


if __name__ == "__main__":
    main()
