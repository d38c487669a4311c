"""Callbacks that tests add to a run through the config (``+callbacks.<name>._target_=tests.run_callbacks.X``),
the way a user adds one: no code patched. Also used by runs in subprocesses (train.py / distill.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L


class BatchRecorder(L.Callback):
    """Each training batch's rows, one JSON line per step in ``<folder>/rank<r>.jsonl``: what every rank saw."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.folder.mkdir(parents=True, exist_ok=True)
        if "en_text" in batch:  # multilingual: a row is (English name, language)
            rows = [f"{en}\t{lang}" for en, lang in zip(batch["en_text"], batch["lang"])]
        else:  # pair phases: (name, text)
            rows = [f"{n}\t{t}" for n, t in zip(batch["names"], batch["texts"])]
        with open(self.folder / f"rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps({"step": trainer.global_step, "epoch": trainer.current_epoch, "rows": rows}) + "\n")


class KillAt(L.Callback):
    """SIGKILL this process at the end of optimizer step ``step``, before that step's checkpoint is
    written (Lightning runs ModelCheckpoint after the other callbacks), unless ``marker`` exists:
    the same command then resumes and runs to the end."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = int(step), Path(marker)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(str(self.step))
            os.kill(os.getpid(), signal.SIGKILL)
