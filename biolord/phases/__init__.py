"""One LightningModule per training phase, looked up by ``phase.name``."""

from __future__ import annotations

PHASES = {
    "contrastive": "biolord.phases.contrastive:ContrastivePhase",
    "self_distill": "biolord.phases.self_distill:SelfDistillPhase",
}
NOT_YET: dict[str, str] = {}


def phase_class(name: str):
    if name in NOT_YET:
        raise NotImplementedError(f"phase={name}: {NOT_YET[name]}; available now: {sorted(PHASES)}")
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; choose one of {sorted(PHASES)} (e.g. python train.py phase=contrastive)")
    import importlib

    module, _, attr = PHASES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
