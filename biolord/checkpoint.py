"""Checkpoints written atomically and read back as weights only, never as code.

Reading: ``torch.load(weights_only=True)``, whose unpickler rebuilds tensors and plain containers
(dict, list, tuple, str, numbers) and refuses every other global. A pickle can name any callable
(``__reduce__``), so a crafted ``.ckpt`` loaded with ``weights_only=False`` runs its payload before
any check; here it is refused (``UnsafeCheckpointError``) and nothing in it runs. biolord stores
only plain types in its checkpoints (the resolved config as a plain dict, the numpy RNG state as a
tensor and ints: ``biolord.resume``). Checkpoints written before that stored the numpy state as a
``uint32`` ndarray: the four numpy globals that rebuild such an array are allowed while reading,
nothing else (no object arrays).

Describing: every checkpoint carries ``encoder_spec`` and ``encoder_state``
(``EncoderSpecCallback``; the format is ``biolord.encoder_spec``'s), so that ``read_encoder``
gives any reader the model without knowing which phase wrote it.

Writing: a temporary file renamed into place, so a killed job never leaves a half-written
checkpoint; a checkpoint whose weights are NaN/inf is not written (a resumed run must never
continue a diverged model); a failed write names the real ``OSError`` and the path.
"""

from __future__ import annotations

import math
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from biolord.atomic import atomic_file


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_LEGACY_NUMPY = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


class CorruptCheckpointError(CheckpointError):
    pass


class UnsafeCheckpointError(CheckpointError):
    pass


class NotACheckpointError(CheckpointError):
    pass


class NoEncoderSpecError(CheckpointError):
    pass


ENCODER_SPEC = "encoder_spec"  # the model's description (plain types): biolord.encoder_spec
ENCODER_STATE = "encoder_state"  # its weights: transformer.<HF key>, projection.weight|bias


class CheckpointWriteError(OSError):
    pass


