"""Export round trip: SentenceTransformer(path) gives the vectors of the training encoder."""

import json

import pytest
import torch

from biolord.encoder import Encoder
from biolord.export import export_sentence_transformers

TEXTS = [
    "wilson disease",
    "a rare inherited disorder of copper metabolism characterized by excessive copper deposition in the liver and brain",
    "seizure",
]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sentence_transformers_loads_same_vectors(tiny_encoder, tmp_path, pooling):
    from sentence_transformers import SentenceTransformer

    tiny_encoder.pooling = pooling
    # perturb the weights so that the test is not on the saved initial model
    with torch.no_grad():
        for p in tiny_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ours = tiny_encoder.encode(TEXTS)
    folder = export_sentence_transformers(tiny_encoder, tmp_path / "model")
    st = SentenceTransformer(str(folder), device="cpu")
    theirs = st.encode(TEXTS, convert_to_tensor=True).cpu()
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert st.max_seq_length == tiny_encoder.max_seq_length
    assert (folder / "model.safetensors").exists()
    assert json.loads((folder / "modules.json").read_text())[-1]["path"] == "2_Normalize"
    # and our own loader reads the folder back with the same settings
    again = Encoder.load(str(folder))
    assert (again.pooling, again.normalize, again.max_seq_length) == (pooling, True, tiny_encoder.max_seq_length)
    assert torch.allclose(again.encode(TEXTS), ours, atol=1e-5)


def test_export_replaces_existing_folder_without_leftovers(tiny_encoder, tmp_path):
    target = tmp_path / "model"
    export_sentence_transformers(tiny_encoder, target)
    (target / "stale.txt").write_text("old")
    export_sentence_transformers(tiny_encoder, target, card="# card")
    assert not (target / "stale.txt").exists()
    assert (target / "README.md").read_text() == "# card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left
