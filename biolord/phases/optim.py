"""AdamW + a transformers warm-up schedule, shared by every phase."""

from __future__ import annotations

import math

import torch
from transformers import get_scheduler


def configure_optimizers(module, cfg, total_steps: int):
    """AdamW without weight decay on biases and LayerNorm weights, and a stepped LR schedule.

    cfg: the ``optim`` group (lr, weight_decay, betas, eps, scheduler, warmup_ratio | warmup_steps).
    """
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
    )
    warmup = cfg.get("warmup_steps")
    if warmup is None:
        warmup = math.ceil(cfg.warmup_ratio * total_steps)
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=int(warmup), num_training_steps=total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
