"""ONNX and int8-quantised ONNX variants of an exported model, checked against PyTorch and timed.

    python -m biolord.export_onnx model=outputs/contrastive/<run>/model      # fp32 + int8
    python -m biolord.export_onnx model=<folder> quantize=none               # fp32 only
    python -m biolord.export_onnx model=<folder> probe=texts.txt repeats=5   # own probe texts

The files go beside the model, where sentence-transformers' ONNX backend looks for them::

    <folder>/onnx/model.onnx                    SentenceTransformer(folder, backend="onnx")
    <folder>/onnx/model_qint8_quantized.onnx    ... model_kwargs={"file_name": "onnx/model_qint8_quantized.onnx"}
    <folder>/onnx/check.json                    the check below, with the speeds

Each variant must reproduce the PyTorch vectors of a probe set (cosine >= 0.999 for fp32 ONNX,
>= 0.99 for int8, per text); the command fails naming the file and the figure otherwise, and prints
the encode speed (sentences/s) of PyTorch and of each variant. The default probe set is 32 built-in
names and definitions plus the labels and definitions of 144 MONDO concepts spread over the ontology
(as shipped by cellxgene-ontology-guide): 320 texts.

The int8 variant quantises the weights of the MatMuls per output channel, except the feed-forward down-projections
(the MatMul after the GELU in each layer), which stay fp32: their inputs have the widest, most
outlier-heavy range in a BERT, so one per-tensor activation scale loses them (Bondarenko et al., 2021,
"Understanding and Overcoming the Challenges of Efficient Transformer Quantization"). On
all-MiniLM-L6-v2 this takes the minimum cosine over the probe set from 0.986 to 0.993 (docs/evaluation.md).

Why not sentence-transformers' ``export_dynamic_quantized_onnx_model`` / ``export_optimized_onnx_model``:
they run through optimum-onnx, whose releases pin transformers < 4.58 (huggingface/optimum-onnx#114),
while sentence-transformers 6 needs transformers >= 5. The graph is therefore exported by
``torch.onnx.export`` (the torch.export-based exporter, with ``onnxscript``) with optimum's input and
output names, and quantised by onnxruntime's dynamic quantisation (int8 weights, per channel), the
routine optimum's ``ORTQuantizer`` drives. Needs ``pip install onnx onnxruntime onnxscript``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from biolord import model_source
from biolord.encoder import Encoder

log = logging.getLogger(__name__)

ONNX_FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model_qint8_quantized.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what Encoder.forward feeds the transformer
DEFAULTS = {
    "model": None, "quantize": "int8", "probe": None, "batch_size": 32, "repeats": 3,
    "min_cosine_fp32": 0.999, "min_cosine_int8": 0.99, "opset": 18,
}
# Biomedical names and definitions of varied length: the vectors the check compares.
PROBE = [
    "Wilson disease", "hepatolenticular degeneration",
    "an autosomal recessive disorder of copper metabolism with copper deposition in the liver and brain",
    "myocardial infarction", "heart attack", "necrosis of the myocardium caused by an obstruction of the blood supply",
    "type 2 diabetes mellitus", "a metabolic disorder characterized by insulin resistance and hyperglycemia",
    "chronic kidney disease", "progressive loss of renal function over months or years",
    "acute lymphoblastic leukemia", "a cancer of the lymphoid line of blood cells",
    "Huntington disease", "an inherited neurodegenerative disorder causing chorea and cognitive decline",
    "ataxia telangiectasia", "breast carcinoma", "osteogenesis imperfecta", "brittle bone disease",
    "pulmonary embolism", "a blockage of an artery in the lungs by a substance that has moved from elsewhere",
    "iron deficiency anaemia", "hypothyroidism", "an underactive thyroid gland", "psoriasis",
    "a chronic autoimmune skin disease with red, itchy, scaly patches", "acetaminophen", "paracetamol overdose",
    "hepatitis B virus infection", "Parkinson disease", "tremor, rigidity and bradykinesia", "asthma", "COPD",
]


class ExportCheckError(RuntimeError):
    """A variant does not reproduce the PyTorch vectors; the message names the file and the figures."""


class _LastHiddenState(nn.Module):
    """transformer(**inputs).last_hidden_state as a plain function of tensors, for the exporter."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state


class OnnxTransformer(nn.Module):
    """An ONNX Runtime session in the place of the Hugging Face transformer inside an ``Encoder``:
    the same tokenisation, batching and pooling run on top of it (one pooling for every backend)."""

    def __init__(self, path: Path, config):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        self.config = config  # Encoder.dim reads hidden_size

    def forward(self, **inputs) -> SimpleNamespace:
        feed = {name: inputs[name].cpu().numpy() for name in self.names}
        (hidden,) = self.session.run(["last_hidden_state"], feed)  # (B, T, d)
        return SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))


