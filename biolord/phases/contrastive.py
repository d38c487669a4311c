"""Phase 1 of BioLORD-2023: concept names against their definitions and descriptions.

Glue only: the encoder (``biolord.encoder``) embeds both sides, the loss (``biolord.losses``)
scores local anchors against the positives of all ranks. Remy et al., JAMIA 2024, section 2.2.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from omegaconf import OmegaConf

from biolord import distributed
from biolord.encoder import Encoder
from biolord.losses import InfoNCELoss
from biolord.phases.optim import configure_optimizers

log = logging.getLogger(__name__)


class ContrastivePhase(L.LightningModule):
    def __init__(self, encoder: Encoder, cfg):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.loss_fn = InfoNCELoss(**cfg.phase.loss)
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
        log.info(msg)
        for logger in self.trainer.loggers:
            logger.log_hyperparams({"global_batch": per_device * world, "negatives_per_anchor": per_device * world - 1})

    def training_step(self, batch, batch_idx):
        anchors = self.encoder(batch["anchor"])  # (B, d)
        positives = self.encoder(batch["positive"])  # (B, d)
        loss = self.loss_fn(anchors.float(), positives.float(), batch["concept_id"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step}; lower optim.lr, keep "
                "trainer.gradient_clip_val, or train in full precision (trainer.precision=32)"
            )
        batch_size = anchors.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=True, batch_size=batch_size)
        self.log("train/global_batch", float(batch_size * distributed.world_size()), batch_size=batch_size)
        return loss

    def configure_optimizers(self):
        return configure_optimizers(self, self.cfg.optim, int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Everything needed to rebuild the model: weights (state_dict) + the resolved config.
        checkpoint["biolord_config"] = OmegaConf.to_container(self.cfg, resolve=True)
