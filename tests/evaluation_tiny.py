"""Helpers of the evaluation tests: a tiny BERT from a config and an encoder that counts its calls."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB_WORDS = (
    "ataxia telangiectasia breast ovarian cancer tumor tumour wilson disease copper toxicosis "
    "heart liver kidney failure syndrome a the and of is cat dog sits runs on mat fast slow "
    "red blue green car house tree big small bonjour hello chien perro maison casa"
).split()


def write_tiny_bert(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(VOCAB_WORDS))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 takes the vocabulary as `vocab` (and silently ignores `vocab_file`); 4.x wants the file
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    if len(tokenizer) < len(vocab):
        tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    assert tokenizer.tokenize("cat sits") == ["cat", "sits"], "tiny tokenizer lost its vocabulary"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class CountingEncoder:
    """Wraps an Encoder; counts how many texts reach ``encode``."""

    def __init__(self, encoder):
        self.inner = encoder
        self.calls = 0
        self.texts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts, batch_size=64, device=None):
        texts = list(texts)
        self.calls += 1
        self.texts += len(texts)
        return self.inner.encode(texts, batch_size=batch_size, device=device)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_eval_model_dir(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_eval_bert"))


@pytest.fixture(scope="session")
def tiny_eval_encoder(tiny_eval_model_dir):
    """Loaded once per run; evaluation never trains it, so tests share it."""
    from biolord.encoder import Encoder

    return Encoder.load(str(tiny_eval_model_dir), max_seq_length=32)
