"""``run(cfg)``: one training phase end to end (data, model, Lightning fit, export, report).

Called by ``train.py`` (Hydra) and by the tests (Hydra's compose API), so that everything a run
does is reachable from Python.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from biolord import matryoshka, resume_point
from biolord.checkpoint import AtomicCheckpointIO, EncoderSpecCallback, remove_stale_temp_files
from biolord.console import quiet_lightning
from biolord.data.datamodule import PairDataModule
from biolord.encoder import Encoder
from biolord.evaluation.benchmark_callback import BenchmarkCallback
from biolord.evaluation.callback import HeldOutRetrievalCallback
from biolord import card
from biolord.export import export_sentence_transformers
from biolord.loggers import LastTrainRow, finish_loggers, instantiate_loggers, log_config, log_model_artifact
from biolord.phases import phase_class
from biolord.progress_bar import StepProgressBar
from biolord.resume import ChangedOptimSettings, ExactResumeCallback

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    quiet_lightning()  # one copy of each Lightning message, from the seed line on (biolord.console)
    phase_cls = phase_class(cfg.phase.name)  # unknown phase: clear error before any heavy work
    check_run_settings(cfg.data.batch_size_per_device, cfg.trainer.get("max_steps"), cfg.trainer.get("max_epochs"))
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:
        remove_stale_temp_files(output_dir / "checkpoints", log)
    point = resume_point.select(cfg.get("ckpt_path"), output_dir)  # a bad checkpoint fails here, in a second
    if point is None:
        log.info("run folder %s: starting fresh (the same command with run_name=... or hydra.run.dir=%s "
                 "continues this run after a kill)", output_dir, output_dir)
    L.seed_everything(cfg.seed, workers=True)

    encoder = phase_cls.initial_encoder(cfg)  # the student of self_distill may be a copy of the teacher
    datamodule = PairDataModule(cfg.data, encoder.tokenizer, encoder.max_seq_length, str(output_dir))
    datamodule.setup("fit")
    module = phase_cls(encoder, cfg)
    if point is not None:
        point.check_same_model(module.state_dict(), cfg.model.name_or_path)

    evaluation = HeldOutRetrievalCallback(cfg.eval.every_n_steps, cfg.eval.batch_size, cfg.eval.at_start)
    checkpointing = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="step-{step}",
        every_n_train_steps=cfg.checkpoint.every_n_steps,
        save_last=True,
        save_top_k=cfg.checkpoint.keep,
        monitor="step",
        mode="max",
        auto_insert_metric_name=False,
    )
    bench = BenchmarkCallback.from_config(cfg.get("bench"))  # None when no benchmark is configured
    bar = [StepProgressBar()] if cfg.trainer.get("enable_progress_bar", True) else []
    loggers = instantiate_loggers(cfg, point.step if point else None, point.log_row if point else None)
    # GradCache runs Lightning's manual optimization, which refuses trainer.gradient_clip_val: the
    # phase clips with the configured value itself (biolord/phases/contrastive.py)
    manual = {"gradient_clip_val": None} if OmegaConf.select(cfg, "phase.loss.mini_batch_size") else {}
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        **manual,
        callbacks=[ExactResumeCallback(), ChangedOptimSettings(OmegaConf.to_container(cfg.optim, resolve=True)),
                   LastTrainRow(), evaluation, EncoderSpecCallback(encoder), checkpointing] + ([bench] if bench else []) + bar,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(output_dir),
    )
    log_config(trainer.loggers, cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(point.path) if point else None)
    if not cfg.trainer.get("fast_dev_run"):
        # ModelCheckpoint saves every N steps; make sure last.ckpt holds the final step too.
        # (Called on every rank: Lightning writes on rank 0 only.)
        # weights_only=False said explicitly: the full state (optimizer, loops, callbacks) for resume.
        trainer.save_checkpoint(output_dir / "checkpoints" / "last.ckpt", weights_only=False)

    bench_history = bench.history if bench else []
    result = {"output_dir": str(output_dir), "history": evaluation.history, "bench_history": bench_history}
    if trainer.is_global_zero:
        kept = datamodule.report.get("kept", {})
        result.update(_report(cfg, encoder, evaluation.history, bench_history, output_dir, time.perf_counter() - start, kept))
        if cfg.get("wandb_artifact") and "model_dir" in result:
            log_model_artifact(trainer.loggers, result["model_dir"], f"biolord-{cfg.phase.name}")
    finish_loggers(trainer.loggers)
    return result


def check_run_settings(batch_size_per_device, max_steps, max_epochs) -> None:
    """Values that would otherwise fail deep inside the data or the schedule with a raw error."""
    if not isinstance(batch_size_per_device, int) or batch_size_per_device < 1:
        raise ValueError(
            f"data.batch_size_per_device={batch_size_per_device!r}: give a positive number of pairs per device "
            "and step, e.g. data.batch_size_per_device=32")
    no_steps = max_steps is None or max_steps == -1
    no_epochs = max_epochs is None or max_epochs == -1
    if no_steps and no_epochs:
        raise ValueError(
            f"trainer.max_steps={max_steps} with trainer.max_epochs={max_epochs} means train forever, but the "
            "learning-rate schedule (warm-up, decay) needs the total number of steps: set trainer.max_steps=N, "
            "or trainer.max_epochs=N with trainer.max_steps=-1")
    if not no_steps and max_steps < 1:
        raise ValueError(f"trainer.max_steps={max_steps}: give a positive number of optimizer steps (or -1 with "
                         "trainer.max_epochs=N)")


def _report(cfg, encoder: Encoder, history: list[dict], bench_history: list[dict], output_dir: Path, seconds: float,
            rows_kept: dict | None = None) -> dict:
    table = before_after_table(history)
    if table:
        print("\nHeld-out name -> definition retrieval (concepts never seen in training):\n" + table)
    bench_table = bench_before_after(bench_history)
    if bench_table:
        print("\nBenchmarks:\n" + bench_table)
    out: dict = {"seconds": round(seconds, 1)}
    if cfg.export and not cfg.trainer.get("fast_dev_run"):
        card_text = training_card(cfg, encoder, history, bench_history, rows_kept, table, bench_table)
        out["model_dir"] = str(export_sentence_transformers(encoder, output_dir / "model", card_text))
        log.info("sentence-transformers model written to %s", out["model_dir"])
    (output_dir / "metrics.json").write_text(
        json.dumps({"heldout_retrieval": history, "benchmarks": bench_history, **out}, indent=2)
    )
    return out


PHASE_SUMMARY = {
    "contrastive": "Contrastive phase of BioLORD-2023: concept names pulled towards their definitions and "
                   "knowledge-graph descriptions (InfoNCE over in-batch negatives).",
    "self_distill": "Self-distillation phase of BioLORD-2023: the student keeps the contrastive teacher's similarities "
                    "while training on the concept pairs again.",
}


def training_card(cfg, encoder: Encoder, history: list[dict], bench_history: list[dict], rows_kept: dict | None,
                  table: str, bench_table: str) -> str:
    """The exported model's README.md: biolord.card's generator with this run's facts."""
    phase = cfg.phase.name
    dims = OmegaConf.select(cfg, "phase.loss.matryoshka_dims")  # the card says which sizes were trained
    _, _, inherited = card.base_model_facts(encoder.source)  # a self-distilled model keeps its teacher's data
    sections = [f"## Held-out retrieval\n\nName -> definition retrieval on concepts never seen in training.\n\n{table}"
                if table else "",
                f"## Benchmarks\n\nAt the first and the last evaluation of the run.\n\n{bench_table}" if bench_table else "",
                matryoshka.card_section(dims).strip()]
    return matryoshka.tag_card(card.model_card(
        title=f"biolord {phase.replace('_', '-')} model",
        summary=PHASE_SUMMARY.get(phase, f"Trained by the {phase} phase of biolord."),
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


def before_after_table(history: list[dict]) -> str:
    """Markdown table of the first and the last evaluation. The first row is labelled ``base``
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
