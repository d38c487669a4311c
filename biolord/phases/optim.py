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
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    fused = cfg.get("fused", "auto")
    if fused == "auto":
        # the fused kernel: one pass over all tensors; on CPU about 10x faster than the per-tensor loop
        # (0.06 s vs 0.65 s a step for all-MiniLM-L6-v2), and the default on GPUs in recent torch
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    try:
        optimizer = torch.optim.AdamW(groups, fused=bool(fused), **kwargs)
    except (RuntimeError, TypeError):  # an older torch or an unsupported device: the plain loop
        optimizer = torch.optim.AdamW(groups, **kwargs)
    warmup = cfg.get("warmup_steps")
    if warmup is None:
        warmup = math.ceil(cfg.warmup_ratio * total_steps)
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=int(warmup), num_training_steps=total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def clip_gradients(module, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
    """Every phase's ``configure_gradient_clipping``: clip as configured. Without a loss scaler (fp32,
    bf16) the gradients are clipped as they are: Lightning's mixed-precision plugin refuses every fused
    optimizer, a guard meant for fp16's scaler, which would otherwise rule out the fused AdamW under
    bf16 (the CPU default)."""
    if not gradient_clip_val:
        return
    if getattr(module.trainer.precision_plugin, "scaler", None) is not None:  # fp16: Lightning unscales first
        module.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        return
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if gradient_clip_algorithm == "value":
        torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
    else:
        torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
