"""The models a command names: ``model=<x>`` (one) or ``models=[a,b]``, presets resolved.

``biolord.evaluate`` and ``biolord.link`` take ``model=<x>``, a plain key (null by default; see
``biolord.config_store`` for why it is not a config group there). A name of a train.py preset
(``model=minilm``, a file of ``conf/model/``) stands for the ``name_or_path`` it holds, so the base
model a run started from is scored by the name the run was given.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from biolord.config_dir import config_dir


def model_name(value: str) -> str:
    """A preset of ``conf/model/`` -> its ``name_or_path``; anything else (a path, a hub id) unchanged."""
    value = str(value)
    preset = config_dir() / "model" / f"{value}.yaml"
    if "/" not in value and ":" not in value and preset.is_file():
        return str(OmegaConf.load(preset).name_or_path)
    return value


def models_to_score(model, models) -> list[str]:
    """``model=<x>`` replaces the ``models`` list (``models=[<x>]``); presets resolved in either."""
    chosen = [model] if model not in (None, "") else list(models or [])
    return [model_name(m) for m in chosen]
