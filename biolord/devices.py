"""Which device a command that runs a model outside Lightning uses: evaluation, linking, soups.

Training leaves the choice to Lightning's ``trainer.accelerator``; the other commands load a
model themselves and take ``device=`` (null: cuda when one is visible, else cpu).
"""

from __future__ import annotations

import torch


def pick_device(name: str | None) -> torch.device:
    """``name`` as given (``cpu``, ``cuda:1``, ``mps``), else cuda if available, else cpu."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
