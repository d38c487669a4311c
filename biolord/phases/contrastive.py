"""Phase 1 of BioLORD-2023: concept names against their definitions and descriptions.

Glue only: the encoder (``biolord.encoder``) embeds both sides, the loss (``biolord.losses``)
scores local anchors against the positives of all ranks. Remy et al., JAMIA 2024, section 2.2.
With ``phase.loss.mini_batch_size`` set, the same loss runs through the GradCache engine
(``biolord.gradcache``) under Lightning's manual optimization: a large batch in the memory of a
mini-batch. Otherwise both sides are embedded in length-sorted chunks of at most
``phase.tokens_per_forward`` tokens (``biolord.chunking``: little padding, same vectors).

Under mixed precision (``trainer.precision=bf16-mixed``, the CPU default: bf16 matmuls run about
2.4x faster on CPUs with AVX512-BF16 or AMX) the encoder runs in bf16 and the loss in float32,
outside autocast: the logits of a scale-20 softmax need float32's mantissa.
"""

from __future__ import annotations

import contextlib
import logging

import lightning as L
import torch
from omegaconf import OmegaConf

from biolord import distributed
from biolord.checkpoint import divergence_advice
from biolord.chunking import embed_sides
from biolord.encoder import Encoder
from biolord.gradcache import cached_backward
from biolord.losses import InfoNCELoss
from biolord.phases.optim import clip_gradients, configure_optimizers

log = logging.getLogger(__name__)


class ContrastivePhase(L.LightningModule):
    @classmethod
    def initial_encoder(cls, cfg) -> Encoder:
        """The model this phase trains and exports. train.py builds it first: its tokenizer feeds the data."""
        return Encoder.from_config(cfg.model)

    def __init__(self, encoder: Encoder, cfg):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        loss_cfg = dict(cfg.phase.loss)
        self.mini_batch_size = loss_cfg.pop("mini_batch_size", None)
        self.tokens_per_forward = cfg.phase.get("tokens_per_forward")
        self.loss_fn = InfoNCELoss(**loss_cfg, model_dim=encoder.dim)  # Matryoshka dims checked here, before fit
        if self.mini_batch_size is not None:
            # GradCache runs several backwards per step: Lightning's manual optimization. Lightning
            # refuses trainer.gradient_clip_val there (train.py passes None), so this module clips
            # with the config's value.
            self.automatic_optimization = False
            self.clip_val = OmegaConf.select(cfg, "trainer.gradient_clip_val", default=None)
            self.clip_algorithm = OmegaConf.select(cfg, "trainer.gradient_clip_algorithm", default=None) or "norm"
            accumulate = OmegaConf.select(cfg, "trainer.accumulate_grad_batches", default=1)
            if accumulate != 1:
                raise ValueError(
                    f"trainer.accumulate_grad_batches={accumulate} with phase.loss.mini_batch_size="
                    f"{self.mini_batch_size}: GradCache already gives the large batch; raise "
                    "data.batch_size_per_device instead and set trainer.accumulate_grad_batches=1"
                )
        # from_pretrained returns modules in eval mode; training needs dropout on (as sentence-transformers).
        self.encoder.train()

    def on_train_start(self) -> None:
        world = self.trainer.world_size
        per_device = self.cfg.data.batch_size_per_device
        accumulate = self.trainer.accumulate_grad_batches
        msg = (
            f"batch: {per_device} pairs per device x {world} devices = {per_device * world} pairs per step "
            f"(x{accumulate} accumulation); each anchor sees {per_device * world - 1} in-batch negatives"
        )
        if self.mini_batch_size is not None:
            msg += f"; GradCache mini-batches of {self.mini_batch_size}"
        if self.loss_fn.matryoshka_dims:
            msg += f"; Matryoshka dims {self.loss_fn.matryoshka_dims} (weights {self.loss_fn.matryoshka_weights})"
        if self.trainer.is_global_zero:
            log.info(msg)
        for logger in self.trainer.loggers:
            logger.log_hyperparams({"global_batch": per_device * world, "negatives_per_anchor": per_device * world - 1})

    def training_step(self, batch, batch_idx):
        if self.mini_batch_size is not None:
            return self._cached_step(batch)
        anchors, positives = self.embed(batch)  # (B, d) each
        with torch.autocast(self.device.type, enabled=False):  # the loss in float32
            loss = self.batch_loss(anchors.float(), positives.float(), batch)
        self._check_and_log(loss, anchors.shape[0])
        return loss

    def embed(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, d) embeddings of the names and the texts, with the graph."""
        sides = [batch["anchor"], batch["positive"]]
        if not self.tokens_per_forward:
            return self.encoder(sides[0]), self.encoder(sides[1])
        pad = self.encoder.tokenizer.pad_token_id or 0
        anchors, positives = embed_sides(self.encoder, sides, int(self.tokens_per_forward), pad_token_id=pad)
        return anchors, positives

    def batch_loss(self, anchors: torch.Tensor, positives: torch.Tensor, batch: dict) -> torch.Tensor:
        """The phase's loss on (B, d) embeddings; phases with other terms override this (one
        implementation of the step, GradCache and logging for all of them)."""
        return self.loss_fn(anchors, positives, batch["concept_id"])

    def _cached_step(self, batch):
        opt, scheduler = self.optimizers(), self.lr_schedulers()
        opt.zero_grad(set_to_none=True)
        ids = batch["concept_id"]  # (B,)
        ddp = self.trainer.strategy.model
        no_sync = ddp.no_sync if isinstance(ddp, torch.nn.parallel.DistributedDataParallel) else contextlib.nullcontext
        loss = cached_backward(
            self.encoder,
            [batch["anchor"], batch["positive"]],
            self._float32(lambda anchors, positives: self.batch_loss(anchors, positives, batch)),
            self.mini_batch_size,
            backward=self.manual_backward,
            no_sync=no_sync,
        )
        self._check_and_log(loss, len(ids))  # before the step: a NaN loss updates nothing
        if self.clip_val:
            self.configure_gradient_clipping(opt, self.clip_val, self.clip_algorithm)
        opt.step()
        scheduler.step()
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _float32(self, loss_fn):
        """``loss_fn`` run outside autocast (GradCache calls it on float32 embeddings)."""

        def run(*embeddings):
            with torch.autocast(self.device.type, enabled=False):
                return loss_fn(*embeddings)

        return run

    def _check_and_log(self, loss: torch.Tensor, batch_size: int) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step}. " + divergence_advice(
                    self.global_step, self.trainer.default_root_dir, self.cfg.optim.lr, self.loss_fn.scale)
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=True, batch_size=batch_size)
        self.log("train/global_batch", float(batch_size * distributed.world_size()), batch_size=batch_size)

    def configure_optimizers(self):
        return configure_optimizers(self, self.cfg.optim, int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Everything needed to rebuild the model: weights (state_dict) + the resolved config.
        checkpoint["biolord_config"] = OmegaConf.to_container(self.cfg, resolve=True)
