"""``trainer.precision=auto``: bf16 autocast where the hardware has bf16 arithmetic, float32 elsewhere.

bf16-mixed is the fast setting on CPUs with AVX512-BF16 or AMX (bf16 matmuls about 2x the pairs/s of
float32, ``bench/precision.py``) and on GPUs from Ampere on. On a CPU without those instructions
(most laptops, AVX2-only servers) oneDNN has no bf16 kernels and PyTorch falls back to slow reference
code: on an AVX2-only EPYC, ``bench/precision.py`` measured 1.3 pairs/s under bf16-mixed against 19.9
in float32, 15x slower. On a GPU without bf16 (V100, T4) fp16 with a loss scaler is the mixed setting that works.
So the shipped trainer configs say ``auto`` and this module turns it into a Lightning precision once,
before anything reads ``trainer.precision`` (the teachers' ``teacher_precision=auto`` follows the
resolved value). An explicit ``bf16-mixed`` is kept, with a warning where it is emulated.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

AUTO = "auto"


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def _on_cuda(accelerator) -> bool:
    name = str(accelerator or "auto").lower()
    return name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available())


def resolve(precision, accelerator) -> str:
    """The Lightning precision string ``trainer.precision=<precision>`` means on ``accelerator``."""
    value = str(precision) if precision is not None else "32-true"
    cuda = _on_cuda(accelerator)
    if value == AUTO:
        if cuda:
            chosen = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        else:
            chosen = "bf16-mixed" if cpu_has_bf16() else "32-true"
        log.info("precision: auto -> %s (%s)", chosen,
                 ("GPU" if cuda else "CPU") + (" with bf16" if chosen == "bf16-mixed" else " without bf16 arithmetic"))
        return chosen
    if value.startswith("bf16") and not cuda and not cpu_has_bf16():
        log.warning("trainer.precision=%s on a CPU without bf16 instructions (no AVX512-BF16 / AMX): PyTorch "
                    "emulates bf16 here, many times slower than float32; use trainer.precision=auto or 32-true",
                    value)
    return value
