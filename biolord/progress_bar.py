"""The training bar: one bar over optimizer steps for the whole run, on ``biolord.console.Progress``.

Lightning's default bars count batches per epoch; biolord trains by ``trainer.max_steps`` with
``max_epochs=-1``, so they read ``Epoch 0/-2`` and restart at every pass over the data, and they
print the learning rate with three decimals (``train/lr: 0.000`` for 5e-5). This bar counts
optimizer steps up to ``trainer.estimated_stepping_batches`` (max_steps, or the epochs' steps
when training by epochs), starts at the restored step on resume, shows the epoch and each
progress-bar metric (the learning rate in scientific notation), and degrades like every other
progress of the package to a log line every ``interval`` seconds when stderr is not a terminal.
"""

from __future__ import annotations

from lightning.pytorch.callbacks.progress import ProgressBar

from biolord.console import Progress


def format_metric(name: str, value) -> str:
    """``5e-05`` -> ``5.00e-05`` for learning rates; 4 significant digits for the rest."""
    if isinstance(value, str):
        return value
    value = float(value)
    if name.rsplit("/", 1)[-1] in ("lr", "learning_rate") or (value != 0 and abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.4g}"


class StepProgressBar(ProgressBar):
    def __init__(self, interval: float = 30.0):
        super().__init__()
        self.interval = interval
        self._enabled = True
        self.bar: Progress | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.bar is not None

    def print(self, *args, sep: str = " ", **kwargs) -> None:
        """``LightningModule.print``: above the bar, not through it."""
        from tqdm import tqdm

        tqdm.write(sep.join(str(a) for a in args), **{k: v for k, v in kwargs.items() if k in ("file", "end")})

    def get_metrics(self, trainer, pl_module) -> dict[str, str]:
        metrics = {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}
        shown = {"epoch": str(trainer.current_epoch)}
        shown.update({k.removeprefix("train/"): format_metric(k, v) for k, v in metrics.items()})
        return shown

    def on_train_start(self, trainer, pl_module) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self.bar = Progress(total=trainer.estimated_stepping_batches, desc="train", unit="steps",
                            initial=trainer.global_step, interval=self.interval, min_seconds=0.0, leave=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix(**self.get_metrics(trainer, pl_module))
        self.bar.update_to(trainer.global_step)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)
