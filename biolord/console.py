"""What a user sees in the terminal during long work: progress, log lines, the elapsed time.

``progress(iterable, total, desc)`` (or ``Progress`` for loops that count in their own units) is
the one progress helper of the package. On a terminal it is a tqdm bar with rate and ETA; when
stderr is not a terminal (CI logs, ``nohup``, a Slurm ``.out`` file) it degrades to a log line
every ``interval`` seconds and one at the end with the count and the seconds, instead of a file
full of carriage returns. ``BIOLORD_PROGRESS=bar|log|off`` forces a mode. Work shorter than
``min_seconds`` shows nothing (no flicker of bars for 20 texts); ranks other than 0 show nothing.

``session(name)`` wraps an entry point's ``run(cfg)``:

- console log lines go through ``tqdm.write`` (tqdm's ``logging_redirect_tqdm``), so that a log
  line printed while a bar is drawn starts on its own line instead of being glued onto the bar;
- Lightning's own console handler is removed when Hydra's root handler is there: the
  ``lightning`` package adds a handler to its logger at import *and* lets records propagate to the
  root, so every Lightning message was printed twice (once as ``INFO: ...``);
- Lightning's advertisement for its cloud logger (``litlogger``) is dropped, and torch 2.13's
  ``LeafSpec`` FutureWarning raised from Lightning 2.6's own ``utilities/_pytree.py`` (Lightning
  issue #21326, nothing a user can act on) is ignored; other warnings are left alone;
- in log mode, transformers' and the hub's own bars ("Loading weights", "Writing model shards")
  are switched off: in a log file they are carriage-return noise;
- the elapsed time is logged at the end (also when the run fails).

No Lightning import here: evaluation and linking use this module without paying for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from typing import Iterable, Iterator, TypeVar

log = logging.getLogger(__name__)

MODES = ("bar", "log", "off")
T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    """12.3 s, 5 min 19 s, 2 h 03 min: what a person reads at a glance."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _rank() -> int:
    from biolord import distributed

    if distributed.is_distributed():
        return distributed.rank()
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)


def progress_mode() -> str:
    """``BIOLORD_PROGRESS`` if set; else ``bar`` on a terminal, ``log`` otherwise; ``off`` on ranks > 0."""
    forced = os.environ.get("BIOLORD_PROGRESS", "").strip().lower()
    if forced and forced not in MODES:
        raise ValueError(f"BIOLORD_PROGRESS={forced!r} is unknown; choose one of {MODES} (or unset it)")
    if _rank() != 0:
        return "off"
    if forced:
        return forced
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "log"


