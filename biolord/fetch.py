"""Download the public benchmark files into ``evals_dir`` and check their sha256 (or only check them).

    python -m biolord.fetch                                  # all presets that name a source
    python -m biolord.fetch 'benchmarks=[mayosrs,ncbi_disease]' evals_dir=/data/evals
    python -m biolord.fetch check=true                       # offline: files placed by hand

The sources and hashes live in ``conf/benchmark/*.yaml`` (``source:`` beside each ``path``); see
``biolord.evaluation.download``. Exits with status 1 when a file is missing, damaged or must be
made by hand, after reporting every file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from biolord.config_dir import config_dir


def run(cfg: DictConfig) -> list:
    from biolord.evaluation.benchmarks import PRESET_DIR, load_spec
    from biolord.evaluation.download import check, fetch, file_sources, format_report
    from biolord.evaluation.files import evals_dir_or_default

    dirs = list(cfg.get("benchmark_dirs") or ())
    names = cfg.get("benchmarks")
    if names is None:
        names = sorted({p.stem for d in [*map(Path, dirs), PRESET_DIR] if d.is_dir() for p in d.glob("*.yaml")})
    specs = [load_spec(name, dirs) for name in names]
    sources = [s for spec in specs for s in file_sources(spec)]
    evals_dir = evals_dir_or_default(cfg.get("evals_dir"))
    if not sources:
        print(f"none of the benchmarks {list(names)} names a source; nothing to fetch into {evals_dir}")
        return []
    if cfg.get("check"):
        statuses = check(sources, evals_dir)
    else:
        statuses = fetch(sources, evals_dir, progressbar=bool(cfg.get("progressbar")))
    print(format_report(statuses, evals_dir))
    return statuses


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="fetch")
def main(cfg: DictConfig) -> None:
    if any(s.failed for s in run(cfg)):
        sys.exit(1)


if __name__ == "__main__":
    main()