def export_onnx(encoder: Encoder, path: Path, opset: int = 18) -> Path:
    """The transformer as ONNX (inputs as the tokenizer names them, output ``last_hidden_state``,
    batch and sequence dynamic), written to a temporary file and renamed into place."""
    encoder = encoder.eval()
    sample = encoder.tokenize(["wilson disease", "a disorder of copper metabolism in the liver and brain"])  # (2, T)
    names = [n for n in INPUTS if n in sample]
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with torch.no_grad():
            torch.onnx.export(
                _LastHiddenState(encoder.transformer).eval(),
                args=(),
                kwargs={n: sample[n] for n in names},
                f=str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_shapes={n: {0: batch, 1: seq} for n in names},
                opset_version=opset,
                dynamo=True,
                external_data=False,  # one file: models here are far below protobuf's 2 GB limit
            )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def ffn_down_projections(path: Path, intermediate_size: int) -> list[str]:
    """The MatMul nodes whose weight has ``intermediate_size`` rows: the feed-forward down-projections,
    one per layer (the weight of ``nn.Linear(intermediate, hidden)`` is exported as a (intermediate, hidden)
    initializer, whatever the exporter names the node)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    rows = {t.name: t.dims[0] for t in graph.initializer if t.dims}
    return [n.name for n in graph.node if n.op_type == "MatMul" and rows.get(n.input[1]) == intermediate_size]


def quantize_int8(source: Path, target: Path, keep_fp32: list[str] = ()) -> Path:
    """Dynamic int8 quantisation of the MatMuls with a weight (those of optimum's avx512_vnni config; the
    embedding tables stay fp32): int8 weights per output channel (per tensor loses too much: min cosine
    0.90 on MiniLM), activations quantised at run time; the nodes in ``keep_fp32`` are left as they are."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=list(keep_fp32))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def default_probe(concepts: int = 144) -> list[str]:
    """``PROBE`` plus the label and the definition of ``concepts`` MONDO concepts taken at even steps over
    the defined ones (the same texts on every run of one MONDO release)."""
    from collections import Counter

    from biolord.data import ontology

    defined = [c for c in ontology.cellxgene_concepts("MONDO", Counter())[0] if c.definition]
    picked = defined[:: max(1, len(defined) // concepts)][:concepts]
    return PROBE + [c.label for c in picked] + [c.definition for c in picked]


def sentences_per_second(encoder: Encoder, texts: list[str], batch_size: int, repeats: int) -> float:
    """Encode speed after one warm-up pass, tokenisation included (what a user's encode costs)."""
    encoder.encode(texts, batch_size=batch_size, device="cpu")
    start = time.perf_counter()
    for _ in range(repeats):
        encoder.encode(texts, batch_size=batch_size, device="cpu")
    return repeats * len(texts) / (time.perf_counter() - start)


def run(
    model: str,
    quantize: str | None = "int8",
    probe: list[str] | None = None,
    batch_size: int = 32,
    repeats: int = 3,
    min_cosine_fp32: float = 0.999,
    min_cosine_int8: float = 0.99,
    opset: int = 18,
) -> dict:
    """Write the variants beside ``model``, check them against PyTorch, time them; the report as a dict."""
    if quantize not in (None, "none", "int8"):
        raise ValueError(f"quantize={quantize!r}: choose int8 (default) or none")
    for key, value in (("min_cosine_fp32", min_cosine_fp32), ("min_cosine_int8", min_cosine_int8)):
        if not 0 < value <= 1:
            raise ValueError(f"{key}={value} must be in (0, 1]")
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"biolord.export_onnx needs onnx, onnxruntime and onnxscript ({err}); pip install onnx onnxruntime onnxscript"
        ) from err
    if str(model).startswith("package:"):
        raise ValueError(
            f"model={model} lives inside an installed package, and the variants are written beside the model; "
            f"copy it first: cp -r $(python -c \"from biolord import model_source; print(model_source.resolve('{model}'))\") "
            "<folder> and give model=<folder>"
        )
    folder = Path(model_source.resolve(model))
    if not (folder / "modules.json").exists():
        raise ValueError(f"model={model}: {folder} is not a sentence-transformers folder (no modules.json); "
                         "give a folder that biolord exported, e.g. outputs/<run>/model")
    texts = list(probe or default_probe())
    reference = Encoder.load(str(folder)).eval()  # pooling, normalisation, max length from the folder
    variants = [("onnx fp32", ONNX_FILE, min_cosine_fp32)]
    log.info("exporting %s to ONNX (opset %d)", folder, opset)
    export_onnx(reference, folder / ONNX_FILE, opset)
    keep_fp32 = []
    if quantize == "int8":
        keep_fp32 = ffn_down_projections(folder / ONNX_FILE, reference.transformer.config.intermediate_size)
        log.info("int8: weights per channel; %d feed-forward down-projections kept fp32", len(keep_fp32))
        quantize_int8(folder / ONNX_FILE, folder / INT8_FILE, keep_fp32)
        variants.append(("onnx int8", INT8_FILE, min_cosine_int8))

    want = reference.encode(texts, batch_size=batch_size, device="cpu")  # (N, d)
    rows = [{"variant": "pytorch", "file": "model.safetensors", "mb": _mb(folder / "model.safetensors"),
             "min_cosine": 1.0, "mean_cosine": 1.0, "threshold": None,
             "sentences_per_s": round(sentences_per_second(reference, texts, batch_size, repeats), 1)}]
    failures = []
    for name, file, threshold in variants:
        onnx = Encoder(OnnxTransformer(folder / file, reference.transformer.config), reference.tokenizer,
                       reference.pooling, reference.normalize, reference.max_seq_length, source=str(folder / file))
        got = onnx.encode(texts, batch_size=batch_size, device="cpu")  # (N, d)
        cos = torch.nn.functional.cosine_similarity(got, want, dim=1)  # (N,)
        rows.append({"variant": name, "file": file, "mb": _mb(folder / file),
                     "min_cosine": round(float(cos.min()), 6), "mean_cosine": round(float(cos.mean()), 6),
                     "threshold": threshold,
                     "sentences_per_s": round(sentences_per_second(onnx, texts, batch_size, repeats), 1)})
        if float(cos.min()) < threshold:
            worst = int(cos.argmin())
            failures.append(f"{folder / file}: cosine to the PyTorch vectors {float(cos.min()):.6f} < {threshold} "
                            f"(text {texts[worst]!r}; mean {float(cos.mean()):.6f} over {len(texts)} probe texts)")
    report = {"model": str(folder), "probe_texts": len(texts), "batch_size": batch_size,
              "threads": torch.get_num_threads(), "int8_kept_fp32": keep_fp32, "variants": rows,
              "passed": not failures}
    (folder / "onnx" / "check.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + table(rows) + f"\n\n{len(texts)} probe texts, batch {batch_size}; report: {folder / 'onnx' / 'check.json'}")
    if failures:
        raise ExportCheckError(
            "ONNX export check failed, do not deploy these files: " + "; ".join(failures)
            + ". Use the fp32 ONNX model (or quantize=none), or report the model and these figures"
        )
    return report


def table(rows: list[dict]) -> str:
    lines = ["| variant | file | MB | min cosine | mean cosine | threshold | sentences/s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        threshold = "–" if r["threshold"] is None else f"{r['threshold']}"
        lines.append(f"| {r['variant']} | {r['file']} | {r['mb']:.1f} | {r['min_cosine']:.6f} | "
                     f"{r['mean_cosine']:.6f} | {threshold} | {r['sentences_per_s']:.1f} |")
    return "\n".join(lines)


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6 if path.exists() else float("nan")


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments (the spelling of the other entry points) -> ``run``'s keyword arguments."""
    from omegaconf import OmegaConf

    args = OmegaConf.to_container(OmegaConf.from_dotlist(argv))
    unknown = sorted(set(args) - set(DEFAULTS))
    if unknown:
        raise SystemExit(f"unknown argument(s) {unknown}; known: {sorted(DEFAULTS)} (see --help)")
    values = {**DEFAULTS, **args}
    if not values["model"]:
        raise SystemExit("give the model folder: python -m biolord.export_onnx model=outputs/<run>/model")
    if values["probe"]:
        probe = Path(str(values["probe"])).expanduser()
        if not probe.is_file():
            raise SystemExit(f"probe={values['probe']}: file not found; give a text file with one sentence per line")
        values["probe"] = [line.strip() for line in probe.read_text(encoding="utf-8").splitlines() if line.strip()]
    values["model"] = str(values["model"])
    return values


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("biolord").setLevel(logging.INFO)  # not onnxruntime's quantiser: a line per tensor
    try:
        run(**parse_args(argv))
    except ExportCheckError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