class Progress:
    """Progress of one piece of work: ``update(n)``, ``set_postfix(...)``, ``close()`` (or ``with``).

    total: the expected count (None: unknown, no percentage or ETA). unit: what is counted
    ("texts", "steps", "rows"). interval: seconds between log lines in log mode. min_seconds: work
    shorter than this shows nothing (the bar appears after it; the final log line is skipped).
    leave: keep the finished bar on screen (the training bar) or clear it (inner loops).
    """

    def __init__(self, total: int | float | None = None, desc: str = "", unit: str = "it", initial: int = 0,
                 interval: float = 30.0, min_seconds: float = 2.0, leave: bool = False, mode: str | None = None,
                 logger: logging.Logger | None = None):
        self.mode = mode or progress_mode()
        if self.mode not in MODES:
            raise ValueError(f"progress mode={self.mode!r} is unknown; choose one of {MODES}")
        self.total = None if total is None or total == float("inf") else int(total)
        self.desc, self.unit, self.n = desc, unit, int(initial)
        self.interval, self.min_seconds = float(interval), float(min_seconds)
        self.logger = logger or log
        self.postfix: dict[str, str] = {}
        self.lines = 0  # log lines written so far (log mode)
        self._initial = self.n
        self._start = self._last_line = time.perf_counter()
        self._closed = False
        self._bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=f" {unit}", initial=self.n, leave=leave,
                             dynamic_ncols=True, delay=self.min_seconds, file=sys.stderr)

    # ---- counting -----------------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if self._bar is not None:
            self._bar.update(int(n))
        elif self.mode == "log":
            now = time.perf_counter()
            if now - self._last_line >= self.interval and now - self._start >= self.min_seconds:
                self._write(self.status())
                self._last_line = now

    def update_to(self, n: int) -> None:
        """Set the count (e.g. the trainer's global step), however many were done since the last call."""
        if n != self.n:
            self.update(n - self.n)

    def set_postfix(self, **values) -> None:
        """Figures shown after the bar / at the end of each log line (already formatted strings or numbers)."""
        self.postfix = {k: v if isinstance(v, str) else f"{v:.4g}" for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log" and (self.lines or self.elapsed >= self.min_seconds):
            self._write(self.summary())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- text ---------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    @property
    def rate(self) -> float:
        """Units per second since the start (the ones done before ``initial`` not counted)."""
        return (self.n - self._initial) / max(self.elapsed, 1e-9)

    def status(self) -> str:
        """``desc: 12800/71924 texts (18%), 95.3 texts/s, 2 min 14 s elapsed, ETA 10 min 20 s``."""
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        text = f"{self.desc}: {done} {self.unit}"
        if self.total:
            text += f" ({100.0 * self.n / self.total:.0f}%)"
        text += f", {self.rate:.1f} {self.unit}/s, {format_seconds(self.elapsed)} elapsed"
        if self.total and self.rate > 0:
            text += f", ETA {format_seconds(max(self.total - self.n, 0) / self.rate)}"
        return text + self._postfix_text()

    def summary(self) -> str:
        """``desc: 71924 texts in 12 min 34 s (95.3 texts/s)``."""
        return (f"{self.desc}: {self.n} {self.unit} in {format_seconds(self.elapsed)} "
                f"({self.rate:.1f} {self.unit}/s)" + self._postfix_text())

    def _postfix_text(self) -> str:
        return ("; " + ", ".join(f"{k} {v}" for k, v in self.postfix.items())) if self.postfix else ""

    def _write(self, text: str) -> None:
        self.lines += 1
        self.logger.info(text)


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
             **options) -> Iterator[T]:
    """``for x in progress(items, desc="reading"):`` -- the items, with a bar or periodic log lines."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, unit, **options) as bar:
        for item in iterable:
            yield item
            bar.update(1)


# ---- the session of an entry point ------------------------------------------------------------
class _DropLightningTips(logging.Filter):
    """Lightning logs an advertisement for its cloud logger at every Trainer start ("💡 Tip: ... litlogger")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


_TIPS = _DropLightningTips()
LIGHTNING_TIP_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def quiet_lightning() -> None:
    """One copy of each Lightning message, without the litlogger advertisement or the LeafSpec warning.

    The ``lightning`` package adds its own ``INFO: %(message)s`` handler to the ``lightning`` logger
    at import and still propagates to the root logger; under Hydra (root handler configured) that
    printed every message twice. The handler is removed only when the root logger has a handler,
    so a plain ``python -c`` session keeps Lightning's messages.
    """
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning, module=r"lightning\.pytorch\.utilities\._pytree")
    for name in LIGHTNING_TIP_LOGGERS:
        logger = logging.getLogger(name)
        if _TIPS not in logger.filters:
            logger.addFilter(_TIPS)
    if "lightning" not in sys.modules or not logging.getLogger().handlers:
        return
    own = getattr(sys.modules["lightning"], "_console", None)
    lightning_logger = logging.getLogger("lightning")
    if own is not None and own in lightning_logger.handlers:
        lightning_logger.removeHandler(own)


def quiet_hub_bars() -> None:
    """No "Loading weights" / "Writing model shards" bars from transformers and the hub in a log
    file (in log mode they are carriage-return noise, and our own lines say what is loaded)."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # transformers imported later reads this state
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


@contextlib.contextmanager
def session(name: str) -> Iterator[None]:
    """Around an entry point's work: log lines that do not collide with bars, no duplicated
    Lightning messages, and ``<name> finished in 5 min 19 s`` (or ``failed after``) at the end.

    ``train.run`` and ``distill.run`` call ``quiet_lightning`` again first thing, when Lightning
    is surely imported (``pipeline.py`` imports it only when its first stage starts).
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    quiet_lightning()
    if progress_mode() != "bar":
        quiet_hub_bars()
    start = time.perf_counter()
    with logging_redirect_tqdm():
        try:
            yield
        except BaseException:
            log.info("%s failed after %s", name, format_seconds(time.perf_counter() - start))
            raise
        log.info("%s finished in %s", name, format_seconds(time.perf_counter() - start))
