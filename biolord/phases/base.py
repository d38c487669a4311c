"""The LightningModule every phase shares: embed the batch's sides, a loss on the embeddings, one step.

A phase says which tokenised sides a batch has (``sides``), how to score their (B, d) embeddings
(``loss_from_embeddings``) and what its batch line adds (``describe``); everything else is here,
once: the plain step (each side in one forward, or in length-sorted chunks of at most
``tokens_per_forward`` padded tokens, ``biolord.chunking``), the GradCache step (``biolord.gradcache``,
when ``gradcache_mini_batch_size`` is set: a large batch in the memory of a mini-batch, under
Lightning's manual optimization), the loss in float32 outside autocast (the logits of a scale-20
softmax need float32's mantissa), the NaN check, the logging, the optimizer, the clipping and the
resolved config in every checkpoint.

The module gets values, not the config: the optimizer (``phases.optim.Optimizer``), the clip
(``phases.optim.GradientClip``), the batch size per device, the config to store in checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import lightning as L
import torch

from biolord import distributed
from biolord.checkpoint import divergence_advice
from biolord.chunking import embed_sides
from biolord.gradcache import cached_backward
from biolord.phases.optim import GradientClip, Optimizer, clip_gradients

log = logging.getLogger(__name__)

Features = dict[str, torch.Tensor]


class EmbeddingPhase(L.LightningModule):
    #: the loss's inverse temperature, named in the divergence advice (None: the loss has none)
    loss_scale: float | None = None

    def __init__(self, optimizer: Optimizer, clip: GradientClip, batch_size_per_device: int, run_config: dict,
                 gradcache_mini_batch_size: int | None = None, tokens_per_forward: int | None = None):
        super().__init__()
        self.optimizer_factory = optimizer
        self.clip = clip
        self.batch_size_per_device = int(batch_size_per_device)
        self.run_config = run_config  # the resolved config, stored in every checkpoint
        self.gradcache_mini_batch_size = gradcache_mini_batch_size
        self.tokens_per_forward = tokens_per_forward
        # GradCache runs several backwards per step: Lightning's manual optimization
        self.automatic_optimization = gradcache_mini_batch_size is None

    # ---- what a phase says --------------------------------------------------------------------
    @property
    def network(self) -> torch.nn.Module:
        """The trained network: features -> (b, d) embeddings."""
        raise NotImplementedError

    def sides(self, batch: dict) -> Sequence[Features]:
        """The batch's tokenised inputs, each (B, T_side)."""
        raise NotImplementedError

    def loss_from_embeddings(self, batch: dict, *embeddings: torch.Tensor) -> torch.Tensor:
        """A scalar from float32 (B, d) embeddings, one per side, in ``sides`` order."""
        raise NotImplementedError

    def describe(self) -> str:
        """What the batch line at start adds for this phase (negatives, loss terms)."""
        return ""

    def caches(self) -> dict:
        """The teacher caches (``biolord.teacher_cache``) the loss reads, by name: their counters are
        logged after each epoch and their last vectors written when training ends."""
        return {}

    # ---- the shared step ----------------------------------------------------------------------
    def on_train_start(self) -> None:
        world, per_device = self.trainer.world_size, self.batch_size_per_device
        msg = (f"batch: {per_device} pairs per device x {world} devices = {per_device * world} pairs per step "
               f"(x{self.trainer.accumulate_grad_batches} accumulation){self.describe()}")
        if self.gradcache_mini_batch_size is not None:
            msg += f"; GradCache mini-batches of {self.gradcache_mini_batch_size}"
        if self.trainer.is_global_zero:
            log.info(msg)
        for logger in self.trainer.loggers:
            logger.log_hyperparams({"global_batch": per_device * world})

    def training_step(self, batch, batch_idx):
        sides = self.sides(batch)
        rows = sides[0]["attention_mask"].shape[0]
        loss_fn = self._float32(lambda *embeddings: self.loss_from_embeddings(batch, *embeddings))
        if self.gradcache_mini_batch_size is not None:
            return self._cached_step(sides, loss_fn, rows)
        loss = loss_fn(*(e.float() for e in self.embed(sides)))  # each (B, d)
        self._check_and_log(loss, rows)
        return loss

    def embed(self, sides: Sequence[Features]) -> list[torch.Tensor]:
        """(B, d) embeddings of each side, with the graph."""
        if not self.tokens_per_forward:
            return [self.network(side) for side in sides]
        pad = getattr(self.network.tokenizer, "pad_token_id", None) or 0
        return embed_sides(self.network, list(sides), int(self.tokens_per_forward), pad_token_id=pad)

    def _cached_step(self, sides, loss_fn, rows: int):
        opt, scheduler = self.optimizers(), self.lr_schedulers()
        opt.zero_grad(set_to_none=True)
        ddp = self.trainer.strategy.model
        no_sync = ddp.no_sync if isinstance(ddp, torch.nn.parallel.DistributedDataParallel) else contextlib.nullcontext
        loss = cached_backward(self.network, list(sides), loss_fn, self.gradcache_mini_batch_size,
                               backward=self.manual_backward, no_sync=no_sync)
        self._check_and_log(loss, rows)  # before the step: a NaN loss updates nothing
        clip_gradients(self, opt, self.clip)
        opt.step()
        scheduler.step()
        return loss

    def _float32(self, loss_fn):
        """``loss_fn`` run outside autocast (on float32 embeddings)."""

        def run(*embeddings):
            with torch.autocast(self.device.type, enabled=False):
                return loss_fn(*embeddings)

        return run

    def _check_and_log(self, loss: torch.Tensor, batch_size: int) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step}. " + divergence_advice(
                    self.global_step, self.trainer.default_root_dir, self.optimizer_factory.lr, self.loss_scale)
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=True, batch_size=batch_size)
        self.log("train/global_batch", float(batch_size * distributed.world_size()), batch_size=batch_size)

    def on_train_epoch_end(self) -> None:
        for name, cache in self.caches().items():
            log.info("teacher cache (%s): %s", name, cache.stats())

    def on_train_end(self) -> None:
        for cache in {id(c): c for c in self.caches().values()}.values():  # one cache may serve two names
            cache.flush()

    # ---- optimizer, clipping, checkpoint ------------------------------------------------------
    def configure_optimizers(self):
        return self.optimizer_factory(self, int(self.trainer.estimated_stepping_batches))

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # the Trainer has no clip value (biolord.train): the phase's own, under either optimization
        clip_gradients(self, optimizer, self.clip)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # everything needed to rebuild the model: weights (state_dict) + the resolved config
        checkpoint["biolord_config"] = self.run_config
