"""The contrastive phase through ``run(cfg)``, as train.py runs it."""

import json
import subprocess
import sys

import pytest
import torch

from biolord.checkpoint import CorruptCheckpointError, load_checkpoint
from biolord.data.rows import NoUsableRowsError
from biolord.model_source import ModelNotFoundError
from biolord.train import run
from tests.conftest import ROOT


def test_fast_dev_run(tiny_train_cfg):
    result = run(tiny_train_cfg("trainer.fast_dev_run=true"))
    assert result["history"]  # evaluated before and after


def test_short_run_writes_checkpoint_and_loadable_model(tiny_train_cfg, tmp_path):
    from sentence_transformers import SentenceTransformer

    cfg = tiny_train_cfg()
    result = run(cfg)
    out = tmp_path / "run"
    # evaluations: start (step 0), step 2, end (step 3)
    assert [h["step"] for h in result["history"]] == [0, 2, 3]
    ckpt = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 3
    assert ckpt["biolord_config"]["data"]["batch_size_per_device"] == 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["heldout_retrieval"][-1]["step"] == 3
    assert (out / "csv" / "metrics.csv").exists()
    assert not list((out / "checkpoints").glob(".*tmp*"))  # atomic writes leave no temp files

    # the exported folder gives the trained encoder's vectors (rebuilt from the checkpoint)
    from biolord.encoder import Encoder

    enc = Encoder.load(cfg.model.name_or_path, max_seq_length=cfg.model.max_seq_length)
    enc.load_state_dict({k.removeprefix("encoder."): v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")})
    texts = ["heart disease one", "A rare disorder of the liver characterized by two kidney defect."]
    st = SentenceTransformer(str(out / "model"), device="cpu")
    diff = (enc.encode(texts) - st.encode(texts, convert_to_tensor=True).cpu()).abs().max().item()
    assert diff <= 1e-5
    assert "Held-out retrieval" in (out / "model" / "README.md").read_text()


def test_bf16_default_trains_and_exports_float32(tiny_train_cfg, tmp_path):
    """The CPU default on a bf16 CPU (bf16 autocast, fused AdamW, clipping): the weights move, the loss stays finite,
    and the export is a float32 folder that reproduces the trained encoder's vectors."""
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    from biolord.encoder import Encoder
    from biolord.pipeline import compose_entry

    assert compose_entry("train", []).trainer.precision == "auto"  # bf16-mixed on bf16 CPUs (tests/test_precision.py)
    cfg = tiny_train_cfg("trainer.precision=bf16-mixed", "trainer.max_steps=4")
    result = run(cfg)
    assert all(torch.isfinite(torch.tensor(h["acc@1"])) for h in result["history"])
    out = tmp_path / "run"
    weights = load_file(str(next((out / "model").glob("*.safetensors"))))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    base = Encoder.load(cfg.model.name_or_path, max_seq_length=cfg.model.max_seq_length)
    trained = SentenceTransformer(str(out / "model"), device="cpu")
    texts = ["heart disease one", "A rare disorder of the liver."]
    moved = (base.encode(texts) - trained.encode(texts, convert_to_tensor=True).cpu()).abs().max().item()
    assert moved > 1e-4  # four bf16 steps changed the model


def test_missing_model_path(tiny_train_cfg, tmp_path):
    cfg = tiny_train_cfg(f"model.name_or_path={tmp_path}/nope/model")
    with pytest.raises(ModelNotFoundError, match="model path does not exist"):
        run(cfg)


def test_batch_larger_than_data(tiny_train_cfg):
    with pytest.raises(ValueError, match="lower data.batch_size_per_device"):
        run(tiny_train_cfg("data.batch_size_per_device=50000"))


def test_source_with_no_rows(tiny_train_cfg, tmp_path):
    empty = tmp_path / "empty.obo"
    empty.write_text("format-version: 1.2\n")
    with pytest.raises(NoUsableRowsError):
        run(tiny_train_cfg(f"data.sources=[{{type:obo,path:'{empty}'}}]"))


def test_nan_loss_stops_with_a_clear_error(tiny_train_cfg, monkeypatch):
    from biolord.phases.contrastive import ContrastivePhase

    original = ContrastivePhase.training_step

    def poisoned(self, batch, batch_idx):
        for p in self.encoder.parameters():
            p.data.fill_(float("nan"))
            break
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ContrastivePhase, "training_step", poisoned)
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 0\. Likely causes: .*optim.lr=.*phase.loss.scale=20"):
        run(tiny_train_cfg("eval.at_start=false"))


def test_truncated_checkpoint_is_reported(tmp_path):
    bad = tmp_path / "last.ckpt"
    torch.save({"x": torch.zeros(1000)}, bad)
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(CorruptCheckpointError, match="truncated or corrupt"):
        load_checkpoint(bad)


def test_train_py_rejects_unknown_phase():
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "phase=nope"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert "Could not find 'phase/nope'" in proc.stderr and "contrastive" in proc.stderr


def test_benchmarks_run_during_training_and_reach_the_card(tiny_train_cfg, tmp_path):
    (tmp_path / "pairs.tsv").write_text(
        "a\tb\ts\nheart disease\theart disorder\t3\nliver defect\tbone defect\t1\neye\tblood\t0\nskin disease\tskin disorder\t3\n"
    )
    bench = "{name:toy,kind:pairs,path:pairs.tsv,text1:a,text2:b,score:s}"
    result = run(tiny_train_cfg(f"bench.benchmarks=[{bench},heldout]", f"bench.evals_dir={tmp_path}"))
    steps = [h["step"] for h in result["bench_history"]]
    assert steps == [0, 3]
    assert {"bench/toy/spearman", "bench/heldout/acc@1"} <= set(result["bench_history"][0])
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "## Benchmarks" in card and "toy/spearman" in card
    # the Hub metadata: parsed as the Hub parses it, model-index = the figures the run measured
    from huggingface_hub import ModelCard

    data = ModelCard.load(tmp_path / "run" / "model" / "README.md").data
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "sentence-similarity"
    assert data.language == ["en"] and data.datasets == ["tiny.obo"] and data.license == "other"  # a local base model
    assert {"sentence-transformers", "biomedical", "biolord", "feature-extraction"} <= set(data.tags)
    assert data.widget[0]["source_sentence"] and data.base_model is None  # a local folder is no hub id
    measured = {("biolord-heldout", "cosine_accuracy@1"): result["history"][-1]["acc@1"],
                ("biolord-heldout", "cosine_mrr"): result["history"][-1]["mrr"]}
    last = result["bench_history"][-1]
    measured.update({("toy", "spearman_cosine"): last["bench/toy/spearman"], ("toy", "pearson_cosine"): last["bench/toy/pearson"],
                     ("heldout", "cosine_accuracy@1"): last["bench/heldout/acc@1"], ("heldout", "cosine_mrr"): last["bench/heldout/mrr"]})
    assert {(r.dataset_type, r.metric_type): r.metric_value for r in data.eval_results} == measured
    assert "doi = {10.1093/jamia/ocae029}" in card and "https://github.com/)" not in card
    assert "(https://pypi.org/project/biolord-embed/)" in card


def test_run_settings_name_the_bad_value():
    from biolord.train import check_run_settings

    with pytest.raises(ValueError, match=r"gradcache.mini_batch_size=0: give a positive number"):
        check_run_settings(8, 10, -1, gradcache=0)
    with pytest.raises(ValueError, match=r"trainer.accumulate_grad_batches=2 with gradcache.mini_batch_size=4"):
        check_run_settings(8, 10, -1, gradcache=4, accumulate=2)
    check_run_settings(8, 10, -1, gradcache=4)  # a valid GradCache setting passes


def test_callbacks_come_from_the_config(tmp_path):
    """``callbacks:`` entries are instantiated by their _target_; null switches one off; no _target_ is an error."""
    from omegaconf import OmegaConf

    from biolord.train import configured_callbacks
    from tests.run_callbacks import BatchRecorder

    made = configured_callbacks(OmegaConf.create(
        {"rec": {"_target_": "tests.run_callbacks.BatchRecorder", "folder": str(tmp_path)}, "off": None}))
    assert len(made) == 1 and isinstance(made[0], BatchRecorder) and made[0].folder == tmp_path
    with pytest.raises(ValueError, match=r"callbacks.bad has no _target_ .*\+callbacks.bad._target_="):
        configured_callbacks(OmegaConf.create({"bad": {"folder": "x"}}))


def test_frozen_bottom_stays_as_pretrained_in_a_contrastive_run(tiny_train_cfg, tmp_path):
    from biolord.encoder import Encoder

    cfg = tiny_train_cfg("model.freeze_layers=1")
    run(cfg)
    start = Encoder.load(cfg.model.name_or_path).state_dict()
    trained = {k.removeprefix("encoder."): v for k, v in
               load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"].items() if k.startswith("encoder.")}
    changed = {k for k in start if not torch.equal(start[k], trained[k])}
    assert changed and all(".layer.1." in k for k in changed)  # embeddings and layer 0 frozen, layer 1 trained
