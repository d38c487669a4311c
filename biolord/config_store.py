"""conf/ for the commands whose ``model=`` is a path or a hub id (evaluate, link): no ``model`` group.

``conf/model/`` is train.py's group of model presets. Hydra reads ``model=<x>`` as a choice in that
group whenever a group of that name is on the config search path, whatever the primary config
holds, so ``model=outputs/<run>/model`` would fail as "Could not find 'model/outputs/<run>/model'".
These commands therefore compose from Hydra's ``ConfigStore`` filled with conf/'s files minus
``model/``: the YAML files stay the one source, ``model`` becomes a plain key (null by default) that
the command merges in code (``biolord.evaluation.model_names``), and nothing rewrites ``sys.argv``.
"""

from __future__ import annotations

from typing import Callable

from omegaconf import OmegaConf

from biolord.config_dir import config_dir

# The conf/ groups evaluate.yaml and link.yaml choose from (data=..., paths=..., the stderr logging).
# Never `model`: on these commands `model=<x>` is a value.
GROUPS = ("data", "paths", "hydra/job_logging")


def register(config_name: str) -> list[tuple[str, str]]:
    """``conf/<config_name>.yaml`` and every file of ``GROUPS`` into the ConfigStore (``group/name``);
    returns the (group, name) entries stored, for ``unregister``."""
    from hydra.core.config_store import ConfigStore

    store, root = ConfigStore.instance(), config_dir()
    store.store(name=config_name, node=OmegaConf.load(root / f"{config_name}.yaml"), provider="biolord")
    stored = [("", config_name)]
    for group in GROUPS:
        for path in sorted((root / group).rglob("*.yaml")):
            folder = path.parent.relative_to(root).as_posix()
            store.store(name=path.stem, group=folder, node=OmegaConf.load(path), provider="biolord")
            stored.append((folder, path.stem))
    return stored


def unregister(stored: list[tuple[str, str]]) -> None:
    """Remove what ``register`` stored. Hydra validates a config file against a ConfigStore entry of
    the same name ("automatic schema matching", an error with a defaults list), so a later
    composition from conf/ in the same process (the pipeline, train.py's groups, tests) must not
    find these entries."""
    from hydra.core.config_store import ConfigStore

    repo = ConfigStore.instance().repo
    for group, name in stored:
        node = repo
        for part in filter(None, group.split("/")):
            node = node.get(part, {})
        node.pop(f"{name}.yaml", None)


def main(config_name: str) -> Callable:
    """``@hydra.main`` for ``conf/<config_name>.yaml`` composed without the ``model`` group."""
    import hydra

    register(config_name)
    return hydra.main(version_base="1.3", config_path=None, config_name=config_name)


def compose(config_name: str, overrides=(), return_hydra_config: bool = False):
    """The config ``main(config_name)`` gives for these command-line ``overrides`` (tests, scripts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize

    stored = register(config_name)
    try:
        with initialize(version_base="1.3", config_path=None):
            return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
    finally:
        unregister(stored)
