"""``model=<path or name>`` on the command line of ``biolord.evaluate`` and ``biolord.link``.

``conf/model/`` is a config group (train.py's model presets), so Hydra reads ``model=<x>`` as
"pick conf/model/<x>.yaml" and fails for a path or a hub id. The entry points accept the natural
spelling anyway by rewriting that one argument before Hydra parses the command line; a preset
name (``model=minilm``) is replaced by the ``name_or_path`` it holds.
"""

from __future__ import annotations


from omegaconf import OmegaConf

from biolord.config_dir import config_dir

MODEL_PRESETS = config_dir() / "model"


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def model_name(value: str) -> str:
    """A preset of conf/model/ -> its name_or_path; anything else unchanged."""
    preset = MODEL_PRESETS / f"{value}.yaml"
    if preset.is_file() and "/" not in value:
        return str(OmegaConf.load(preset).name_or_path)
    return value


def rewrite_model_argument(argv: list[str], key: str, as_list: bool = False) -> list[str]:
    """``model=<x>`` -> ``<key>=<x>`` (``<key>=[<x>]`` when ``as_list``); other arguments unchanged."""
    out = []
    for arg in argv:
        if arg.startswith("model="):
            value = _quoted(model_name(arg[len("model="):].strip("'\"")))
            arg = f"{key}=[{value}]" if as_list else f"{key}={value}"
        out.append(arg)
    return out
