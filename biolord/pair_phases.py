"""The hooks of the two pair phases (contrastive, self_distill) for the one run path, ``biolord.train.run``.

Both train on ``(name, text)`` pairs from ``biolord.data.datamodule.PairDataModule``, are scored by
held-out name -> definition retrieval (and the configured benchmarks) during training, and export
the encoder with a card that holds those figures. They differ in the network's start (the base
model, or a copy of the teacher) and in the LightningModule (``biolord.phases``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from biolord import card, encoder_spec, matryoshka
from biolord.data.datamodule import PairDataModule
from biolord.encoder import Encoder, freeze_as_configured
from biolord.evaluation.benchmark_callback import BenchmarkCallback
from biolord.evaluation.callback import HeldOutRetrievalCallback
from biolord.export import export_sentence_transformers
from biolord.losses import InfoNCELoss
from biolord.model_source import ModelNotFoundError
from biolord.phases.contrastive import ContrastivePhase
from biolord.phases.hooks import ModuleParts, PhaseHooks, Report
from biolord.phases.self_distill import DistillWeights, SelfDistillPhase
from biolord.teacher_cache import FrozenTeacher, TeacherCache, teacher_precision

log = logging.getLogger(__name__)


class ContrastiveHooks(PhaseHooks):
    name = "contrastive"
    summary = ("Contrastive phase of BioLORD-2023: concept names pulled towards their definitions and "
               "knowledge-graph descriptions (InfoNCE over in-batch negatives).")

    def network(self) -> Encoder:
        return Encoder.from_config(self.cfg.model)

    def data(self, network: Encoder, stats_dir: Path | None) -> PairDataModule:
        data = PairDataModule(self.cfg.data, network.tokenizer, network.max_seq_length,
                              str(stats_dir) if stats_dir is not None else None)
        data.setup("fit")
        return data

    def loss(self, network: Encoder) -> InfoNCELoss:
        margin = OmegaConf.select(self.cfg, "phase.guide.margin", default=0.0)
        # Matryoshka dims checked here, before fit
        return InfoNCELoss(**self.cfg.phase.loss, model_dim=network.dim, guide_margin=margin)

    def module(self, network: Encoder, data, parts: ModuleParts) -> ContrastivePhase:
        return ContrastivePhase(network, self.loss(network), guide=self.guide(network),
                                **parts.kwargs(self.cfg.phase.get("tokens_per_forward")))

    def guide(self, network: Encoder) -> TeacherCache | None:
        """The guide's vectors for guided false-negative filtering (``phase.guide.model``), or None.

        The one loader (``encoder_spec.load_model``) reads it; it sees what the trained model sees
        (max_seq_length), and its vectors share the teacher cache of self-distillation.
        """
        guide = OmegaConf.select(self.cfg, "phase.guide")
        if guide is None or not guide.get("model"):
            return None
        try:
            model = encoder_spec.load_model(str(guide.model), max_seq_length=network.max_seq_length)
        except ModelNotFoundError as err:  # its message names model.name_or_path, the reader's usual key
            raise ModelNotFoundError(f"phase.guide.model={guide.model} (the guide of guided false-negative "
                                     f"filtering; null turns it off): {err}") from err
        precision = teacher_precision(guide.get("precision"), OmegaConf.select(self.cfg, "trainer.precision"))
        return TeacherCache(Path(str(guide.cache_dir)), FrozenTeacher(model, precision=precision), batch_size=guide.batch_size)

    def callbacks(self, data) -> list:
        ev = self.cfg.eval
        bench = BenchmarkCallback.from_config(self.cfg.get("bench"))  # None when no benchmark is configured
        return [HeldOutRetrievalCallback(ev.every_n_steps, ev.batch_size, ev.at_start)] + ([bench] if bench else [])

    def outcome(self, module, callbacks: list) -> dict:
        return {"history": callbacks[0].history, "bench_history": callbacks[1].history if len(callbacks) > 1 else []}

    def report(self, network: Encoder, data: PairDataModule, module, callbacks: list, export: bool) -> Report:
        outcome = self.outcome(module, callbacks)
        history, bench_history = outcome["history"], outcome["bench_history"]
        table, bench_table = before_after_table(history), bench_before_after(bench_history)
        summary = ("\nHeld-out name -> definition retrieval (concepts never seen in training):\n" + table if table else "")
        summary += "\n\nBenchmarks:\n" + bench_table if bench_table else ""
        text = self.card(network, history, bench_history, data.report.get("kept", {}), table, bench_table) if export else ""
        return Report({"heldout_retrieval": history, "benchmarks": bench_history}, summary, text)

    def export(self, network: Encoder, folder: Path, card_text: str) -> Path:
        return export_sentence_transformers(network, folder, card_text)

    def card(self, encoder: Encoder, history: list[dict], bench_history: list[dict], rows_kept: dict | None,
             table: str, bench_table: str) -> str:
        """The exported model's README.md: biolord.card's generator with this run's facts."""
        cfg = self.cfg
        dims = OmegaConf.select(cfg, "phase.loss.matryoshka_dims")  # the card says which sizes were trained
        _, _, inherited = card.base_model_facts(encoder.source)  # a self-distilled model keeps its teacher's data
        sections = [f"## Held-out retrieval\n\nName -> definition retrieval on concepts never seen in training.\n\n{table}"
                    if table else "",
                    f"## Benchmarks\n\nAt the first and the last evaluation of the run.\n\n{bench_table}" if bench_table else "",
                    matryoshka.card_section(dims).strip()]
        return matryoshka.tag_card(card.model_card(
            title=f"biolord {self.name.replace('_', '-')} model",
            summary=self.summary,
            model_facts=card.encoder_facts(encoder),
            base_model=encoder.source,
            credits=card.data_credits(cfg.data.sources, rows_kept),
            extra_datasets=inherited,
            scores=card.heldout_scores(history[-1] if history else None)
            + card.benchmark_scores(card.last_benchmarks(bench_history)),
            sections=sections,
            config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
            license=OmegaConf.select(cfg, "card.license"),
            project_url=OmegaConf.select(cfg, "card.project_url"),
        ), dims)


