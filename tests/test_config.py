"""Every config composes; unknown phases and groups fail with a message that names them."""


import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from biolord.phases import phase_hooks
from tests.conftest import CONF, compose

# the groups of conf/train.yaml (other groups, e.g. benchmark/, belong to other entry points)
GROUPS = ["phase", "model", "data", "optim", "trainer", "logger", "paths", "debug", "experiment"]


@pytest.mark.parametrize(
    "group,option",
    [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml")) if (CONF / g).is_dir()],
)
def test_every_option_composes(group, option, tmp_path):
    overrides = [f"{group}={option}", f"paths.output_dir={tmp_path}"]
    if group == "model" and option == "hub":
        overrides.append("model.name_or_path=some/model")
    entry = "train"
    if group == "experiment" and "distill.py" in (CONF / group / f"{option}.yaml").read_text():
        entry = "distill"  # presets of distill.py compose with its own entry config
    cfg = compose(overrides, config_name=entry)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_unknown_phase_lists_the_choices():
    with pytest.raises(MissingConfigException, match=r"(?s)Could not find .phase/does_not_exist.*Available options in .phase.*contrastive"):
        compose(["phase=does_not_exist"])


def test_phase_registry_errors():
    with pytest.raises(ValueError, match="unknown phase 'nope'.*contrastive"):
        phase_hooks("nope")
    assert [phase_hooks(n).name for n in ("contrastive", "self_distill", "multilingual")] == [
        "contrastive", "self_distill", "multilingual"]


def test_command_line_overrides_reach_the_config(tmp_path):
    cfg = compose(["trainer.max_steps=7", "data.batch_size_per_device=3", "model.pooling=cls", f"paths.output_dir={tmp_path}"])
    assert (cfg.trainer.max_steps, cfg.data.batch_size_per_device, cfg.model.pooling) == (7, 3, "cls")


def test_hub_model_requires_a_name(tmp_path):
    cfg = compose(["model=hub", f"paths.output_dir={tmp_path}"])
    with pytest.raises(Exception, match="name_or_path"):
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
