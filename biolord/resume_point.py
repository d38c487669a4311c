"""Which checkpoint a run continues from, chosen and checked before any heavy work.

``ckpt_path``:

- ``null`` (or ``auto``): continue when the run folder holds a checkpoint, else start fresh. The
  checkpoint is the complete one with the highest step: ``checkpoints/last.ckpt``; a ``step-N.ckpt``
  when ``last.ckpt`` is missing, truncated, or older (a kill between the two writes); Lightning's
  ``hpc_ckpt_N.ckpt`` after a SLURM pre-emption. A log line names the file and why.
- ``none``: start fresh; ``last``: ``checkpoints/last.ckpt``, which must exist and load;
- a ``.ckpt`` file, or a run folder (its newest complete checkpoint).

A fixed run folder makes "the same command" continue: ``run_name=<name>`` gives
``outputs/<phase>/<name>`` (conf/train.yaml); the default folder has a timestamp, new each start.

Checked here, so that a bad checkpoint fails in a second with a message instead of after the model
and data are built: it loads as weights only (``biolord.checkpoint``), it is a Lightning
checkpoint, and its tensors have the shapes of the model being trained.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from biolord.checkpoint import (
    ENCODER_SPEC,
    CorruptCheckpointError,
    check_lightning_checkpoint,
    complete_steps,
    load_checkpoint,
    newest,
    run_checkpoints,
)
from biolord.encoder_spec import describe

log = logging.getLogger(__name__)


@dataclass
class ResumePoint:
    path: Path
    step: int
    config: dict = field(default_factory=dict)  # the checkpoint's biolord_config ({} when it has none)
    shapes: dict[str, tuple] = field(default_factory=dict, repr=False)  # state_dict key -> shape
    log_row: dict | None = None  # the checkpointed step's training row (biolord.loggers.LastTrainRow)
    architecture: str = ""  # its encoder_spec in one line (biolord.encoder_spec.describe); "" without one
    trained_from: str = ""  # the model its network started from (the encoder_spec's source)

    def check_same_model(self, model_state: dict, model_key: str, model_name: str) -> None:
        """The checkpoint's weights fit the model being trained, or an error naming the first tensor,
        the checkpoint's own architecture (its ``encoder_spec``) and the key that fixes it.

        ``model_key``: the config key this run's architecture comes from (``model.name_or_path``, or
        ``teacher`` for a self-distillation student started as the teacher, ``student`` for multilingual
        distillation); ``model_name``: its value."""
        built = f"the model built from {model_key}={model_name}"
        held = f"; the checkpoint holds {self.architecture}" if self.architecture else ""
        resume = (f"resume with {model_key}={self.trained_from}" if self.trained_from
                  else f"resume with the {model_key} it was trained from")
        fix = (f"{held}. This run's architecture comes from {model_key}: {resume}, or start fresh from "
               f"{model_key}={model_name} with ckpt_path=none")
        missing = [k for k in model_state if k not in self.shapes]
        if missing:
            raise ValueError(
                f"checkpoint {self.path} is from another model: it has no tensor '{missing[0]}' "
                f"(+{len(missing) - 1} more) of {built}{fix}")
        extra = [k for k in self.shapes if k not in model_state]
        if extra:
            raise ValueError(
                f"checkpoint {self.path} is from another model or phase: it holds tensor '{extra[0]}' "
                f"(+{len(extra) - 1} more) that {built} lacks{fix}")
        for key, tensor in model_state.items():
            if tuple(tensor.shape) != self.shapes[key]:
                raise ValueError(
                    f"checkpoint {self.path} is from another model: tensor '{key}' has shape {list(self.shapes[key])} "
                    f"in the checkpoint but {list(tensor.shape)} in {built}{fix}")


def select(value, output_dir) -> ResumePoint | None:
    """The checkpoint that ``ckpt_path=value`` means for the run folder ``output_dir``, or None."""
    output_dir = Path(output_dir)
    if value in (None, "auto"):
        return _newest_in(output_dir, explicit=False)
    if value == "none":
        return None
    if value == "last":
        last = output_dir / "checkpoints" / "last.ckpt"
        if not last.exists():
            raise FileNotFoundError(f"ckpt_path=last but {last} does not exist; run once first or give a checkpoint path")
        return inspect(last)
    path = Path(os.path.expanduser(str(value)))
    if not path.exists():
        raise FileNotFoundError(
            f"ckpt_path={value} does not exist (resolved against the working directory {Path.cwd()}: "
            f"{path.resolve()}); give an existing .ckpt file or run folder, 'last' or 'none'")
    if path.is_dir():
        point = _newest_in(path, explicit=True)
        if point is None:
            raise FileNotFoundError(
                f"ckpt_path={value} is a folder without checkpoints (no checkpoints/last.ckpt or step-N.ckpt); "
                "give a run folder of train.py or a .ckpt file")
        return point
    return inspect(path)


def _newest_in(run_dir: Path, explicit: bool) -> ResumePoint | None:
    files = run_checkpoints(run_dir)
    if not files:
        return None
    steps = complete_steps(files, log)
    best = newest(steps)
    if best is None:
        raise CorruptCheckpointError(
            f"no checkpoint in {run_dir} loads ({', '.join(f.name for f in files)} are truncated or corrupt); "
            "delete them to start fresh, or set ckpt_path=none")
    path, step = best
    last = run_dir / "checkpoints" / "last.ckpt"
    if path == last:
        log.info("resuming from %s at step %d (set ckpt_path=none to start fresh)", path, step)
    else:
        why = ("is missing" if not last.exists() else "is truncated or corrupt" if last not in steps
               else f"is older (step {steps[last]}: the job was killed between two writes)")
        log.warning("%s %s: resuming from the newest complete checkpoint %s at step %d", last, why, path, step)
    return inspect(path)


def inspect(path: Path) -> ResumePoint:
    """Read the checkpoint lazily (tensors memory-mapped) and keep what the checks need."""
    ckpt = check_lightning_checkpoint(load_checkpoint(path, mmap=True), path)
    spec = ckpt.get(ENCODER_SPEC) if isinstance(ckpt.get(ENCODER_SPEC), dict) else {}
    return ResumePoint(
        architecture=describe(spec) if spec else "",
        trained_from=str(spec.get("source") or ""),
        path=Path(path),
        step=int(ckpt.get("global_step", 0)),
        config=dict(ckpt.get("biolord_config") or {}),
        shapes={k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if hasattr(v, "shape")},
        log_row=ckpt.get("biolord_log_row"),
    )
