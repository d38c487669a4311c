"""``run(cfg)``: one training run of any phase (contrastive, self_distill, multilingual), end to end.

Called by ``train.py`` and ``distill.py`` (Hydra) and by the tests (Hydra's compose API), so that
everything a run does is reachable from Python. This is the one orchestrator: seeding, resume
(automatic or ``ckpt_path=``), exact-resume state, checkpoints and the final ``last.ckpt``,
loggers and the logged config, callbacks from config, rank-0 writing (``metrics.json``, the
model and its card) and the report are the same for every phase; a phase adds its hooks
(``biolord.phases.hooks.PhaseHooks``: network, data, module with its loss, evaluation callbacks,
report and export), looked up by ``phase.name``.
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
from omegaconf import DictConfig, OmegaConf, open_dict

from biolord import precision, resume_point
from biolord.checkpoint import AtomicCheckpointIO, EncoderSpecCallback, remove_stale_temp_files
from biolord.console import quiet_lightning
from biolord.loggers import LastTrainRow, finish_loggers, instantiate_loggers, log_config, log_model_artifact
from biolord.phases import phase_hooks
from biolord.phases.hooks import ModuleParts, PhaseHooks
from biolord.progress_bar import StepProgressBar
from biolord.resume import ChangedOptimSettings, ExactResumeCallback

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    quiet_lightning()  # one copy of each Lightning message, from the seed line on (biolord.console)
    # `auto` -> bf16-mixed only where the hardware has bf16 arithmetic; before anything reads it (teachers)
    with open_dict(cfg):
        cfg.trainer.precision = precision.resolve(cfg.trainer.get("precision"), cfg.trainer.get("accelerator"))
    hooks: PhaseHooks = phase_hooks(cfg.phase.name)(cfg)  # unknown phase: clear error before any heavy work
    gradcache = OmegaConf.select(cfg, "gradcache.mini_batch_size")
    check_run_settings(hooks.batch_size_per_device, cfg.trainer.get("max_steps"), cfg.trainer.get("max_epochs"),
                       gradcache, cfg.trainer.get("accumulate_grad_batches", 1))
    hooks.check()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:
        remove_stale_temp_files(output_dir / "checkpoints", log)
    point = resume_point.select(cfg.get("ckpt_path"), output_dir)  # a bad checkpoint fails here, in a second
    if point is None:
        log.info("run folder %s: starting fresh (the same command with run_name=... or hydra.run.dir=%s "
                 "continues this run after a kill)", output_dir, output_dir)
    L.seed_everything(cfg.seed, workers=True)

    hooks.prepare()
    network = hooks.network()
    # rank 0 writes data_stats.json: Lightning's DDP ranks run this before the process group exists
    data = hooks.data(network, output_dir if rank_zero_only.rank == 0 else None)
    parts = ModuleParts.from_config(cfg, hooks.batch_size_per_device)
    module = hooks.module(network, data, parts)
    if point is not None:
        point.check_same_model(module.state_dict(), hooks.model_key, hooks.model_name)

    evaluation = hooks.callbacks(data)
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
    bar = [StepProgressBar()] if cfg.trainer.get("enable_progress_bar", True) else []
    loggers = instantiate_loggers(cfg, point.step if point else None, point.log_row if point else None)
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        # the phase clips with trainer.gradient_clip_val itself (``parts.clip``): GradCache's manual
        # optimization, where Lightning refuses a Trainer clip value, clips as the plain step does
        gradient_clip_val=None, gradient_clip_algorithm=None,
        callbacks=[ExactResumeCallback(), ChangedOptimSettings(OmegaConf.to_container(cfg.optim, resolve=True)),
                   LastTrainRow(), *evaluation, EncoderSpecCallback(network), checkpointing,
                   *configured_callbacks(cfg.get("callbacks")), *bar],
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(output_dir),
    )
    log_config(trainer.loggers, cfg)
    trainer.fit(module, datamodule=data, ckpt_path=str(point.path) if point else None)
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    if not fast_dev_run:
        # ModelCheckpoint saves every N steps; make sure last.ckpt holds the final step too.
        # (Called on every rank: Lightning writes on rank 0 only.)
        # weights_only=False said explicitly: the full state (optimizer, loops, callbacks) for resume.
        trainer.save_checkpoint(output_dir / "checkpoints" / "last.ckpt", weights_only=False)

    result = {"output_dir": str(output_dir), **hooks.outcome(module, evaluation)}
    if trainer.is_global_zero:
        export = bool(cfg.export) and not fast_dev_run
        result.update(write_report(hooks, network, data, module, evaluation, output_dir, export, start))
        if cfg.get("wandb_artifact") and "model_dir" in result:
            log_model_artifact(trainer.loggers, result["model_dir"], f"biolord-{cfg.phase.name}")
    finish_loggers(trainer.loggers)
    return result


def configured_callbacks(entries) -> list[L.Callback]:
    """The ``callbacks:`` mapping of the entry config: ``name: {_target_: ..., **kwargs}`` each, so that
    a user adds one without patching code, e.g.
    ``+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor``; ``name: null``
    switches a preset's entry off."""
    out = []
    for name, entry in (entries or {}).items():
        if entry is None:
            continue
        if "_target_" not in entry:
            raise ValueError(f"callbacks.{name} has no _target_ (got {OmegaConf.to_container(entry)}); give the "
                             f"callback class, e.g. +callbacks.{name}._target_=lightning.pytorch.callbacks.LearningRateMonitor")
        out.append(hydra.utils.instantiate(entry))
    return out


def check_run_settings(batch_size_per_device, max_steps, max_epochs, gradcache=None, accumulate=1) -> None:
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
    if gradcache is None:
        return
    if not isinstance(gradcache, int) or isinstance(gradcache, bool) or gradcache < 1:
        raise ValueError(f"gradcache.mini_batch_size={gradcache!r}: give a positive number of rows per forward, "
                         "or null for the plain step")
    if accumulate != 1:
        raise ValueError(
            f"trainer.accumulate_grad_batches={accumulate} with gradcache.mini_batch_size={gradcache}: GradCache "
            "already gives the large batch; raise data.batch_size_per_device instead and set "
            "trainer.accumulate_grad_batches=1")


def write_report(hooks: PhaseHooks, network, data, module, evaluation: list, output_dir: Path, export: bool,
                 start: float) -> dict:
    """Rank 0: the phase's summary printed, the model and its card exported, ``metrics.json`` written."""
    report = hooks.report(network, data, module, evaluation, export)
    out: dict = {"seconds": round(time.perf_counter() - start, 1)}
    if report.summary:
        print(report.summary)
    if export:
        out["model_dir"] = str(hooks.export(network, output_dir / "model", report.card))
        log.info("sentence-transformers model written to %s", out["model_dir"])
    (output_dir / "metrics.json").write_text(json.dumps({**report.metrics, **out}, indent=2))
    return out
