"""Loggers from config (``logger`` group: csv, wandb, tensorboard, none), with W&B failing soft.

A cluster job must not die because W&B is down or the node has no internet: when the W&B service
cannot be reached (and ``WANDB_MODE`` does not already say offline/disabled), the W&B logger is
switched to offline mode with a warning; the run folder then holds the files for ``wandb sync``.
"""

from __future__ import annotations

import logging
import os
import socket

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_reachable(host: str = "api.wandb.ai", port: int = 443, timeout: float = 3.0) -> bool:
    base = os.environ.get("WANDB_BASE_URL")
    if base:
        from urllib.parse import urlparse

        parsed = urlparse(base)
        host, port = parsed.hostname or host, parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def instantiate_loggers(cfg: DictConfig) -> list:
    if not cfg.get("logger"):
        return []
    loggers = []
    for name, conf in cfg.logger.items():
        if conf is None or "_target_" not in conf:
            continue
        conf = OmegaConf.to_container(conf, resolve=True)
        if conf["_target_"].endswith("WandbLogger"):
            mode = os.environ.get("WANDB_MODE", "")
            if not conf.get("offline") and mode not in ("offline", "disabled", "dryrun") and not wandb_reachable():
                log.warning(
                    "W&B is not reachable: logging offline to %s/wandb; upload later with `wandb sync`",
                    conf.get("save_dir"),
                )
                conf["offline"] = True
        loggers.append(hydra.utils.instantiate(conf))
    return loggers


def log_config(loggers: list, cfg: DictConfig) -> None:
    """The resolved config, so that every run in W&B / TensorBoard / CSV says how it was made."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(container)


def log_model_artifact(loggers: list, model_dir: str, name: str) -> None:
    """Upload the exported sentence-transformers folder as a W&B artifact (``wandb_artifact=true``)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            import wandb

            artifact = wandb.Artifact(name=name, type="model")
            artifact.add_dir(model_dir)
            logger.experiment.log_artifact(artifact)


def finish_loggers(loggers: list) -> None:
    """Close W&B runs so that their files are complete (several runs in one process, e.g. tests)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
            logger.experiment.finish()