def load_checkpoint(path, map_location="cpu", mmap: bool = False) -> dict:
    """The checkpoint at ``path`` as plain containers of tensors (``mmap``: tensors read lazily)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} (resolved: {path.resolve()})")
    if path.is_dir():
        raise NotACheckpointError(f"{path} is a folder, not a checkpoint file; give its checkpoints/last.ckpt")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap and head == _ZIP_MAGIC)
    except pickle.UnpicklingError as err:
        text = str(err)
        # the weights-only unpickler met a global, a class or a call it does not allow; "unsupported
        # operand" and "invalid load key" mean the bytes are not a pickle at all
        if ("weights only" in text.lower() or "weights_only" in text) and "Unsupported operand" not in text:
            found = re.search(r"GLOBAL (\S+)", text)
            what = f" (it calls or builds {found.group(1)})" if found else ""
            raise UnsafeCheckpointError(
                f"checkpoint {path} holds objects that are not plain weights{what}; it was not loaded, since "
                "unpickling them could run code from the file. biolord writes only tensors and plain types: "
                "use a checkpoint written by biolord, or if you trust this file's source, re-save its tensors "
                "(torch.load(..., weights_only=False) once, then torch.save of the state dict)"
            ) from err
        raise _unreadable(path, head, err) from err
    except Exception as err:  # truncated zip, a text file (KeyError), a disk error
        raise _unreadable(path, head, err) from err


def _unreadable(path: Path, head: bytes, err: Exception) -> CheckpointError:
    if head == _ZIP_MAGIC or isinstance(err, (EOFError, OSError)):
        return CorruptCheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {err}); delete it and resume from "
            "an earlier one (a run folder resumes from its newest complete checkpoints/step-N.ckpt by itself)"
        )
    return NotACheckpointError(
        f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {err}); give a .ckpt written by train.py"
    )


def check_lightning_checkpoint(ckpt, path) -> dict:
    """``ckpt`` if it is a Lightning checkpoint that a run can resume, else a ``NotACheckpointError``."""
    if isinstance(ckpt, dict) and "pytorch-lightning_version" in ckpt and "state_dict" in ckpt:
        return ckpt
    if str(path).endswith(".safetensors") or (isinstance(ckpt, dict) and ckpt and all(
            isinstance(v, torch.Tensor) for v in ckpt.values())):
        kind = "a file of weights only (safetensors or a bare state dict)"
    else:
        kind = f"not a Lightning checkpoint (keys: {sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__})"
    raise NotACheckpointError(
        f"ckpt_path={path} is {kind}: it has no step, optimizer or data position to resume. To resume, give a "
        ".ckpt from a run's checkpoints/ folder; to start training from these weights, put them in a model "
        "folder and set model.name_or_path=<folder> ckpt_path=none"
    )


def first_non_finite(state_dict: dict) -> str | None:
    """The name of the first floating tensor holding NaN or inf, or None."""
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def run_checkpoints(output_dir) -> list[Path]:
    """Every checkpoint a run folder may continue from: ``checkpoints/last.ckpt``, ``step-N.ckpt``,
    and the ``hpc_ckpt_N.ckpt`` that Lightning writes in the run folder when SLURM pre-empts a job."""
    output_dir = Path(output_dir)
    folder = output_dir / "checkpoints"
    files = [folder / "last.ckpt"] + sorted(folder.glob("step-*.ckpt")) + sorted(output_dir.glob("hpc_ckpt_*.ckpt"))
    return [f for f in files if f.is_file()]


def complete_steps(files, log=None) -> dict[Path, int]:
    """{file: global_step} of the checkpoints that load; truncated ones are skipped with a log line,
    an unsafe one is an error (never skipped: a crafted file next to real ones must be looked at)."""
    steps = {}
    for path in files:
        try:
            steps[Path(path)] = int(load_checkpoint(path, mmap=True).get("global_step", -1))
        except (CorruptCheckpointError, NotACheckpointError) as err:
            if log is not None:
                log.warning("skipping %s: %s", path, err)
    return steps


def newest(steps: dict[Path, int]) -> tuple[Path, int] | None:
    """The entry with the highest step; ties go to the first (``last.ckpt`` in ``run_checkpoints``)."""
    return max(steps.items(), key=lambda item: item[1], default=None)


def divergence_advice(step, output_dir, lr=None, loss_scale=None) -> str:
    """What probably made the loss or the weights NaN/inf, and how to restart from a healthy checkpoint."""
    causes = [f"a learning rate too high for this model and batch (optim.lr={lr}: lower it, e.g. 2-5x)"]
    if loss_scale is not None:
        causes.append(f"a too large loss scale (phase.loss.scale={loss_scale}: logits are scale x cosine; "
                      "BioLORD and sentence-transformers use 20)")
    causes.append("mixed-precision overflow (trainer.precision=32 to check)")
    try:
        healthy = newest(complete_steps(run_checkpoints(output_dir))) if output_dir else None
    except CheckpointError:
        healthy = None
    if healthy is not None:
        restart = (f"No checkpoint is written once the loss or the weights are non-finite, so {healthy[0]} (step "
                   f"{healthy[1]}) is healthy: continue from it with the changed setting, e.g. ckpt_path={healthy[0]} "
                   "and a lower optim.lr (a changed optim.* is applied on resume); ckpt_path=none starts fresh")
    else:
        restart = "No checkpoint was written before this step: rerun with the changed setting"
    return "Likely causes: " + "; ".join(causes) + ". " + restart + "."


class EncoderSpecCallback(Callback):
    """Writes the model's ``encoder_spec`` and ``encoder_state`` into every checkpoint a run saves.

    ``model``: what the run trains and exports (an ``Encoder``, or a multilingual ``Student``), given
    by the run, so that neither this nor any reader depends on the LightningModule's attribute names.
    The spec is built once (the tokenizer files do not change); the state is the model's own tensors,
    which ``torch.save`` writes once together with ``state_dict``. Lightning calls callbacks'
    ``on_save_checkpoint`` for full checkpoints only: a ``save_weights_only`` checkpoint is not described.
    """

    def __init__(self, model):
        self.model = model
        self._tokenizer_files = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        from biolord import encoder_spec

        if self._tokenizer_files is None:
            self._tokenizer_files = encoder_spec.read_tokenizer_files(self.model.tokenizer)
        checkpoint[ENCODER_SPEC] = encoder_spec.spec_of(self.model, self._tokenizer_files)
        checkpoint[ENCODER_STATE] = encoder_spec.state_of(self.model)


def read_encoder(path) -> tuple[dict, dict]:
    """(encoder_spec, encoder_state) of a checkpoint, loaded weights-only; a clear error when it has none."""
    ckpt = load_checkpoint(path, mmap=True)
    if not isinstance(ckpt, dict) or ENCODER_SPEC not in ckpt or ENCODER_STATE not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise NoEncoderSpecError(
            f"checkpoint {path} does not describe its model (no '{ENCODER_SPEC}' / '{ENCODER_STATE}'; keys: {keys}): it "
            "was written before biolord stored them, or not by biolord. Give the run's model/ folder instead (written "
            "at the end of every run with export=true), or continue the run for a step with this biolord "
            "(ckpt_path=<this file> trainer.max_steps=<its step + 1>) so that its next checkpoint carries them"
        )
    return ckpt[ENCODER_SPEC], ckpt[ENCODER_STATE]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``.<name>.tmp-<pid>`` then renames it; reads through ``load_checkpoint`` (weights only).

    Lightning's own resume (``trainer.fit(ckpt_path=...)``) goes through ``load_checkpoint`` here,
    whatever ``weights_only`` it passes.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        bad = first_non_finite(checkpoint.get("state_dict", {}))
        if bad is not None:
            cfg = checkpoint.get("biolord_config") or {}
            step = checkpoint.get("global_step", "?")
            raise FloatingPointError(
                f"weights are NaN/inf at step {step} (first: '{bad}'): checkpoint {path} not written, so that no "
                "run resumes a diverged model. " + divergence_advice(
                    step, path.parent.parent, (cfg.get("optim") or {}).get("lr"),
                    ((cfg.get("phase") or {}).get("loss") or {}).get("scale"))
            )
        try:
            with atomic_file(path) as tmp:  # the one atomic write: a kill never leaves a half-written checkpoint
                with open(tmp, "wb") as f:  # written from Python, so that a failed write raises the real OSError
                    torch.save(checkpoint, f)
        except (RuntimeError, OSError) as err:
            cause = _os_error(err)
            if cause is None:
                raise
            free = shutil.disk_usage(path.parent).free / 2**20
            raise CheckpointWriteError(
                cause.errno, f"could not write checkpoint {path}: {cause.strerror or cause} ({free:.0f} MiB free on "
                f"{path.parent}); free space or raise the file-size limit, or point paths.output_dir at another "
                "disk (the run resumes from its newest complete checkpoint)", str(path)
            ) from err

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return check_lightning_checkpoint(load_checkpoint(path, map_location=map_location), path)


def _os_error(err: BaseException) -> OSError | None:
    """The ``OSError`` behind ``err``: torch's zip writer reports a failed write as a RuntimeError
    (``enforce fail at inline_container.cc``) whose context is the real error."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, OSError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def remove_stale_temp_files(folder, log) -> list[Path]:
    """Delete the temporary files a killed write left behind (``biolord.atomic``'s ``.<name>.<random>.tmp``
    and the older ``.<name>.tmp-<pid>``); called at start, on rank 0."""
    folder = Path(folder)
    stale = sorted({*folder.glob(".*.tmp-*"), *folder.glob(".*.tmp")}) if folder.is_dir() else []
    for tmp in stale:
        size = tmp.stat().st_size / 2**20 if tmp.is_file() else math.nan
        tmp.unlink(missing_ok=True)
        log.info("removed %s (%.1f MiB): a checkpoint write interrupted by an earlier kill", tmp, size)
    return stale
