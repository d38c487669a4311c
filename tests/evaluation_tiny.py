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
    """The shared tiny BERT of tests/conftest.py, with the evaluation tests' words."""
    from tests.conftest import write_tiny_model

    return write_tiny_model(folder, words=VOCAB_WORDS)


class CountingEncoder:
    """Wraps an Encoder; counts how many texts reach ``encode``. Readers see the model it wraps (its
    attributes, and ``isinstance`` through ``__class__``), so the fingerprint is the wrapped model's."""

    def __init__(self, encoder):
        self.inner = encoder
        self.calls = 0
        self.texts = 0
        self.seen: list[str] = []  # every text encoded, in order

    @property
    def __class__(self):
        return type(self.inner)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts, batch_size=64, device=None, desc=None):
        texts = list(texts)
        self.calls += 1
        self.texts += len(texts)
        self.seen += texts
        return self.inner.encode(texts, batch_size=batch_size, device=device, desc=desc)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_eval_model_dir(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_eval_bert"))


@pytest.fixture(scope="session")
def tiny_eval_encoder(tiny_eval_model_dir):
    """Loaded once per run; evaluation never trains it, so tests share it."""
    from biolord.encoder import Encoder

    return Encoder.load(str(tiny_eval_model_dir), max_seq_length=32)