def teacher_spec(spec: str | None, what: str) -> str:
    """The configured teacher, or the error that says what to pass."""
    if not spec:
        raise ValueError(
            f"phase=self_distill needs {what}: e.g. teacher=outputs/contrastive/<run> (a run folder, its model/ "
            "folder, a sentence-transformers folder or a hub id)"
        )
    return str(spec)


class SelfDistillHooks(ContrastiveHooks):
    name = "self_distill"
    summary = ("Self-distillation phase of BioLORD-2023: the student keeps the contrastive teacher's similarities "
               "while training on the concept pairs again.")

    @property
    def model_key(self) -> str:
        """phase.student_init=teacher: the student is a copy of the teacher, whatever model.name_or_path says."""
        return "teacher" if self.cfg.phase.student_init == "teacher" else "model.name_or_path"

    def check(self) -> None:
        teacher_spec(self.cfg.get("teacher"), "a teacher")  # before any heavy work
        if self.cfg.phase.student_init not in ("base", "teacher"):
            raise ValueError(f"phase.student_init={self.cfg.phase.student_init!r}: choose base (the model group) or teacher")

    def network(self) -> Encoder:
        """The student: the base model (``model`` group) or a copy of the teacher (``phase.student_init``)."""
        if self.cfg.phase.student_init == "base":
            return Encoder.from_config(self.cfg.model)
        teacher = teacher_spec(self.cfg.get("teacher"), "a teacher")
        student = encoder_spec.load_model(teacher, max_seq_length=self.cfg.model.get("max_seq_length"))
        if not isinstance(student, Encoder):
            raise ValueError(
                f"phase.student_init=teacher: the teacher {teacher} is {encoder_spec.describe(student)}; a "
                "self-distillation student is a plain encoder (its pairs are tokenized without a prefix, its "
                "vectors not projected): use phase.student_init=base with model.name_or_path=<a plain encoder>")
        return freeze_as_configured(student, self.cfg.model)

    def module(self, network: Encoder, data, parts: ModuleParts) -> SelfDistillPhase:
        cfg, phase = self.cfg, self.cfg.phase
        # the one loader: a folder, a run folder or checkpoint of any phase, a student with its prefix and
        # projection; the teacher sees what the student sees (max_seq_length)
        teacher = encoder_spec.load_model(teacher_spec(cfg.get("teacher"), "a teacher"),
                                          max_seq_length=network.max_seq_length)
        if teacher.dim != network.dim:
            raise ValueError(
                f"teacher {cfg.teacher} has dimension {teacher.dim} but the student {network.source} has {network.dim}; "
                "self-distillation needs the same embedding size (pick a student of the teacher's family)"
            )
        loss = self.loss(network)
        weights = DistillWeights(**phase.weights)
        root = Path(str(phase.teacher_cache_dir))
        precision = teacher_precision(phase.get("teacher_precision"), OmegaConf.select(cfg, "trainer.precision"))
        names = TeacherCache(root, FrozenTeacher(teacher, precision=precision),
                             batch_size=phase.teacher_batch_size)  # names and, for KL, texts
        sentences = names  # the texts' MSE targets
        if phase.get("sentence_teacher"):
            # the base model teaches the sentence side: general sentence geometry is kept
            sentence = encoder_spec.load_model(teacher_spec(phase.sentence_teacher, "phase.sentence_teacher"),
                                               max_seq_length=network.max_seq_length)
            if sentence.dim != network.dim:
                raise ValueError(f"phase.sentence_teacher has dimension {sentence.dim}, the student {network.dim}")
            sentences = TeacherCache(root, FrozenTeacher(sentence, precision=precision), batch_size=phase.teacher_batch_size)
        return SelfDistillPhase(network, loss, weights, names, sentences,
                                **parts.kwargs(phase.get("tokens_per_forward")))


def before_after_table(history: list[dict]) -> str:
    """Markdown table of the first and the last held-out retrieval. The first row is labelled ``base``
    only when it is step 0 (the model before any update); otherwise it is a trained model too."""
    if not history:
        return ""
    first, last = history[0], history[-1]
    rows = ["| model | step | acc@1 | MRR | n |", "|---|---:|---:|---:|---:|"]
    entries = [(first, "base" if first["step"] == 0 else "first evaluated")]
    if len(history) > 1:
        entries.append((last, "trained"))
    elif first["step"] != 0:
        entries = [(first, "trained")]
    rows += [f"| {label} | {h['step']} | {h['acc@1']:.2f} | {h['mrr']:.2f} | {h['n']} |" for h, label in entries]
    return "\n".join(rows)


def bench_before_after(history: list[dict]) -> str:
    """Markdown table of benchmark metrics at the first and the last evaluation."""
    if not history:
        return ""
    first, last = history[0], history[-1]
    keys = [k for k in first if k != "step"]
    rows = [f"| metric | step {first['step']} | step {last['step']} |", "|---|---:|---:|"]
    rows += [f"| {k.removeprefix('bench/')} | {first[k]:.2f} | {last.get(k, float('nan')):.2f} |" for k in keys]
    return "\n".join(rows)
