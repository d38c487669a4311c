"""``run(cfg)``: the BioLORD-2023 recipe end to end, one command.

contrastive (phase 1) -> self-distillation (phase 2, the contrastive model teaches) -> weight
averaging (phase 3, a soup of the stage models) -> evaluation of the base model, every stage and
the soup on the benchmark suite, ending with one before/after table.

Each stage is a normal run folder ``<output_dir>/<stage>`` made by the stage's own entry point
(``biolord.train.run``, ``biolord.soup.run``, ``biolord.evaluation.runner.run``) from its own entry
config (``train.yaml``, ``average.yaml``, ``evaluate.yaml``) plus the overrides listed in
``conf/pipeline.yaml``, so any stage can be rerun or replaced alone with the usual commands. A
stage whose folder already holds its result is not run again (delete the folder to redo it): a
pipeline stopped during evaluation resumes at evaluation.

The recipe (which presets, how many steps) lives in the stage overrides; the CPU and GPU recipes
differ only in those presets (``conf/experiment/biolord2023_*``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from biolord.config_dir import config_dir

log = logging.getLogger(__name__)

TRAIN_STAGES = ("contrastive", "self_distill")
BASE = "base"


def compose_entry(config_name: str, overrides: list[str]) -> DictConfig:
    """An entry point's config (``conf/<config_name>.yaml``) with overrides, as its command line would give it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside pipeline.py's @hydra.main: same conf/ search path
        return compose(config_name=config_name, overrides=overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def run(cfg: DictConfig) -> dict:
    out = Path(str(cfg.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, dict] = {}
    folders = {name: out / name for name in (*TRAIN_STAGES, "average", "evaluate")}

    planned = [BASE, "contrastive"] + (["self_distill"] if cfg.get("self_distill") is not None else [])
    missing = [s for s in (cfg.get("soup") or []) if s not in planned]
    if missing:  # before any training
        raise ValueError(f"soup={list(cfg.soup)} names {missing}; choose among {planned}")

    # 1. contrastive
    c_cfg = compose_entry("train", [*cfg.contrastive, f"paths.output_dir={folders['contrastive']}"])
    base_model = str(c_cfg.model.name_or_path)
    caches = f"paths.cache_dir={c_cfg.paths.cache_dir}"  # one cache folder for every stage
    stages["contrastive"] = _train_stage(c_cfg, folders["contrastive"])

    # 2. self-distillation, taught by the contrastive model
    if cfg.get("self_distill") is not None:
        s_cfg = compose_entry(
            "train", [*cfg.self_distill, f"teacher={folders['contrastive']}", f"paths.output_dir={folders['self_distill']}"]
        )
        stages["self_distill"] = _train_stage(s_cfg, folders["self_distill"])

    # 3. weight averaging of the stage models (and the base model when `soup` lists it)
    sources = {BASE: base_model, **{name: str(folders[name]) for name in stages}}
    if cfg.get("soup"):
        a_cfg = compose_entry("average", [*cfg.average, f"paths.output_dir={folders['average']}", caches])
        a_cfg.ckpts = [sources[s] for s in cfg.soup]
        a_cfg.data = c_cfg.data  # a greedy soup's held-out score: the training data's split
        stages["average"] = _stage(folders["average"], lambda: _run_average(a_cfg))
        sources["average"] = str(folders["average"])

    train_seconds = round(sum(s["seconds"] for s in stages.values()), 1)
    log.info("pipeline: training stages took %.0f s (%s)", train_seconds,
             ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in stages.items()))  # noqa: E501

    # 4. evaluation: the base model, each stage and the soup, side by side
    results, eval_seconds = [], 0.0
    if cfg.evaluate.get("benchmarks"):
        labels = [m for m in cfg.evaluate.models if m in sources]
        e_cfg = compose_entry("evaluate", [f"paths.output_dir={folders['evaluate']}", caches])
        e_cfg.models = [sources[m] for m in labels]
        e_cfg.benchmarks = list(cfg.evaluate.benchmarks)
        e_cfg.output_dir = str(folders["evaluate"])
        e_cfg.data = c_cfg.data
        e_cfg.update_model_card = bool(cfg.evaluate.get("update_model_card", True))
        start = time.perf_counter()
        from biolord.evaluation.runner import run as evaluate

        results = evaluate(e_cfg)
        eval_seconds = round(time.perf_counter() - start, 1)
        names = {sources[m]: m for m in labels}
        for r in results:
            r["label"] = names.get(r["model"], r["model"])
    table = primary_table(results)
    summary = {"train_seconds": train_seconds, "eval_seconds": eval_seconds, "stages": stages,
               "models": sources, "table": table, "results": results}
    (out / "pipeline.json").write_text(json.dumps(summary, indent=2))
    (out / "pipeline.md").write_text(
        f"Training stages: {train_seconds:.0f} s; evaluation: {eval_seconds:.0f} s\n\n{table}\n"
    )
    per_stage = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in stages.items())
    print(f"\nBioLORD pipeline: training {train_seconds:.0f} s ({per_stage}), evaluation {eval_seconds:.0f} s\n")
    print(table + f"\n\n{out}/pipeline.json, pipeline.md")
    return summary


def _train_stage(stage_cfg: DictConfig, folder: Path) -> dict:
    from biolord.train import run as train

    return _stage(folder, lambda: train(stage_cfg))


def _run_average(a_cfg: DictConfig) -> dict:
    from biolord.soup import run as average

    return average(a_cfg)


def _stage(folder: Path, work) -> dict:
    """Run a stage unless its folder already holds its result; its seconds are recorded either way."""
    done = folder / "stage.json"
    if done.exists() and (folder / "model").is_dir():
        record = json.loads(done.read_text())
        log.info("stage %s already done (%s); delete the folder to run it again", folder.name, done)
        return record
    start = time.perf_counter()
    result = work()
    record = {"folder": str(folder), "seconds": round(time.perf_counter() - start, 3),
              "model_dir": str(folder / "model")}
    if isinstance(result, dict) and "history" in result:
        record["heldout_history"] = result["history"]
    done.write_text(json.dumps(record, indent=2))
    return record


def primary_table(results: list[dict]) -> str:
    """Markdown: one row per model (its label), one column per benchmark's primary metric
    (linking adds acc@5). Benchmarks that could not run are listed by the evaluation stage."""
    from biolord.evaluation.report import scored

    results = scored(results)
    if not results:
        return ""
    benches: dict[str, list[str]] = {}
    for r in results:
        metrics = [r["primary"]] + (["acc@5"] if r["kind"] == "linking" and "acc@5" in r["metrics"] else [])
        benches.setdefault(r["benchmark"], metrics)
    header = [f"{b} {m}" for b, ms in benches.items() for m in ms]
    rows = {}
    for r in results:
        rows.setdefault(r.get("label", r["model"]), {}).update({f"{r['benchmark']} {k}": v for k, v in r["metrics"].items()})
    lines = ["| model | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for label, values in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{values[h]:.2f}" if h in values else "–" for h in header) + " |")
    return "\n".join(lines)
