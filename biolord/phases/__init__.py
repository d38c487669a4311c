"""The phases, looked up by ``phase.name``: each is a set of hooks (``biolord.phases.hooks.PhaseHooks``)
for the one run path ``biolord.train.run`` and a LightningModule in this package."""

from __future__ import annotations

import importlib

PHASES = {
    "contrastive": "biolord.pair_phases:ContrastiveHooks",
    "self_distill": "biolord.pair_phases:SelfDistillHooks",
    "multilingual": "biolord.multilingual:MultilingualHooks",
}


def phase_hooks(name: str):
    """The hooks class of phase ``name``, or an error that lists the phases."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; choose one of {sorted(PHASES)} (e.g. python train.py phase=contrastive)")
    module, _, attr = PHASES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
