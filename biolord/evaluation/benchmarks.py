"""Benchmark specs (``conf/benchmark/*.yaml`` or inline mappings) -> benchmark objects.

A benchmark is declared by config alone: ``kind`` picks the reader and the metric, the other keys
name the files and columns. ``benchmarks=[biosses, my_file]`` looks each name up as
``conf/benchmark/<name>.yaml`` (or any folder in ``benchmark_dirs``); a path to a yaml file or an
inline mapping with a ``kind`` works too, so a new benchmark file needs no code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from biolord.evaluation.crosslingual import CrossLingualBenchmark
from biolord.config_dir import config_dir
from biolord.evaluation.files import BenchmarkFileError
from biolord.evaluation.heldout import HeldOutBenchmark
from biolord.evaluation.linking import LinkingBenchmark
from biolord.evaluation.pairs import PairBenchmark

KINDS = {
    "pairs": PairBenchmark,
    "linking": LinkingBenchmark,
    "heldout": HeldOutBenchmark,
    "crosslingual": CrossLingualBenchmark,
}
PRESET_DIR = config_dir() / "benchmark"


def load_spec(entry: Any, search_dirs: Iterable[str | Path] = ()) -> dict:
    """A benchmark name, a yaml path or a mapping -> a plain dict with at least ``name`` and ``kind``."""
    if isinstance(entry, (dict, DictConfig)):
        spec = OmegaConf.to_container(OmegaConf.create(entry), resolve=True) if isinstance(entry, DictConfig) else dict(entry)
    else:
        entry = str(entry)
        dirs = [Path(d).expanduser() for d in search_dirs] + [PRESET_DIR]
        candidates = [Path(entry).expanduser()] if entry.endswith((".yaml", ".yml")) else [d / f"{entry}.yaml" for d in dirs]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
            raise BenchmarkFileError(
                f"benchmark {entry!r} not found (looked for {', '.join(str(c) for c in candidates)}); "
                f"known benchmarks: {known}. Add a yaml to conf/benchmark/ or give a path to one"
            )
        spec = OmegaConf.to_container(OmegaConf.load(found), resolve=True)
        spec.setdefault("name", found.stem)
    if "kind" not in spec or spec["kind"] not in KINDS:
        raise BenchmarkFileError(
            f"benchmark {spec.get('name', entry)!r}: kind={spec.get('kind')!r} is unknown; choose one of {sorted(KINDS)}"
        )
    spec.setdefault("name", spec["kind"])
    return spec


def without_sources(spec: dict) -> dict:
    """The spec less its ``source`` entries (where ``python -m biolord.fetch`` gets a file), which readers never see."""
    return {k: without_sources(v) if isinstance(v, dict) else v for k, v in spec.items() if k != "source"}


def build(entry: Any, evals_dir=None, search_dirs: Iterable = (), **context):
    """One benchmark object; ``context`` passes run-wide objects (``data``, ``heldout``) to kinds that want them."""
    spec = without_sources(load_spec(entry, search_dirs))
    cls = KINDS[spec.pop("kind")]
    if cls is HeldOutBenchmark:
        spec.update({k: v for k, v in context.items() if v is not None})
    return cls(evals_dir=evals_dir, **spec)
