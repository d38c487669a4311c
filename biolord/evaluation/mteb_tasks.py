"""MTEB on any model biolord wrote: ``python -m biolord.evaluate model=<folder> mteb=<benchmark or tasks>``.

Embedding models are compared on MTEB (Muennighoff et al., EACL 2023), e.g. its ``MTEB(Medical, v1)``
benchmark or the BIOSSES task, and the sentence-transformers and MTEB maintainers recommend scoring
a trained model with ``mteb`` itself. So the tasks are run by ``mteb.evaluate`` on the model loaded
with ``SentenceTransformer``, and mteb writes its own result files, in the layout of MTEB's results
repository (``<output_dir>/mteb/results/<model>/<revision>/<Task>.json``). Each task also becomes one
record of biolord's results table (kind ``mteb``, primary = the task's main score, x100 like every
other benchmark), next to the rest of biolord's evaluations.

``mteb`` names a benchmark (``'MTEB(Medical, v1)'``), a task (``BIOSSES``), a list of them, or a local
task class as ``package.module:Class`` (a subclass of an mteb task whose ``load_data`` reads local
files: the offline route, and how the tests run). Needs ``pip install mteb``.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from pathlib import Path
from typing import Sequence

from biolord import matryoshka, model_source
from biolord.evaluation.report import _short

log = logging.getLogger(__name__)

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _mteb():
    try:
        import mteb
    except ImportError as err:
        raise ImportError(f"mteb=... needs the mteb package ({err}); pip install mteb") from err
    return mteb


def resolve_tasks(spec) -> list:
    """mteb task objects for ``spec``: a name or a list of names (benchmarks, tasks, ``module:Class``)."""
    mteb = _mteb()
    items = [spec] if isinstance(spec, str) or not isinstance(spec, Sequence) else list(spec)
    tasks = []
    for item in items:
        if not isinstance(item, str):  # a task object (Python callers)
            tasks.append(item)
            continue
        if _IMPORT_PATH.match(item):
            module, _, attr = item.partition(":")
            try:
                task = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise ValueError(f"mteb={item!r}: cannot import {attr} from {module} ({err})") from err
            tasks.append(task() if isinstance(task, type) else task)
            continue
        try:
            tasks.extend(mteb.get_benchmark(item).tasks)
        except KeyError as not_benchmark:
            try:
                tasks.append(mteb.get_task(item))
            except KeyError as not_task:
                raise ValueError(
                    f"mteb={item!r} is neither an MTEB benchmark ({not_benchmark.args[0]}) nor a task "
                    f"({not_task.args[0]}); list them with `mteb.get_benchmarks()` / `mteb.get_tasks()`, "
                    "or give a local task as package.module:Class"
                ) from None
    if not tasks:
        raise ValueError(f"mteb={spec!r} names no task")
    return tasks


def run(models: list[str], spec, output_dir: Path, batch_size: int, device, dims: list[int] | None) -> list[dict]:
    """Each model on each task (at each of ``dims``, through sentence-transformers' ``truncate_dim``)."""
    mteb = _mteb()
    from sentence_transformers import SentenceTransformer

    tasks = resolve_tasks(spec)  # unknown names fail before any model is loaded
    log.info("MTEB: %d task(s): %s", len(tasks), ", ".join(t.metadata.name for t in tasks))
    main_score = {t.metadata.name: t.metadata.main_score for t in tasks}
    records = []
    for name in map(str, models):
        model = SentenceTransformer(model_source.resolve(name), device=str(device))
        full = model.get_embedding_dimension()
        # mteb names its result folder after the model; a local folder has no hub name
        model.model_card_data.model_name = _short(name)
        for dim in matryoshka.check_dims(dims, full, "truncate_dims") or [None]:
            model.truncate_dim = dim  # sentence-transformers cuts the vectors after the modules
            folder = output_dir / "mteb" / (f"dim-{dim}" if dim else "")
            cache = mteb.ResultCache(cache_path=folder)
            result = mteb.evaluate(
                model, tasks, cache=cache, overwrite_strategy="always", raise_error=False,
                encode_kwargs={"batch_size": int(batch_size)},
            )
            done = {r.task_name for r in result.task_results}
            for task_result in result.task_results:
                file = cache.get_task_result_path(task_result.task_name, result.model_name, result.model_revision)
                records.append(_record(name, task_result, main_score[task_result.task_name], file, dim or full))
            for error in result.exceptions or []:
                log.error("MTEB task %s failed on %s: %s", error.task_name, name, error.exception)
                records.append({"model": name, "benchmark": error.task_name, "kind": "mteb", "primary": None,
                                "n": None, "metrics": {}, "skipped": {}, "seconds": 0.0, "files": {},
                                "dim": dim or full, "error": error.exception})
            if not done:
                raise RuntimeError(f"no MTEB task ran on {name}: " + "; ".join(
                    f"{e.task_name}: {e.exception}" for e in result.exceptions or [])
                    + ". MTEB's tasks read their data from the Hugging Face hub; offline, give a local task "
                    "as mteb=package.module:Class (an mteb task whose load_data reads local files)")
    return records


def _record(model: str, task_result, main: str, file: Path, dim: int | None) -> dict:
    """One line of biolord's results.jsonl for one MTEB task: its main score (mean over splits and
    subsets, as ``TaskResult.get_score``) x100, and the path and sha256 of mteb's result file."""
    scores = {split: {s["hf_subset"]: round(100 * float(s["main_score"]), 4) for s in rows}
              for split, rows in task_result.scores.items()}
    return {
        "model": model,
        "benchmark": task_result.task_name,
        "kind": "mteb",
        "primary": main,
        "n": None,
        "metrics": {main: round(100 * float(task_result.get_score()), 4)},
        "skipped": {},
        "seconds": round(float(task_result.evaluation_time or 0.0), 2),
        "files": {str(file): hashlib.sha256(file.read_bytes()).hexdigest()} if file.exists() else {},
        "dim": dim,
        "details": {"main_score_per_split_and_subset": scores, "mteb_version": task_result.mteb_version},
    }
