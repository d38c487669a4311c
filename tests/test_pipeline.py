"""The one-command pipeline (biolord.pipeline): contrastive -> self_distill -> soup -> evaluation,
each stage a normal run folder, on the tiny model."""

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import compose


@pytest.fixture
def tiny_stage(tmp_path, tiny_model_dir, tiny_obo):
    common = [
        "model=hub", f"model.name_or_path={tiny_model_dir}", "model.max_seq_length=32",
        f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", "data.batch_size_per_device=8", "data.val_fraction=0.2",
        "data.val_max_concepts=20", f"paths.cache_dir={tmp_path / 'cache'}", "logger=csv", "trainer.max_steps=3",
        "trainer.enable_progress_bar=false", "eval.every_n_steps=0", "checkpoint.every_n_steps=3",
    ]
    return common


def _pipeline_cfg(tmp_path, stage, *extra):
    def listed(items):
        return "[" + ",".join(f'"{i}"' for i in items) + "]"

    return compose(
        [
            f"contrastive={listed(['phase=contrastive', *stage])}",
            f"self_distill={listed(['phase=self_distill', *stage])}",
            "evaluate.benchmarks=[heldout]",
            f"output_dir={tmp_path / 'pipe'}",
            *extra,
        ],
        config_name="pipeline",
    )


def test_pipeline_runs_every_stage_and_the_soup_is_their_mean(tmp_path, tiny_stage, capsys):
    from biolord.pipeline import run

    summary = run(_pipeline_cfg(tmp_path, tiny_stage))
    pipe = tmp_path / "pipe"
    for stage in ("contrastive", "self_distill", "average"):
        assert (pipe / stage / "model" / "model.safetensors").exists(), stage
        assert summary["stages"][stage]["seconds"] > 0
    # the self-distillation stage was taught by the contrastive stage (its card holds the resolved config)
    assert f"teacher: {pipe / 'contrastive'}" in (pipe / "self_distill" / "model" / "README.md").read_text()
    c, s, a = (load_file(pipe / st / "model" / "model.safetensors") for st in ("contrastive", "self_distill", "average"))
    name = next(k for k in a if k.endswith("query.weight"))
    assert not torch.equal(c[name], s[name])
    assert torch.allclose(a[name], (c[name] + s[name]) / 2, atol=1e-6)
    # one row per model in the final table, base first, on the held-out split of the training data
    labels = [line.split("|")[1].strip() for line in summary["table"].splitlines()[2:]]
    assert labels == ["base", "contrastive", "self_distill", "average"]
    assert "heldout acc@1" in summary["table"].splitlines()[0]
    assert (pipe / "pipeline.md").read_text().count("\n| ") == 5
    assert "BioLORD pipeline: training" in capsys.readouterr().out


def test_pipeline_rerun_skips_finished_stages(tmp_path, tiny_stage):
    from biolord.pipeline import run

    first = run(_pipeline_cfg(tmp_path, tiny_stage, "soup=[base,contrastive]", "evaluate.benchmarks=[]"))
    mtime = (tmp_path / "pipe" / "contrastive" / "model" / "model.safetensors").stat().st_mtime
    second = run(_pipeline_cfg(tmp_path, tiny_stage, "soup=[base,contrastive]", "evaluate.benchmarks=[]"))
    assert (tmp_path / "pipe" / "contrastive" / "model" / "model.safetensors").stat().st_mtime == mtime
    assert second["stages"]["contrastive"]["seconds"] == first["stages"]["contrastive"]["seconds"]


def test_pipeline_names_an_unknown_soup_stage(tmp_path, tiny_stage):
    from biolord.pipeline import run

    with pytest.raises(ValueError, match=r"soup=.*'nope'.*choose among"):
        run(_pipeline_cfg(tmp_path, tiny_stage, "soup=[contrastive,nope]", "evaluate.benchmarks=[]"))


def _documented_pipeline_commands():
    """Each example command line `python pipeline.py <overrides>  # comment` of the docs and of the
    pipeline's own help, as its override list."""
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in (root / "docs" / "training.md", root / "conf" / "pipeline.yaml"):
        for line in path.read_text().splitlines():
            match = re.match(r"^[#\s]*python pipeline\.py((?: [^#`(]*)?)(?:#.*)?$", line)
            if match and "[key=value" not in line:
                found.append((path.name, shlex.split(match.group(1))))
    return found


def test_documented_pipeline_commands_compose():
    """The examples users copy compose (a list of overrides needs each item quoted: Hydra reads
    `[experiment=x]` as a syntax error); the GPU presets reach the stages."""
    commands = _documented_pipeline_commands()
    assert len(commands) >= 6, commands  # docs/training.md and the help text, 3-4 examples each
    for where, overrides in commands:
        cfg = compose([o for o in overrides if not o.startswith("--")], config_name="pipeline")
        if any(o.startswith("contrastive=") for o in overrides):
            assert list(cfg.contrastive) == ["experiment=biolord2023_c"], where
            assert list(cfg.self_distill) == ["experiment=biolord2023_s"], where
