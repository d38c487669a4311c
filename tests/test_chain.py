"""The BioLORD-2023 chain on a tiny model: contrastive -> self_distill -> average, each through its
``run(cfg)`` (what train.py and average.py call), and the result loads in sentence-transformers."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from biolord import soup
from biolord.encoder import Encoder
from biolord.train import run as train
from tests.test_soup import compose_average, weights_of


def test_contrastive_then_self_distill_then_greedy_and_uniform_soups(tiny_train_cfg, tiny_model_dir, tiny_obo, tmp_path):
    from sentence_transformers import SentenceTransformer

    small = ["data.max_train_rows=16", "data.batch_size_per_device=8", "trainer.max_steps=3"]
    c_dir = Path(train(tiny_train_cfg(*small, f"paths.output_dir={tmp_path / 'c'}"))["output_dir"])
    s_dir = Path(train(tiny_train_cfg(
        *small, "phase=self_distill", f"teacher={c_dir}", "phase.student_init=teacher",
        "phase.sentence_teacher=${model.name_or_path}", f"paths.output_dir={tmp_path / 's'}"))["output_dir"])
    c, s = weights_of(c_dir / "model"), weights_of(s_dir / "model")
    key = "encoder.layer.1.output.dense.weight"
    assert not torch.equal(c[key], s[key])  # the student moved

    # uniform soup of the two runs (run folders as given on the command line)
    uniform = soup.run(compose_average([f"ckpts=[{c_dir},{s_dir}]", f"output_dir={tmp_path / 'u'}"]))
    torch.testing.assert_close(weights_of(uniform["model_dir"])[key], (c[key] + s[key]) / 2, atol=1e-6, rtol=1e-5)

    # greedy soup scored on the held-out split of the same training data (the suite's heldout benchmark)
    greedy = soup.run(compose_average([
        f"ckpts=[{c_dir},{s_dir},{tiny_model_dir}]", "method=greedy", "benchmarks=[heldout]",
        f"data.sources=[{{type:obo,path:'{tiny_obo}'}}]", "data.val_fraction=0.2", "data.val_max_concepts=20",
        f"paths.cache_dir={tmp_path / 'cache'}", f"output_dir={tmp_path / 'g'}", "device=cpu",
    ]))
    lines = [json.loads(x) for x in (tmp_path / "g" / "soup.jsonl").read_text().splitlines()]
    decisions = [x for x in lines if x["event"] == "decision"]
    assert len(decisions) == 3 and decisions[0]["accepted"]
    for d in decisions[1:]:  # an ingredient joins only when the held-out score improves (Wortsman et al.: strictly)
        assert d["accepted"] == (d["soup_score"] > d["best_before"])
    out = Path(greedy["model_dir"])
    texts = ["wilson disease", "copper deposition in the liver"]
    ours = Encoder.load(str(out)).encode(texts)
    theirs = SentenceTransformer(str(out), device="cpu").encode(texts, convert_to_tensor=True).cpu()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert "greedy soup" in (out / "README.md").read_text()

